import type { FastifyInstance, FastifyRequest } from 'fastify'
import type {} from '@fastify/websocket'
import type { RawData, WebSocket } from 'ws'
import { CloseCodes, Connection } from '../plugins/realtime/connection.js'
import { isChatError } from '../plugins/core/errors.js'
import { AddressSlots, clientAddress } from '../plugins/core/rate-limit.js'
import { bearerTokenOf } from '../plugins/auth/bearer.js'

const SHUTDOWN_GRACE_MS = 1000

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
 * The one upgrade route. Frames of a socket are handled one after another until its session is
 * established, so that session.ready is always the first frame after authentication; afterwards they
 * are handled as they come.
 */
export default async function wsRoute (app: FastifyInstance): Promise<void> {
  const { chatGateway: gateway, chatSessions: sessions, chatConfig: config, chatHub: hub } = app
  const open = new Set<Connection>()
  let shuttingDown = false
  const hostAuthenticates = app.chatHooks.authenticate !== undefined
  // maxConnectionsPerIp: sockets per client address on this node, authenticated or not.
  const addressSlots = new AddressSlots(config.maxConnectionsPerIp)

  // The host's own session (a cookie, say) may identify the upgrade; without one the token ways apply.
  async function fromHostSession (connection: Connection, request: FastifyRequest): Promise<void> {
    const user = await app.chatAuth.fromRequest(request)
    if (user === null) sessions.awaitAuthFrame(connection)
    else await sessions.start(connection, user)
  }

  const heartbeat = setInterval(() => {
    for (const connection of open) {
      if (connection.missedPongs >= 2) {
        connection.log.info('missed two pongs, terminating')
        connection.terminate()
        continue
      }
      connection.missedPongs += 1
      try {
        connection.socket.ping()
      } catch {
        connection.terminate()
      }
    }
  }, config.heartbeatMs)
  heartbeat.unref()

  app.get(config.wsPath, { websocket: true }, (socket: WebSocket, request: FastifyRequest) => {
    // @fastify/websocket leaves the upgrade's ServerResponse attached to the TCP socket for the socket's
    // life, and with it Fastify's request, reply, their loggers and the upgrade headers (a few KiB per
    // idle socket). Nothing reads them after the upgrade: let them go.
    const tcp = request.raw.socket as { _httpMessage?: { detachSocket?: (socket: unknown) => void } | null }
    tcp._httpMessage?.detachSocket?.(tcp)
    // The connection's logger descends from the app's (not the request's, which would then be kept).
    const connection = new Connection(socket, request.ip, config.maxBufferedBytes, app.log, hub.observer, request.id)
    if (shuttingDown) {
      connection.close(CloseCodes.GOING_AWAY, 'server shutting down')
      return
    }
    open.add(connection)
    hub.observer?.socketOpened()
    const address = clientAddress(connection.ip)
    const counted = addressSlots.acquire(address)
    let establishing: Promise<void> | null = Promise.resolve()

    const handle = (raw: string): Promise<void> => gateway.handleFrame(connection, raw)

    socket.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        connection.close(CloseCodes.UNSUPPORTED_DATA, 'binary frames are not supported')
        return
      }
      const raw = textOf(data)
      if (establishing === null) {
        void handle(raw)
        return
      }
      const tail: Promise<void> = establishing.then(() => handle(raw)).then(() => {
        if (connection.user !== null && establishing === tail) establishing = null
      })
      establishing = tail
    })
    socket.on('pong', () => { connection.missedPongs = 0 })
    // @fastify/websocket's own 'error' listener closes over the upgrade's request and reply, which keeps
    // them for the socket's life; this one does what its default handler does, without them.
    for (const listener of socket.listeners('error')) socket.off('error', listener as (error: Error) => void)
    socket.on('error', (error) => {
      connection.log.debug({ err: error }, 'socket error')
      connection.terminate()
    })
    socket.on('close', (code: number) => {
      connection.markClosed()
      open.delete(connection)
      if (counted) addressSlots.release(address)
      hub.observer?.socketClosed(code)
      connection.log.debug({ code }, 'socket closed')
      void sessions.closed(connection).catch((error: unknown) => connection.log.error({ err: error }, 'closing session failed'))
    })

    if (!counted) {
      connection.close(CloseCodes.TOO_MANY_CONNECTIONS, 'too many connections from this address')
      return
    }
    const token = tokenOf(request)
    if (token === null && !hostAuthenticates) {
      sessions.awaitAuthFrame(connection)
      return
    }
    const begin = token !== null ? sessions.authenticate(connection, token) : fromHostSession(connection, request)
    const started: Promise<void> = begin.catch((error: unknown) => {
      if (isChatError(error) && error.code === 'UNAUTHENTICATED') {
        connection.close(CloseCodes.UNAUTHENTICATED, error.message)
        return
      }
      connection.log.error({ err: error }, 'session start failed')
      connection.close(1011, 'session start failed')
    }).then(() => {
      if (connection.user !== null && establishing === started) establishing = null
    })
    establishing = started
  })

  // Runs before the HTTP server stops: every socket hears 1001 so clients reconnect elsewhere at once.
  app.addHook('preClose', async () => {
    shuttingDown = true
    clearInterval(heartbeat)
    for (const connection of open) connection.close(CloseCodes.GOING_AWAY, 'server shutting down')
    // A peer that never answers the close handshake (a stalled reader) must not hold the shutdown for
    // ws's 30 s close timeout: after a short grace the rest are cut.
    const deadline = Date.now() + SHUTDOWN_GRACE_MS
    while (open.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    for (const connection of open) connection.terminate()
  })
}
