import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { NO_REPLY } from './gateway.js'
import { isChatError } from '../core/errors.js'
import { CloseCodes, type ChatUser, type Connection } from './connection.js'

const MAX_TIMER_MS = 2 ** 31 - 1

export interface Sessions {
  /** Starts the session of a socket that presented a token (header, query or auth frame). */
  authenticate (connection: Connection, token: string): Promise<void>
  /** Starts the session of a socket whose user is already known (the host's authenticate hook). */
  start (connection: Connection, user: ChatUser): Promise<void>
  /** Forgets a closed socket: timers, hub, session end handlers. */
  closed (connection: Connection): Promise<void>
  /** Sockets not yet authenticated are closed with 4408 after authTimeoutMs. */
  awaitAuthFrame (connection: Connection): void
}

declare module 'fastify' {
  interface FastifyInstance {
    chatSessions: Sessions
  }
}

/**
 * The life of an authenticated socket: the per-user cap, the hub registration, session.ready, the
 * token's expiry and its refresh through a new auth frame.
 */
export const sessionsPlugin = fp(async function sessionsPlugin (app: FastifyInstance) {
  const { chatAuth: auth, chatHub: hub, chatGateway: gateway, chatConfig: config } = app
  const timers = new WeakMap<Connection, NodeJS.Timeout>()

  function clearTimer (connection: Connection): void {
    const timer = timers.get(connection)
    if (timer !== undefined) clearTimeout(timer)
    timers.delete(connection)
  }

  function armExpiry (connection: Connection, user: ChatUser): void {
    clearTimer(connection)
    if (user.exp === null) return
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, user.exp * 1000 - Date.now()))
    timers.set(connection, setTimeout(() => connection.close(CloseCodes.UNAUTHENTICATED, 'token expired'), delay))
  }

  async function verifyOrClose (connection: Connection, token: string): Promise<ChatUser | null> {
    try {
      return await auth.verify(token)
    } catch (error) {
      const reason = isChatError(error) ? error.message : 'token invalid'
      connection.log.info({ reason }, 'authentication refused')
      connection.close(CloseCodes.UNAUTHENTICATED, reason)
      return null
    }
  }

  const sessions: Sessions = {
    async authenticate (connection, token) {
      const user = await verifyOrClose(connection, token)
      if (user === null) return
      await sessions.start(connection, user)
    },

    async start (connection, user) {
      if (!connection.isOpen) return
      if (hub.connectionsOf(user.id).size >= config.maxConnectionsPerUser) {
        connection.close(CloseCodes.TOO_MANY_CONNECTIONS, 'too many connections for this user')
        return
      }
      connection.user = user
      connection.log = connection.log.child({ userId: user.id })
      armExpiry(connection, user)
      // Registered before any other await, so that concurrent logins of one user count each other;
      // pushes that arrive meanwhile wait behind session.ready.
      connection.hold()
      await hub.register(connection)
      // The socket may have closed while we awaited: its close handler ran before it was registered.
      if (!connection.isOpen) {
        await hub.unregister(connection)
        return
      }
      const known = await app.chatUsers.remember(user)
      connection.user = known
      const frame = await gateway.buildSessionReady(connection, known)
      connection.release(frame)
    },

    async closed (connection) {
      clearTimer(connection)
      const user = connection.user
      if (user === null) return
      await hub.unregister(connection)
      await gateway.endSession(connection, user)
    },

    awaitAuthFrame (connection) {
      timers.set(connection, setTimeout(() => {
        if (connection.user === null) connection.close(CloseCodes.AUTH_TIMEOUT, 'no auth frame in time')
      }, config.authTimeoutMs))
    },
  }
  app.decorate('chatSessions', sessions)

  gateway.on('auth', {
    summary: 'Authenticates the socket (first frame) or refreshes its token before it expires (same sub).',
    public: true,
    schema: Type.Object({ token: Type.Optional(Type.String({ maxLength: 8192 })) }, { additionalProperties: false }),
    ack: Type.Object({ exp: Type.Union([Type.Integer(), Type.Null()]) }),
    async handler (ctx, data) {
      const { connection } = ctx
      if (data.token === undefined || data.token.length === 0) {
        connection.close(CloseCodes.UNAUTHENTICATED, 'auth frame without a token')
        return NO_REPLY
      }
      if (connection.user === null) {
        clearTimer(connection)
        await sessions.authenticate(connection, data.token)
        return NO_REPLY
      }
      const refreshed = await verifyOrClose(connection, data.token)
      if (refreshed === null) return NO_REPLY
      // Same user means same sub and same tenant: the socket's rooms belong to the tenant it began with.
      if (refreshed.id !== connection.user.id || refreshed.tenant !== connection.user.tenant) {
        connection.close(CloseCodes.UNAUTHENTICATED, 'token is for another user')
        return NO_REPLY
      }
      // A refreshed token that carries only `sub` keeps the profile the session already has.
      connection.user = { ...refreshed, name: refreshed.name ?? connection.user.name, avatar: refreshed.avatar ?? connection.user.avatar }
      armExpiry(connection, refreshed)
      return { exp: refreshed.exp }
    },
  })
}, { name: 'chat-sessions', fastify: '5.x', dependencies: ['chat-config', 'chat-auth', 'chat-hub', 'chat-gateway', 'chat-users'] })
