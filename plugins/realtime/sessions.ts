import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import { Type } from 'typebox'
import { NO_REPLY } from './gateway.js'
import { isChatError } from '../core/errors.js'
import { AddressSlots, clientAddress } from '../core/rate-limit.js'
import { bearerTokenOf } from '../auth/bearer.js'
import { CloseCodes, Connection, type ChatUser } from './connection.js'
import { Session } from './session.js'
import { userKeyOf } from '../../lib/user-key.js'

const MAX_TIMER_MS = 2 ** 31 - 1
/** How long shutdown waits for the close handshakes before it cuts the sockets that did not answer. */
const SHUTDOWN_GRACE_MS = 1000
const SHUTTING_DOWN = 'server shutting down'

/** Fields a concern adds to session.ready (rooms, people, favorites), read once per new session. */
export type SessionContributor = (connection: Connection, user: ChatUser) => Promise<Record<string, unknown>> | Record<string, unknown>
/** What a concern does when an authenticated socket closes, after the hub forgot it (presence, typing). */
export type SessionEndHandler = (connection: Connection, user: ChatUser) => Promise<void> | void

/** This node's sockets from upgrade to close. */
export interface Sessions {
  /** Adds fields to every session.ready. */
  contribute (contributor: SessionContributor): void
  /** Runs when an authenticated socket closes. */
  onEnd (handler: SessionEndHandler): void
  /** Takes a socket the upgrade route just accepted and runs its whole life. */
  accept (socket: WebSocket, request: FastifyRequest): void
  /**
   * Closes every socket with 1001 so that clients reconnect elsewhere at once, waits a short grace for
   * the close handshakes, then cuts the rest. Refuses sockets from then on. Never rejects.
   */
  shutdown (): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    chatSessions: Sessions
  }
}

/** The upgrade's token: `Authorization: Bearer`, else `?token=` (browsers cannot set headers). */
function tokenOf (request: FastifyRequest): string | null {
  const bearer = bearerTokenOf(request)
  if (bearer !== null) return bearer
  const query = request.query as Record<string, unknown> | undefined
  const token = query?.token
  return typeof token === 'string' && token.length > 0 ? token : null
}

function textOf (data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  return Buffer.from(data).toString('utf8')
}

/**
 * The life of a socket, in the order it happens:
 * 1. accept: the upgrade; the per-address cap (maxConnectionsPerIp).
 * 2. authenticate, one of three ways: the host's authenticate hook (a cookie session, say), a token in
 *    the upgrade (header or ?token=), or a first `auth` frame within authTimeoutMs (else 4408).
 * 3. start: the per-user cap (maxConnectionsPerUser), the hub registration, session.ready first.
 * 4. established: heartbeats, the token's expiry (4401) and its refresh through a new `auth` frame.
 * 5. closed: the hub and the concerns' session end handlers forget it.
 * 6. shutdown (called by the WebSocket server's preClose): 1001 to all, a grace, then cut.
 */
export const sessionsPlugin = fp(async function sessionsPlugin (app: FastifyInstance) {
  const { chatAuth: auth, chatHub: hub, chatGateway: gateway, chatConfig: config } = app
  const open = new Map<Connection, Session>()
  let shuttingDown = false
  const hostAuthenticates = app.chatHooks.authenticate !== undefined
  // maxConnectionsPerIp: sockets per client address on this node, authenticated or not.
  const addressSlots = new AddressSlots(config.maxConnectionsPerIp)

  // 1. The upgrade.
  function accept (socket: WebSocket, request: FastifyRequest): void {
    // @fastify/websocket leaves the upgrade's ServerResponse attached to the TCP socket for the socket's
    // life, and with it Fastify's request, reply, their loggers and the upgrade headers (a few KiB per
    // idle socket). Nothing reads them after the upgrade: let them go.
    const tcp = request.raw.socket as { _httpMessage?: { detachSocket?: (socket: unknown) => void } | null }
    tcp._httpMessage?.detachSocket?.(tcp)
    // The connection's logger descends from the app's (not the request's, which would then be kept).
    const connection = new Connection(socket, request.ip, config.maxBufferedBytes, app.log, hub.observer, request.id)
    if (shuttingDown) {
      connection.close(CloseCodes.GOING_AWAY, SHUTTING_DOWN)
      return
    }
    hub.observer?.socketOpened()
    const address = clientAddress(connection.ip)
    const session = new Session(connection, addressSlots.acquire(address) ? address : null)
    open.set(connection, session)
    listen(socket, session)
    if (session.address === null) {
      connection.close(CloseCodes.TOO_MANY_CONNECTIONS, 'too many connections from this address')
      return
    }
    authenticateUpgrade(session, request)
  }

  function listen (socket: WebSocket, session: Session): void {
    const { connection } = session
    socket.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        connection.close(CloseCodes.UNSUPPORTED_DATA, 'binary frames are not supported')
        return
      }
      const raw = textOf(data)
      session.receive(() => gateway.handleFrame(connection, raw))
    })
    socket.on('pong', () => { session.pong() })
    // @fastify/websocket's own 'error' listener closes over the upgrade's request and reply, which keeps
    // them for the socket's life; this one does what its default handler does, without them.
    for (const listener of socket.listeners('error')) socket.off('error', listener as (error: Error) => void)
    socket.on('error', (error) => {
      connection.log.debug({ err: error }, 'socket error')
      connection.terminate()
    })
    socket.on('close', (code: number) => { closed(session, code) })
  }

  // 2. Authentication: the upgrade's token or the host's hook, else an auth frame.
  function authenticateUpgrade (session: Session, request: FastifyRequest): void {
    const { connection } = session
    const token = tokenOf(request)
    if (token === null && !hostAuthenticates) {
      awaitAuthFrame(session)
      return
    }
    const begin = token !== null ? authenticate(connection, token) : fromHostSession(session, request)
    session.startWith(begin.catch((error: unknown) => { startFailed(connection, error) }))
  }

  /**
   * Every way in ends here when the start throws: a refused identity closes with 4401, anything else (the
   * database or the broker away) with 1011. The user's slot is given back now, not when the peer answers
   * the close: a socket that was never established must not count against maxConnectionsPerUser.
   */
  function startFailed (connection: Connection, error: unknown): void {
    if (isChatError(error) && error.code === 'UNAUTHENTICATED') {
      connection.close(CloseCodes.UNAUTHENTICATED, error.message)
    } else {
      connection.log.error({ err: error }, 'session start failed')
      connection.close(1011, 'session start failed')
    }
    void hub.unregister(connection).catch((failure: unknown) => connection.log.error({ err: failure }, 'closing session failed'))
  }

  // The host's own session (a cookie, say) may identify the upgrade; without one the token ways apply.
  async function fromHostSession (session: Session, request: FastifyRequest): Promise<void> {
    const user = await auth.fromRequest(request)
    if (user === null) awaitAuthFrame(session)
    else await start(session.connection, user)
  }

  /** Sockets not yet authenticated are closed with 4408 after authTimeoutMs. */
  function awaitAuthFrame (session: Session): void {
    const { connection } = session
    session.setTimer(setTimeout(() => {
      if (connection.user === null) connection.close(CloseCodes.AUTH_TIMEOUT, 'no auth frame in time')
    }, config.authTimeoutMs))
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

  /** Starts the session of a socket that presented a token (header, query or auth frame). */
  async function authenticate (connection: Connection, token: string): Promise<void> {
    const user = await verifyOrClose(connection, token)
    if (user === null) return
    await start(connection, user)
  }

  // 3. The start.
  async function start (connection: Connection, user: ChatUser): Promise<void> {
    if (!connection.isOpen) return
    // Counted per user (tenant and sub): the same sub in another tenant is another user.
    if (hub.connectionsOf(userKeyOf(user)).size >= config.maxConnectionsPerUser) {
      connection.close(CloseCodes.TOO_MANY_CONNECTIONS, 'too many connections for this user')
      return
    }
    // From here the socket's log lines name the user (connection.ts, ConnectionLogger).
    connection.user = user
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
    connection.release(await sessionReady(connection, known))
  }

  const contributors: SessionContributor[] = []
  async function sessionReady (connection: Connection, user: ChatUser): Promise<string> {
    const data: Record<string, unknown> = {
      user: { id: user.id, name: user.name, avatar: user.avatar },
      connectionId: connection.id,
      serverTime: new Date().toISOString(),
      rooms: [],
      people: [],
      favorites: [],
    }
    const parts = await Promise.all(contributors.map((contribute) => contribute(connection, user)))
    for (const part of parts) Object.assign(data, part)
    return JSON.stringify({ event: 'session.ready', data })
  }

  // 4. Established: heartbeats, the token's expiry and its refresh.
  const heartbeat = setInterval(() => {
    for (const session of open.values()) session.beat()
  }, config.heartbeatMs)
  heartbeat.unref()

  /** Closes the socket with 4401 when its token expires (a refresh arms it again). */
  function armExpiry (connection: Connection, user: ChatUser): void {
    const session = open.get(connection)
    if (session === undefined) return
    session.clearTimer()
    if (user.exp === null) return
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, user.exp * 1000 - Date.now()))
    session.setTimer(setTimeout(() => connection.close(CloseCodes.UNAUTHENTICATED, 'token expired'), delay))
  }

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
        open.get(connection)?.clearTimer()
        // Not thrown to the gateway: its error reply would wait forever behind the held session.ready.
        await authenticate(connection, data.token).catch((error: unknown) => { startFailed(connection, error) })
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

  // 5. The close, whoever closed it.
  function closed (session: Session, code: number): void {
    const { connection } = session
    connection.markClosed()
    open.delete(connection)
    if (session.address !== null) addressSlots.release(session.address)
    hub.observer?.socketClosed(code)
    connection.log.debug({ code }, 'socket closed')
    session.clearTimer()
    void forget(connection).catch((error: unknown) => connection.log.error({ err: error }, 'closing session failed'))
  }

  /** The hub and the concerns' session end handlers (presence, typing) forget an authenticated socket. */
  async function forget (connection: Connection): Promise<void> {
    const user = connection.user
    if (user === null) return
    await hub.unregister(connection)
    gateway.forget(connection)
    await Promise.all(endHandlers.map(async (handler) => {
      try {
        await handler(connection, user)
      } catch (error) {
        connection.log.error({ err: error }, 'session end handler failed')
      }
    }))
  }
  const endHandlers: SessionEndHandler[] = []

  // 6. Shutdown.
  async function shutdown (): Promise<void> {
    shuttingDown = true
    clearInterval(heartbeat)
    for (const connection of open.keys()) connection.close(CloseCodes.GOING_AWAY, SHUTTING_DOWN)
    // A peer that never answers the close handshake (a stalled reader) must not hold the shutdown for
    // ws's 30 s close timeout: after a short grace the rest are cut.
    const deadline = Date.now() + SHUTDOWN_GRACE_MS
    while (open.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    for (const connection of open.keys()) connection.terminate()
  }

  app.decorate('chatSessions', {
    accept,
    shutdown,
    contribute: (contributor) => { contributors.push(contributor) },
    onEnd: (handler) => { endHandlers.push(handler) },
  } satisfies Sessions)
  // Suites without a WebSocket server (a host composing its own subset) never call shutdown.
  app.addHook('onClose', async () => { clearInterval(heartbeat) })
}, { name: 'chat-sessions', fastify: '5.x', dependencies: ['chat-config', 'chat-auth', 'chat-hub', 'chat-gateway', 'chat-users'] })
