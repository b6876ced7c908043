import { backoffDelay } from './backoff.js'
import { ChatClientError } from './errors.js'
import type { ConnectionState, Emitter, StateChange } from './events.js'
import type { ChatClientOptions, WebSocketConstructor, WebSocketLike } from './options.js'
import { SessionToken } from './token.js'
import type { SessionReady } from './types.js'

/** Close code the client reports for a socket it gave up on itself (no session.ready, no pong). */
export const CLIENT_GAVE_UP = 4000
const OPEN = 1

/** Why the transport stopped for good: what every waiting request and send rejects with. */
export type StopCode = 'CLOSED' | 'UNAUTHENTICATED' | 'DISCONNECTED'

/** What the transport hands to the rest of the client. */
export interface TransportHooks {
  /** An ack (error null) or an error frame, by its envelope id (undefined: an error that answers nothing). */
  answer (id: string | undefined, data: Record<string, unknown>, error: ChatClientError | null): void
  /** A server push other than session.ready. */
  push (event: string, data: Record<string, unknown>): void
  /** session.ready on the current socket. */
  ready (ready: SessionReady): void
  /** The current socket is gone (closed, or given up on); a reconnect is decided right after. */
  lost (code: number, reason: string): void
  /** Stopped for good: every request and send still waiting rejects with this code. */
  stopped (code: StopCode, message: string): void
  /** Sends `auth` with a fresh token on the current session (a token refresh). */
  reauthenticate (token: string): Promise<unknown>
}

/** The socket and the generation a session started on: its later steps check they are still current. */
export interface SessionTicket {
  readonly socket: WebSocketLike | null
  readonly generation: number
}

/**
 * One socket at a time and its life: open it with a token (sent in the first frame, not in the URL),
 * parse the envelope of what comes back, give up on a socket that does not answer (no session.ready,
 * no pong), reconnect with backoff, refresh the token before it expires, stop for good. What a frame
 * means to requests, sends and rooms is the client's business: the transport hands it on (hooks).
 */
export class Transport {
  private readonly options: ChatClientOptions
  private readonly events: Emitter
  private readonly hooks: TransportHooks
  private readonly Socket: WebSocketConstructor
  private readonly token: SessionToken
  private readyWaiters: Array<{ resolve: (ready: SessionReady) => void, reject: (error: ChatClientError) => void }> = []

  private socket: WebSocketLike | null = null
  /** Bumped for every socket: work of an older socket never touches a newer one. */
  private currentGeneration = 0
  private sessionIsUp = false
  private isLive = false
  private stopped = true
  private attempt = 0
  private counter = 0
  private currentState: ConnectionState = 'idle'
  private lastReady: SessionReady | null = null

  private reconnectTimer: ReturnType<typeof setTimeout> | null = null
  private connectTimer: ReturnType<typeof setTimeout> | null = null
  private pingTimer: ReturnType<typeof setInterval> | null = null
  private pingOutstanding = false

  constructor (options: ChatClientOptions, events: Emitter, hooks: TransportHooks) {
    this.options = options
    this.events = events
    this.hooks = hooks
    const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (Socket === undefined) throw new TypeError('ChatClient: no global WebSocket here; pass options.WebSocket (on Node: the `ws` package\'s class)')
    this.Socket = Socket
    this.token = new SessionToken(options, (token) => hooks.reauthenticate(token), (error) => events.emitError(error))
  }

  get state (): ConnectionState {
    return this.currentState
  }

  get generation (): number {
    return this.currentGeneration
  }

  /** session.ready came on the current socket. */
  get sessionUp (): boolean {
    return this.sessionIsUp
  }

  /** A session is up and its resume is done: requests and sends go out at once. */
  get live (): boolean {
    return this.isLive
  }

  /** Stopped after it had started (close(), or given up): new requests reject with CLOSED. */
  get closed (): boolean {
    return this.stopped && this.currentState !== 'idle'
  }

  /** An open socket with a session up. */
  get writable (): boolean {
    return this.socket !== null && this.socket.readyState === OPEN && this.sessionIsUp
  }

  /** The next envelope `id`; unique on this client, across sockets. */
  nextId (): string {
    this.counter += 1
    return `c${this.counter}`
  }

  /** Writes a frame on the current socket, if there is one. */
  send (frame: string): void {
    this.socket?.send(frame)
  }

  connect (): Promise<SessionReady> {
    if (!this.stopped && this.sessionIsUp && this.lastReady !== null) return Promise.resolve(this.lastReady)
    const ready = new Promise<SessionReady>((resolve, reject) => { this.readyWaiters.push({ resolve, reject }) })
    if (this.stopped) {
      this.stopped = false
      this.attempt = 0
      void this.open()
    }
    return ready
  }

  async close (): Promise<void> {
    const socket = this.socket
    this.stop('CLOSED', 'the client was closed')
    this.setState({ state: 'closed', attempt: this.attempt, code: 1000, reason: 'client closed', willReconnect: false })
    if (socket === null) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000)
      socket.onclose = () => {
        clearTimeout(timer)
        resolve()
      }
      socket.onerror = () => {}
      try {
        socket.close(1000, 'client closed')
      } catch {
        clearTimeout(timer)
        resolve()
      }
      if (socket.readyState === 3) {
        clearTimeout(timer)
        resolve()
      }
    })
  }

  // A session's steps, in the order the client takes them on session.ready

  /** session.ready arrived: the attempt succeeded. Returns the ticket the later steps check. */
  sessionStarted (ready: SessionReady): SessionTicket {
    const ticket = { socket: this.socket, generation: this.currentGeneration }
    if (this.connectTimer !== null) clearTimeout(this.connectTimer)
    this.connectTimer = null
    this.sessionIsUp = true
    this.attempt = 0
    this.lastReady = ready
    return ticket
  }

  /** The state goes open and connect() resolves. */
  opened (ready: SessionReady): void {
    this.setState({ state: 'open', attempt: 0 })
    const waiters = this.readyWaiters
    this.readyWaiters = []
    for (const waiter of waiters) waiter.resolve(ready)
  }

  isCurrent (ticket: SessionTicket): boolean {
    return ticket.socket !== null && ticket.socket === this.socket && ticket.generation === this.currentGeneration
  }

  /** Pings and the token refresh of the current socket start. */
  keepAlive (): void {
    if (this.socket !== null) this.startPing(this.socket)
    const generation = this.currentGeneration
    this.token.scheduleRefresh(() => generation === this.currentGeneration)
  }

  /** The resume is done: requests and sends go out at once from now on. */
  goLive (): void {
    this.isLive = true
  }

  // The socket

  private async open (presetToken?: string): Promise<void> {
    const generation = ++this.currentGeneration
    this.reconnectTimer = null
    this.setState({ state: 'connecting', attempt: this.attempt })
    let token: string
    try {
      token = presetToken ?? await this.token.fetch()
    } catch (error) {
      if (this.stopped || generation !== this.currentGeneration) return
      this.events.emitError(new ChatClientError('UNAUTHENTICATED', `the token provider failed: ${error instanceof Error ? error.message : String(error)}`))
      this.retryLater(CLIENT_GAVE_UP, 'token provider failed')
      return
    }
    if (this.stopped || generation !== this.currentGeneration) return
    this.token.last = token
    let socket: WebSocketLike
    try {
      socket = new this.Socket(this.options.url)
    } catch (error) {
      this.events.emitError(new ChatClientError('DISCONNECTED', `cannot open ${this.options.url}: ${error instanceof Error ? error.message : String(error)}`))
      this.retryLater(CLIENT_GAVE_UP, 'cannot open the socket')
      return
    }
    this.socket = socket
    this.connectTimer = setTimeout(() => this.abandon(socket, 'no session within connectTimeoutMs'), this.options.connectTimeoutMs ?? 10000)
    // The token goes in the first frame, not in the URL: URLs end up in logs.
    socket.onopen = () => socket.send(JSON.stringify({ event: 'auth', data: { token } }))
    socket.onmessage = (event: { data: unknown }) => {
      if (this.socket === socket) this.receive(typeof event.data === 'string' ? event.data : String(event.data))
    }
    socket.onclose = (event: { code?: number, reason?: string }) => this.gone(socket, event.code ?? 1006, event.reason ?? '')
    socket.onerror = () => {}
  }

  /** The envelope: `{event, id?, data?, error?}`; anything else is dropped. */
  private receive (text: string): void {
    this.pingOutstanding = false
    let frame: { event?: unknown, id?: unknown, data?: unknown, error?: unknown }
    try {
      frame = JSON.parse(text) as typeof frame
    } catch {
      return
    }
    if (typeof frame !== 'object' || frame === null || typeof frame.event !== 'string') return
    const data = (typeof frame.data === 'object' && frame.data !== null ? frame.data : {}) as Record<string, unknown>
    const id = typeof frame.id === 'string' ? frame.id : undefined
    switch (frame.event) {
      case 'ack':
        if (id !== undefined) this.hooks.answer(id, data, null)
        return
      case 'error': {
        const wire = (frame.error ?? {}) as { code?: string, message?: string, details?: unknown, event?: string }
        this.hooks.answer(id, {}, new ChatClientError(wire.code ?? 'INTERNAL', wire.message ?? 'error', wire.details, wire.event))
        return
      }
      case 'pong':
        return
      case 'session.ready':
        this.hooks.ready(data as unknown as SessionReady)
        return
      default:
        this.hooks.push(frame.event, data)
    }
  }

  /** Gives up on a socket that stopped answering: detached at once, since its close may never come. */
  private abandon (socket: WebSocketLike, reason: string): void {
    socket.onopen = null
    socket.onmessage = null
    socket.onclose = null
    socket.onerror = () => {}
    try {
      socket.close(CLIENT_GAVE_UP, reason)
    } catch {
      // already closing
    }
    this.gone(socket, CLIENT_GAVE_UP, reason)
  }

  private gone (socket: WebSocketLike, code: number, reason: string): void {
    if (this.socket !== socket) return
    this.socket = null
    this.sessionIsUp = false
    this.isLive = false
    this.currentGeneration += 1
    this.clearSocketTimers()
    this.hooks.lost(code, reason)
    if (this.stopped) return
    if (code === 4401) {
      void this.afterRefusal(code, reason)
      return
    }
    this.retryLater(code, reason)
  }

  // Reconnects

  private retryLater (code: number, reason: string): void {
    const reconnect = this.options.reconnect
    const maxAttempts = reconnect === false ? 0 : reconnect?.maxAttempts ?? Infinity
    if (this.attempt >= maxAttempts) {
      this.giveUp(code, reason, 'DISCONNECTED')
      return
    }
    this.reconnectAfterBackoff(code, reason, () => { void this.open() })
  }

  /** 4401: the token was refused. Only a token provider that yields another token earns a new attempt. */
  private async afterRefusal (code: number, reason: string): Promise<void> {
    if (!this.token.renewable) {
      this.giveUp(code, reason, 'UNAUTHENTICATED')
      return
    }
    const generation = this.currentGeneration
    let token: string
    try {
      token = await this.token.fetch()
    } catch (error) {
      if (this.stopped || generation !== this.currentGeneration) return
      this.events.emitError(new ChatClientError('UNAUTHENTICATED', `the token provider failed: ${error instanceof Error ? error.message : String(error)}`))
      // Not a refusal of a new token: ask the provider again later, still without opening a socket.
      this.reconnectAfterBackoff(code, reason, () => { void this.afterRefusal(code, reason) })
      return
    }
    if (this.stopped || generation !== this.currentGeneration) return
    if (token === this.token.last || this.options.reconnect === false) {
      this.giveUp(code, reason, 'UNAUTHENTICATED')
      return
    }
    this.reconnectAfterBackoff(code, reason, () => { void this.open(token) })
  }

  /** The next attempt after a jittered backoff; the state says closed, and when the client tries again. */
  private reconnectAfterBackoff (code: number, reason: string, next: () => void): void {
    const reconnect = this.options.reconnect
    const delay = backoffDelay(this.attempt, reconnect === false ? {} : reconnect, this.options.random)
    this.attempt += 1
    this.setState({ state: 'closed', attempt: this.attempt, code, reason, willReconnect: true, reconnectInMs: delay })
    this.reconnectTimer = setTimeout(next, delay)
  }

  private giveUp (code: number, reason: string, errorCode: 'UNAUTHENTICATED' | 'DISCONNECTED'): void {
    const message = errorCode === 'UNAUTHENTICATED'
      ? `the server refused the token (${code} ${reason}) and no new token came`
      : `the connection closed (${code} ${reason}) and the client stopped reconnecting`
    this.stop(errorCode, message)
    this.setState({ state: 'closed', attempt: this.attempt, code, reason, willReconnect: false })
    this.events.emitError(new ChatClientError(errorCode, message, { code, reason }))
  }

  /** Stops for good: no socket, no timers, every waiting promise rejected. */
  private stop (code: StopCode, message: string): void {
    this.stopped = true
    this.currentGeneration += 1
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer)
    this.reconnectTimer = null
    this.clearSocketTimers()
    const socket = this.socket
    this.socket = null
    this.sessionIsUp = false
    this.isLive = false
    if (socket !== null) {
      socket.onmessage = null
      socket.onopen = null
    }
    this.hooks.stopped(code, message)
    const waiters = this.readyWaiters
    this.readyWaiters = []
    for (const waiter of waiters) waiter.reject(new ChatClientError(code, message))
  }

  private clearSocketTimers (): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer)
    if (this.pingTimer !== null) clearInterval(this.pingTimer)
    this.token.cancelRefresh()
    this.connectTimer = null
    this.pingTimer = null
    this.pingOutstanding = false
  }

  private setState (change: StateChange): void {
    this.currentState = change.state
    this.events.emit('state', change)
  }

  // Liveness

  private startPing (socket: WebSocketLike): void {
    const interval = this.options.pingIntervalMs ?? 25000
    if (interval <= 0) return
    this.pingOutstanding = false
    this.pingTimer = setInterval(() => {
      if (this.socket !== socket) return
      if (this.pingOutstanding) {
        this.abandon(socket, 'no pong')
        return
      }
      this.pingOutstanding = true
      socket.send(JSON.stringify({ event: 'ping' }))
    }, interval)
  }
}
