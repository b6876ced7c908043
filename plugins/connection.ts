import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'

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
  missedPongs = 0
  log: FastifyBaseLogger
  private closed = false

  constructor (
    readonly socket: WebSocket,
    readonly ip: string,
    private readonly maxBufferedBytes: number,
    log: FastifyBaseLogger,
    private readonly observer: ConnectionObserver | null = null,
  ) {
    this.log = log.child({ connectionId: this.id })
  }

  get userId (): string | null {
    return this.user?.id ?? null
  }

  get isOpen (): boolean {
    return !this.closed && this.socket.readyState === this.socket.OPEN
  }

  /** Writes an already serialized frame; returns false when the socket is gone or was cut as too slow. */
  send (frame: string): boolean {
    if (!this.isOpen) return false
    if (this.socket.bufferedAmount > this.maxBufferedBytes) {
      this.log.warn({ bufferedAmount: this.socket.bufferedAmount }, 'slow consumer cut')
      this.observer?.slowConsumerCut()
      this.close(CloseCodes.TRY_AGAIN_LATER, 'slow consumer')
      return false
    }
    this.socket.send(frame)
    this.observer?.sent(frame)
    return true
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
