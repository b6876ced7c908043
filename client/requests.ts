import { ChatClientError } from './errors.js'
import type { ChatClientOptions } from './options.js'

/** What the requests need of the connection. */
export interface RequestLine {
  /** The client stopped after it had started: new requests reject with CLOSED. */
  readonly closed: boolean
  /** A session is up and its resume is done: requests go out at once. */
  readonly live: boolean
  /** A session is up (its resume may still run): the client's own requests go out. */
  readonly sessionUp: boolean
  /** The next envelope `id` on this client. */
  nextId (): string
  /** Writes a frame on the current socket, if any. */
  send (frame: string): void
}

interface PendingRequest {
  event: string
  frame: string
  sent: boolean
  timer: ReturnType<typeof setTimeout> | null
  resolve: (data: Record<string, unknown>) => void
  reject: (error: ChatClientError) => void
}

/**
 * Requests by envelope id until their ack or error: each one's promise, its timeout, and the queue of
 * requests made while no session was live (sent, in order, once one is).
 */
export class PendingRequests {
  private readonly line: RequestLine
  private readonly options: Pick<ChatClientOptions, 'requestTimeoutMs'>
  private readonly requests = new Map<string, PendingRequest>()
  /** Requests made while no session was live, in order. */
  private readonly queued: string[] = []

  constructor (line: RequestLine, options: Pick<ChatClientOptions, 'requestTimeoutMs'>) {
    this.line = line
    this.options = options
  }

  has (id: string): boolean {
    return this.requests.has(id)
  }

  /**
   * Sends a request, or queues it until a session is live; resolves with its ack's data. `internal`: the
   * client's own (sync, a token refresh), which goes out as soon as a session is up and fails at once
   * without one.
   */
  request (event: string, data: Record<string, unknown> | undefined, internal = false): Promise<Record<string, unknown>> {
    if (this.line.closed) return Promise.reject(new ChatClientError('CLOSED', `${event}: the client is closed`, undefined, event))
    const id = this.line.nextId()
    const frame = JSON.stringify(data === undefined ? { event, id } : { event, id, data })
    return new Promise((resolve, reject) => {
      const request: PendingRequest = { event, frame, sent: false, timer: null, resolve, reject }
      const timeoutMs = this.options.requestTimeoutMs ?? 10000
      request.timer = setTimeout(() => {
        this.requests.delete(id)
        const at = this.queued.indexOf(id)
        if (at >= 0) this.queued.splice(at, 1)
        reject(new ChatClientError('TIMEOUT', `${event}: no reply within ${timeoutMs} ms`, undefined, event))
      }, timeoutMs)
      this.requests.set(id, request)
      if (this.line.live || (internal && this.line.sessionUp)) this.write(request)
      else if (internal) {
        this.requests.delete(id)
        if (request.timer !== null) clearTimeout(request.timer)
        reject(new ChatClientError('DISCONNECTED', `${event}: no session`, undefined, event))
      } else this.queued.push(id)
    })
  }

  /** An ack (error null) or an error for a request; false when no request waits under this id. */
  settle (id: string, data: Record<string, unknown>, error: ChatClientError | null): boolean {
    const request = this.requests.get(id)
    if (request === undefined) return false
    this.forget(id, request)
    if (error === null) request.resolve(data)
    else request.reject(error)
    return true
  }

  /** Sends the requests queued while no session was live, in the order they were made. */
  sendQueued (): void {
    for (const id of this.queued.splice(0)) {
      const request = this.requests.get(id)
      if (request !== undefined && !request.sent) this.write(request)
    }
  }

  /** The socket closed: what was sent on it may or may not have happened, and rejects with DISCONNECTED. */
  disconnected (code: number, reason: string): void {
    for (const [id, request] of [...this.requests]) {
      if (!request.sent) continue
      this.forget(id, request)
      request.reject(new ChatClientError('DISCONNECTED', `${request.event}: the connection closed before the reply (code ${code})`, { code, reason }, request.event))
    }
  }

  /** The client stopped for good: every request rejects with its code. */
  rejectAll (code: string, message: string): void {
    for (const [id, request] of [...this.requests]) {
      this.forget(id, request)
      request.reject(new ChatClientError(code, `${request.event}: ${message}`, undefined, request.event))
    }
    this.queued.length = 0
  }

  private write (request: PendingRequest): void {
    request.sent = true
    this.line.send(request.frame)
  }

  private forget (id: string, request: PendingRequest): void {
    this.requests.delete(id)
    if (request.timer !== null) clearTimeout(request.timer)
  }
}
