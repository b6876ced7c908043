import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import { SERVER_USER_ID, userKeyOf } from '../../lib/user-key.js'

type Bindings = Record<string, unknown>
type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
type LogArgs = Parameters<FastifyBaseLogger['info']>

/**
 * A socket's logger: the pino child is made the first time a line is logged at an enabled level, with
 * the socket's bindings read then (its request id, its id, and its user's id once it has one). An idle
 * socket never logs, and a pino child per socket (or a bindings object kept for one) costs memory that
 * thousands of idle sockets would hold for nothing.
 */
class ConnectionLogger implements FastifyBaseLogger {
  private made: FastifyBaseLogger | null = null
  /** The user the child was made with: a socket that authenticated since gets a child that names it. */
  private madeFor: string | null = null

  constructor (private readonly parent: FastifyBaseLogger, private readonly connection: Connection, private readonly reqId: string | undefined) {}

  get level (): FastifyBaseLogger['level'] {
    return (this.made ?? this.parent).level
  }

  set level (level: FastifyBaseLogger['level']) {
    this.real().level = level
  }

  child (bindings: Bindings, options?: Parameters<FastifyBaseLogger['child']>[1]): FastifyBaseLogger {
    return this.real().child(bindings, options)
  }

  fatal (...args: LogArgs): void { this.write('fatal', args) }
  error (...args: LogArgs): void { this.write('error', args) }
  warn (...args: LogArgs): void { this.write('warn', args) }
  info (...args: LogArgs): void { this.write('info', args) }
  debug (...args: LogArgs): void { this.write('debug', args) }
  trace (...args: LogArgs): void { this.write('trace', args) }
  silent (): void {}

  private real (): FastifyBaseLogger {
    const userId = this.connection.userId
    if (this.made === null || this.madeFor !== userId) {
      const bindings: Bindings = this.reqId === undefined ? { connectionId: this.connection.id } : { reqId: this.reqId, connectionId: this.connection.id }
      if (userId !== null) bindings.userId = userId
      this.made = this.parent.child(bindings)
      this.madeFor = userId
    }
    return this.made
  }

  private write (level: Level, args: LogArgs): void {
    const enabled = (this.parent as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled
    if (this.made === null && enabled !== undefined && !enabled.call(this.parent, level)) return
    ;(this.real()[level] as (...rest: LogArgs) => void)(...args)
  }
}

/** The identity a verified token (or a host's authenticate hook) gives a socket or a request. */
export interface ChatUser {
  id: string
  tenant: string
  name: string | null
  avatar: string | null
  roles: string[]
  permissions: string[]
  /** Seconds since the epoch, from the token; null when the token does not expire. */
  exp: number | null
  /**
   * The server acting (never set from a token): OWNER in every room of its tenant, past the authorize
   * hook and the quotas. The host's own code (`app.chat`, SERVER_USER) acts in every tenant
   * (`allTenants`); a service of the service API acts as the server of its token's tenant only.
   */
  server?: true
  allTenants?: true
}

export { SERVER_USER_ID } from '../../lib/user-key.js'

/** The identity of the host's own code: acts as OWNER in any room, in any tenant, past the authorize hook. */
export const SERVER_USER: ChatUser = Object.freeze({
  id: SERVER_USER_ID, tenant: '', name: 'System', avatar: null, roles: [], permissions: [], exp: null, server: true, allTenants: true,
}) as ChatUser

/** The server of one tenant: what a service with `chats:service` acts as (protocol 11.5). */
export function serverOfTenant (tenant: string): ChatUser {
  return Object.freeze({ id: SERVER_USER_ID, tenant, name: 'System', avatar: null, roles: [], permissions: [], exp: null, server: true }) as ChatUser
}

export const CloseCodes = {
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  MESSAGE_TOO_BIG: 1009,
  TRY_AGAIN_LATER: 1013,
  UNAUTHENTICATED: 4401,
  AUTH_TIMEOUT: 4408,
  TOO_MANY_CONNECTIONS: 4409,
  FLOODING: 4429,
} as const

/** Told about every write and every cut of a socket (metrics); must be cheap and must not throw. */
export interface ConnectionObserver {
  /** A frame was handed to the socket. */
  sent (frame: string): void
  /** The socket was closed with 1013 because its send buffer passed maxBufferedBytes. */
  slowConsumerCut (): void
}

/** The underlying stream of a ws socket (ws keeps it as `_socket`); absent once the socket is gone. */
interface Corkable { cork (): void, uncork (): void, writableCorked?: number, destroyed?: boolean }

const TEXT_FRAME = { binary: false } as const
/** Corked bytes of one socket after which the tick's frames are let go early. */
const CORK_CHUNK_BYTES = 64 * 1024

// A session being set up holds its pushes; a flood of them past this is dropped (sync recovers it).
const MAX_HELD_FRAMES = 1000

// Sockets written to in the current tick, uncorked together when it ends: the frames a socket gets
// from one batch of commits (or one read of the broker) leave in one write instead of one each.
const corked: Connection[] = []
let uncorkScheduled = false

function uncorkAll (): void {
  uncorkScheduled = false
  for (let index = 0; index < corked.length; index += 1) (corked[index] as Connection).flush()
  corked.length = 0
}

/**
 * The frame's UTF-8 size when it may be more than `room` bytes, else 0: a frame of n UTF-16 units is at
 * most 3n bytes, so the usual small frame is not measured at all.
 */
function frameBytesOver (frame: string, encoded: Buffer | undefined, room: number): number {
  if (encoded !== undefined) return encoded.length
  return frame.length * 3 <= room ? 0 : Buffer.byteLength(frame, 'utf8')
}

/**
 * One client socket. Writes go through `send`, which is where backpressure is enforced: a socket whose
 * unsent bytes pass `maxBufferedBytes` is cut with 1013 instead of growing the node's memory.
 */
export class Connection {
  readonly id = randomUUID()
  readonly openedAt = Date.now()
  user: ChatUser | null = null
  /** Rooms this socket is subscribed to on this node (maintained by the hub). */
  readonly rooms = new Set<string>()
  private held: Array<[string, Buffer | undefined]> | null = null
  readonly log: FastifyBaseLogger
  private closed = false
  private stream: Corkable | null = null
  private backlogAtCork = 0

  constructor (
    readonly socket: WebSocket,
    readonly ip: string,
    private readonly maxBufferedBytes: number,
    log: FastifyBaseLogger,
    private readonly observer: ConnectionObserver | null = null,
    reqId?: string,
  ) {
    this.log = new ConnectionLogger(log, this, reqId)
  }

  get userId (): string | null {
    return this.user?.id ?? null
  }

  /** The user's key (tenant and sub) that the hub, the connection cap and rate limits count by. */
  get userKey (): string | null {
    return this.user === null ? null : userKeyOf(this.user)
  }

  get isOpen (): boolean {
    return !this.closed && this.socket.readyState === this.socket.OPEN
  }

  /**
   * Writes an already serialized frame; returns false when the socket is gone or was cut as too slow.
   * `encoded` is the frame's UTF-8 bytes when the caller sends the same frame to many sockets: it is
   * encoded once for all of them and handed to each socket without a copy. Frames written in one tick
   * are corked and leave together when the tick ends (no added latency, fewer writes).
   */
  send (frame: string, encoded?: Buffer): boolean {
    if (!this.isOpen) return false
    if (this.held !== null) {
      if (this.held.length < MAX_HELD_FRAMES) this.held.push([frame, encoded])
      return true
    }
    const socket = this.socket
    // What is still unsent from earlier ticks; the frames corked in this tick are not a slow consumer.
    const backlog = this.stream === null ? socket.bufferedAmount : this.backlogAtCork
    // The frame being written counts too: one huge frame must not pass a limit checked before it.
    if (backlog > this.maxBufferedBytes || backlog + frameBytesOver(frame, encoded, this.maxBufferedBytes - backlog) > this.maxBufferedBytes) {
      this.log.warn({ bufferedAmount: backlog, frameBytes: encoded?.length ?? Buffer.byteLength(frame) }, 'slow consumer cut')
      this.observer?.slowConsumerCut()
      this.close(CloseCodes.TRY_AGAIN_LATER, 'slow consumer')
      return false
    }
    if (this.stream === null) this.cork(backlog)
    if (encoded === undefined) socket.send(frame)
    else socket.send(encoded, TEXT_FRAME)
    this.observer?.sent(frame)
    // A large burst within one tick goes out in chunks, so that what the peer does not take shows up
    // as backlog for the next frame, as it would without corking.
    if (this.stream !== null && socket.bufferedAmount - this.backlogAtCork > CORK_CHUNK_BYTES) {
      this.stream.uncork()
      this.stream.cork()
      this.backlogAtCork = socket.bufferedAmount
    }
    return true
  }

  private cork (backlog: number): void {
    const stream = (this.socket as unknown as { _socket?: Corkable | null })._socket
    if (stream == null || typeof stream.cork !== 'function') return
    stream.cork()
    this.stream = stream
    this.backlogAtCork = backlog
    corked.push(this)
    if (!uncorkScheduled) {
      uncorkScheduled = true
      process.nextTick(uncorkAll)
    }
  }

  /** Lets the frames corked during this tick go (called once per tick for each socket written to). */
  flush (): void {
    const stream = this.stream
    this.stream = null
    if (stream !== null && stream.destroyed !== true) stream.uncork()
  }

  /**
   * Holds pushes while the session is being set up: the socket is already registered (so nothing is
   * missed) but session.ready must be its first frame after authentication.
   */
  hold (): void {
    this.held ??= []
  }

  /** Sends `first` (session.ready), then what was held meanwhile, in order. */
  release (first: string): void {
    const held = this.held ?? []
    this.held = null
    this.send(first)
    for (const [frame, encoded] of held) this.send(frame, encoded)
  }

  close (code: number, reason: string): void {
    if (this.closed) return
    this.closed = true
    try {
      this.socket.close(code, reason)
    } catch {
      this.socket.terminate()
    }
  }

  terminate (): void {
    this.closed = true
    this.socket.terminate()
  }

  markClosed (): void {
    this.closed = true
  }
}
