import { backoffDelay, type BackoffOptions } from './backoff.js'
import { ChatClientError } from './errors.js'
import {
  DURABLE_EVENTS, type CreateRoomInput, type HistoryPage, type Message, type PresenceStatus, type PushEvents, type Requests,
  type Role, type RoomEvent, type RoomPatch, type SendOptions, type SessionReady, type SyncRoom,
} from './types.js'

/**
 * The part of the WebSocket API the client uses. The browser's WebSocket and the `ws` package's both have
 * it, so the client runs in both without a dependency: pass `ws`'s class as `options.WebSocket` on Node 20.
 */
export interface WebSocketLike {
  readonly readyState: number
  send (data: string): void
  close (code?: number, reason?: string): void
  onopen: ((event: any) => void) | null
  onmessage: ((event: any) => void) | null
  onclose: ((event: any) => void) | null
  onerror: ((event: any) => void) | null
}

export type WebSocketConstructor = new (url: string) => WebSocketLike

/** A token, or a function that returns one; the function is called again before every (re)connect. */
export type TokenSource = string | (() => string | Promise<string>)

export interface ReconnectOptions extends BackoffOptions {
  /** Give up after this many failed attempts in a row (never, by default). */
  maxAttempts?: number
}

export interface ChatClientOptions {
  /** The WebSocket endpoint, e.g. `wss://chat.example.com/ws`. */
  url: string
  token: TokenSource
  /** The WebSocket class; the global one by default (browsers, Node 22+). On Node 20 pass `ws`'s. */
  WebSocket?: WebSocketConstructor
  /** A request without a reply by then rejects with TIMEOUT (10 000 ms). */
  requestTimeoutMs?: number
  /** How long a `sendMessage` stays in the outbox, across reconnects, before it rejects with TIMEOUT (120 000 ms). */
  sendTimeoutMs?: number
  /** From opening a socket to `session.ready`; past it the attempt counts as failed (10 000 ms). */
  connectTimeoutMs?: number
  /** Sends `{"event":"ping"}` this often and reconnects when nothing came back by the next one (25 000 ms; 0: never). */
  pingIntervalMs?: number
  /** Backoff of reconnects (exponential with full jitter), or false to never reconnect. */
  reconnect?: ReconnectOptions | false
  /** With a token function: refresh the token of an open socket before its `exp` (true). */
  refreshToken?: boolean
  /** Random numbers in [0, 1) for the jitter (Math.random). */
  random?: () => number
  /** Makes each send's clientMsgId (crypto.randomUUID). */
  newId?: () => string
}

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'closed'

export interface StateChange {
  state: ConnectionState
  /** Failed attempts in a row before this one. */
  attempt: number
  /** closed: the socket's close code (4000 when the client gave up on a socket that did not answer). */
  code?: number
  reason?: string
  /** closed: whether the client will connect again by itself. */
  willReconnect?: boolean
  /** closed: when it will. */
  reconnectInMs?: number
}

/** What the client emits: every server push by its event name, and its own events. */
export interface ChatClientEvents extends PushEvents {
  /** connecting, open (session.ready received), closed. */
  'state': StateChange
  /** The room's cursor was outside what the server keeps: reload it with `history`. */
  'resync': { roomId: string, lastSeq: number }
  /** A round of `sync` (after a reconnect or a gap) finished: the missed events were emitted before this. */
  'synced': { roomIds: string[] }
  /** An error frame that answered no request, a failed token provider, a listener that threw, a refused token. */
  'error': ChatClientError
}

type Listener<T> = (data: T) => void

interface PendingRequest {
  event: string
  frame: string
  sent: boolean
  timer: ReturnType<typeof setTimeout> | null
  resolve: (data: Record<string, unknown>) => void
  reject: (error: ChatClientError) => void
}

interface OutboxEntry {
  clientMsgId: string
  roomId: string
  data: Record<string, unknown>
  /** The id of the frame in flight on the current socket; null while not sent on it. */
  requestId: string | null
  deadline: ReturnType<typeof setTimeout> | null
  retry: ReturnType<typeof setTimeout> | null
  resolve: (data: { message: Message }) => void
  reject: (error: ChatClientError) => void
}

interface RoomCursor {
  /** The highest seq applied with nothing missing below it. */
  cursor: number
  /** Seqs above the cursor this client already has: its own acked sends (never echoed to the sending socket). */
  ahead: Set<number>
  /** Pushes that arrived after a gap, held until the gap is filled. */
  held: Map<number, RoomEvent>
  syncing: boolean
}

const OPEN = 1
const SYNC_BATCH = 500
const MAX_TIMER_MS = 2_147_483_647
/** Changes whose ack says where they landed in the room (their push goes to the other sockets only). */
const OWN_CHANGES = new Set(['message.edit', 'message.delete', 'reaction.add', 'reaction.remove'])
/** Close code the client reports for a socket it gave up on itself (no session.ready, no pong). */
export const CLIENT_GAVE_UP = 4000

function uuid (): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto
  if (crypto?.randomUUID !== undefined) return crypto.randomUUID()
  // Older runtimes: an RFC 4122 v4 layout from Math.random, good enough for a retry key.
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
    const r = Math.floor(Math.random() * 16)
    return (c === 'x' ? r : (r & 0x3) | 0x8).toString(16)
  })
}

/** The `exp` claim of a JWT (seconds), or null; the signature is the server's business. */
export function tokenExpiry (token: string): number | null {
  const part = token.split('.')[1]
  const decode = (globalThis as { atob?: (data: string) => string }).atob
  if (part === undefined || decode === undefined) return null
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=')
    const claims = JSON.parse(decode(base64)) as { exp?: unknown }
    return typeof claims.exp === 'number' ? claims.exp : null
  } catch {
    return null
  }
}

function textOf (data: unknown): string {
  return typeof data === 'string' ? data : String(data)
}

/**
 * A chat client over one WebSocket: typed requests answered by promises, typed listeners, reconnects with
 * backoff, lossless resume through `sync`, and an outbox that retries sends without duplicates.
 */
export class ChatClient {
  private readonly options: ChatClientOptions
  private readonly Socket: WebSocketConstructor
  private readonly listeners = new Map<string, Set<Listener<any>>>()
  private readonly requests = new Map<string, PendingRequest>()
  /** Requests made while no session was live, in order. */
  private readonly queued: string[] = []
  private readonly outbox = new Map<string, OutboxEntry>()
  private readonly sendsInFlight = new Map<string, OutboxEntry>()
  private readonly rooms = new Map<string, RoomCursor>()
  private readonly syncWanted = new Set<string>()
  private readyWaiters: Array<{ resolve: (ready: SessionReady) => void, reject: (error: ChatClientError) => void }> = []

  private socket: WebSocketLike | null = null
  /** Bumped for every socket: work of an older socket never touches a newer one. */
  private generation = 0
  private sessionUp = false
  private live = false
  private stopped = true
  private attempt = 0
  private counter = 0
  private currentState: ConnectionState = 'idle'
  private lastToken: string | null = null
  private me: string | null = null
  private hadSession = false
  private lastReady: SessionReady | null = null
  private syncScheduled = false

  private reconnectTimer: ReturnType<typeof setTimeout> | null = null
  private connectTimer: ReturnType<typeof setTimeout> | null = null
  private pingTimer: ReturnType<typeof setInterval> | null = null
  private refreshTimer: ReturnType<typeof setTimeout> | null = null
  private pingOutstanding = false

  constructor (options: ChatClientOptions) {
    this.options = options
    const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (Socket === undefined) throw new TypeError('ChatClient: no global WebSocket here; pass options.WebSocket (on Node: the `ws` package\'s class)')
    this.Socket = Socket
  }

  /** connecting, open (a session is up), closed, or idle before the first connect(). */
  get state (): ConnectionState {
    return this.currentState
  }

  /** The user of the current (or last) session. */
  get userId (): string | null {
    return this.me
  }

  /** Sends that have no ack yet (waiting for a connection, or in flight). */
  get pendingSends (): number {
    return this.outbox.size
  }

  /** The highest seq applied in a room with nothing missing below it; undefined for a room not tracked. */
  cursor (roomId: string): number | undefined {
    return this.rooms.get(roomId)?.cursor
  }

  /** Opens the connection; resolves with the next session.ready. Reconnects on its own after that. */
  connect (): Promise<SessionReady> {
    if (!this.stopped && this.sessionUp && this.lastReady !== null) return Promise.resolve(this.lastReady)
    const ready = new Promise<SessionReady>((resolve, reject) => { this.readyWaiters.push({ resolve, reject }) })
    if (this.stopped) {
      this.stopped = false
      this.attempt = 0
      void this.open()
    }
    return ready
  }

  /**
   * Closes the socket cleanly and never reconnects (until connect() again). Requests and sends still
   * waiting reject with CLOSED; a send already in flight may have been stored all the same.
   */
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

  // Listeners

  /** Listens to a push (`message.new`, `typing`, ...) or a client event (`state`, `resync`, ...); returns the unsubscribe. */
  on<K extends keyof ChatClientEvents> (event: K, listener: Listener<ChatClientEvents[K]>): () => void
  on (event: string, listener: Listener<any>): () => void
  on (event: string, listener: Listener<any>): () => void {
    let set = this.listeners.get(event)
    if (set === undefined) {
      set = new Set()
      this.listeners.set(event, set)
    }
    set.add(listener)
    return () => this.off(event, listener)
  }

  once<K extends keyof ChatClientEvents> (event: K, listener: Listener<ChatClientEvents[K]>): () => void
  once (event: string, listener: Listener<any>): () => void
  once (event: string, listener: Listener<any>): () => void {
    const off = this.on(event, (data: unknown) => {
      off()
      listener(data)
    })
    return off
  }

  off (event: string, listener: Listener<any>): void {
    this.listeners.get(event)?.delete(listener)
  }

  // Requests

  /** Any request by its event name; resolves with the ack's data, rejects with a ChatClientError. */
  request<K extends keyof Requests> (event: K, data: Requests[K]['data']): Promise<Requests[K]['ack']>
  request (event: string, data?: Record<string, unknown>): Promise<Record<string, unknown>>
  request (event: string, data?: Record<string, unknown>): Promise<unknown> {
    if (event === 'message.send') {
      const { roomId, content, ...rest } = (data ?? {}) as unknown as { roomId: string, content: string } & SendOptions
      return this.sendMessage(roomId, content, rest)
    }
    return this.enqueue(event, data).then((ack) => {
      this.afterAck(event, data, ack)
      return ack
    })
  }

  /**
   * Sends a message. It always carries a clientMsgId, and stays in the outbox until acked: a send made
   * while disconnected, or cut off before its ack, is sent again after the reconnect with the same
   * clientMsgId, so the server stores it once; the promise resolves with the original either way.
   */
  sendMessage (roomId: string, content: string, options: SendOptions = {}): Promise<{ message: Message }> {
    if (this.stopped && this.currentState !== 'idle') return Promise.reject(new ChatClientError('CLOSED', 'the client is closed', undefined, 'message.send'))
    const clientMsgId = options.clientMsgId ?? (this.options.newId ?? uuid)()
    const existing = this.outbox.get(clientMsgId)
    if (existing !== undefined) return new Promise((resolve, reject) => {
      const { resolve: first, reject: firstReject } = existing
      existing.resolve = (value) => { first(value); resolve(value) }
      existing.reject = (error) => { firstReject(error); reject(error) }
    })
    const data: Record<string, unknown> = { roomId, content, clientMsgId }
    if (options.type !== undefined) data.type = options.type
    if (options.replyToId !== undefined) data.replyToId = options.replyToId
    if (options.attachments !== undefined) data.attachments = options.attachments
    return new Promise((resolve, reject) => {
      const entry: OutboxEntry = { clientMsgId, roomId, data, requestId: null, deadline: null, retry: null, resolve, reject }
      entry.deadline = setTimeout(() => {
        this.dropFromOutbox(entry)
        reject(new ChatClientError('TIMEOUT', `message.send: no ack within ${this.sendTimeoutMs} ms`, undefined, 'message.send'))
      }, Math.min(this.sendTimeoutMs, MAX_TIMER_MS))
      this.outbox.set(clientMsgId, entry)
      if (this.live) this.transmit(entry)
    })
  }

  editMessage (messageId: string, content: string): Promise<Requests['message.edit']['ack']> {
    return this.request('message.edit', { messageId, content })
  }

  deleteMessage (messageId: string): Promise<Requests['message.delete']['ack']> {
    return this.request('message.delete', { messageId })
  }

  react (messageId: string, emoji: string): Promise<Requests['reaction.add']['ack']> {
    return this.request('reaction.add', { messageId, emoji })
  }

  unreact (messageId: string, emoji: string): Promise<Requests['reaction.remove']['ack']> {
    return this.request('reaction.remove', { messageId, emoji })
  }

  /** A page of history ascending by seq: `before` a seq, `after` one, or the latest. */
  history (roomId: string, page: HistoryPage = {}): Promise<Requests['history.fetch']['ack']> {
    return this.request('history.fetch', { roomId, ...page })
  }

  markRead (roomId: string, seq: number): Promise<Requests['message.read']['ack']> {
    return this.request('message.read', { roomId, seq })
  }

  createRoom (input: CreateRoomInput): Promise<Requests['room.create']['ack']> {
    return this.request('room.create', input)
  }

  openDirect (userId: string): Promise<Requests['dm.open']['ack']> {
    return this.request('dm.open', { userId })
  }

  joinRoom (roomId: string): Promise<Requests['room.join']['ack']> {
    return this.request('room.join', { roomId })
  }

  leaveRoom (roomId: string): Promise<Record<string, never>> {
    return this.request('room.leave', { roomId })
  }

  updateRoom (roomId: string, patch: RoomPatch): Promise<Requests['room.update']['ack']> {
    return this.request('room.update', { roomId, ...patch })
  }

  deleteRoom (roomId: string): Promise<Record<string, never>> {
    return this.request('room.delete', { roomId })
  }

  members (roomId: string): Promise<Requests['room.members']['ack']> {
    return this.request('room.members', { roomId })
  }

  addMembers (roomId: string, userIds: string[]): Promise<Requests['room.member.add']['ack']> {
    return this.request('room.member.add', { roomId, userIds })
  }

  removeMember (roomId: string, userId: string): Promise<Record<string, never>> {
    return this.request('room.member.remove', { roomId, userId })
  }

  setRole (roomId: string, userId: string, role: Role): Promise<Requests['room.member.role']['ack']> {
    return this.request('room.member.role', { roomId, userId, role })
  }

  setPresence (status: PresenceStatus): Promise<Record<string, never>> {
    return this.request('presence.set', { status })
  }

  getPresence (userIds: string[]): Promise<Requests['presence.get']['ack']> {
    return this.request('presence.get', { userIds })
  }

  typingStart (roomId: string): Promise<Record<string, never>> {
    return this.request('typing.start', { roomId })
  }

  typingStop (roomId: string): Promise<Record<string, never>> {
    return this.request('typing.stop', { roomId })
  }

  toggleFavorite (type: 'ROOM' | 'USER', id: string): Promise<Requests['favorite.toggle']['ack']> {
    return this.request('favorite.toggle', { type, id })
  }

  /** Asks for every event after the cursors of these rooms (all tracked rooms by default) now. */
  async syncNow (roomIds?: string[]): Promise<void> {
    await this.runSync(roomIds ?? [...this.rooms.keys()])
  }

  // Connection

  private get sendTimeoutMs (): number {
    return this.options.sendTimeoutMs ?? 120000
  }

  private async tokenNow (): Promise<string> {
    const source = this.options.token
    return typeof source === 'function' ? await source() : source
  }

  private async open (presetToken?: string): Promise<void> {
    const generation = ++this.generation
    this.reconnectTimer = null
    this.setState({ state: 'connecting', attempt: this.attempt })
    let token: string
    try {
      token = presetToken ?? await this.tokenNow()
    } catch (error) {
      if (this.stopped || generation !== this.generation) return
      this.emitError(new ChatClientError('UNAUTHENTICATED', `the token provider failed: ${error instanceof Error ? error.message : String(error)}`))
      this.retryLater(CLIENT_GAVE_UP, 'token provider failed')
      return
    }
    if (this.stopped || generation !== this.generation) return
    this.lastToken = token
    let socket: WebSocketLike
    try {
      socket = new this.Socket(this.options.url)
    } catch (error) {
      this.emitError(new ChatClientError('DISCONNECTED', `cannot open ${this.options.url}: ${error instanceof Error ? error.message : String(error)}`))
      this.retryLater(CLIENT_GAVE_UP, 'cannot open the socket')
      return
    }
    this.socket = socket
    this.connectTimer = setTimeout(() => this.abandon(socket, 'no session within connectTimeoutMs'), this.options.connectTimeoutMs ?? 10000)
    // The token goes in the first frame, not in the URL: URLs end up in logs.
    socket.onopen = () => socket.send(JSON.stringify({ event: 'auth', data: { token } }))
    socket.onmessage = (event: { data: unknown }) => {
      if (this.socket === socket) this.receive(textOf(event.data))
    }
    socket.onclose = (event: { code?: number, reason?: string }) => this.gone(socket, event.code ?? 1006, event.reason ?? '')
    socket.onerror = () => {}
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
    this.sessionUp = false
    this.live = false
    this.generation += 1
    this.clearSocketTimers()
    for (const room of this.rooms.values()) room.syncing = false
    this.syncWanted.clear()
    for (const [id, request] of [...this.requests]) {
      if (!request.sent) continue
      this.requests.delete(id)
      if (request.timer !== null) clearTimeout(request.timer)
      request.reject(new ChatClientError('DISCONNECTED', `${request.event}: the connection closed before the reply (code ${code})`, { code, reason }, request.event))
    }
    this.sendsInFlight.clear()
    for (const entry of this.outbox.values()) {
      entry.requestId = null
      if (entry.retry !== null) clearTimeout(entry.retry)
      entry.retry = null
    }
    if (this.stopped) return
    if (code === 4401) {
      void this.afterRefusal(code, reason)
      return
    }
    this.retryLater(code, reason)
  }

  private retryLater (code: number, reason: string): void {
    const reconnect = this.options.reconnect
    const maxAttempts = reconnect === false ? 0 : reconnect?.maxAttempts ?? Infinity
    if (this.attempt >= maxAttempts) {
      this.giveUp(code, reason, 'DISCONNECTED')
      return
    }
    const delay = backoffDelay(this.attempt, reconnect === false ? {} : reconnect, this.options.random)
    this.attempt += 1
    this.setState({ state: 'closed', attempt: this.attempt, code, reason, willReconnect: true, reconnectInMs: delay })
    this.reconnectTimer = setTimeout(() => { void this.open() }, delay)
  }

  /** 4401: the token was refused. Only a token provider that yields another token earns a new attempt. */
  private async afterRefusal (code: number, reason: string): Promise<void> {
    if (typeof this.options.token !== 'function') {
      this.giveUp(code, reason, 'UNAUTHENTICATED')
      return
    }
    const generation = this.generation
    let token: string
    try {
      token = await this.tokenNow()
    } catch (error) {
      if (this.stopped || generation !== this.generation) return
      this.emitError(new ChatClientError('UNAUTHENTICATED', `the token provider failed: ${error instanceof Error ? error.message : String(error)}`))
      // Not a refusal of a new token: ask the provider again later, still without opening a socket.
      const delay = backoffDelay(this.attempt, this.options.reconnect === false ? {} : this.options.reconnect, this.options.random)
      this.attempt += 1
      this.setState({ state: 'closed', attempt: this.attempt, code, reason, willReconnect: true, reconnectInMs: delay })
      this.reconnectTimer = setTimeout(() => { void this.afterRefusal(code, reason) }, delay)
      return
    }
    if (this.stopped || generation !== this.generation) return
    if (token === this.lastToken) {
      this.giveUp(code, reason, 'UNAUTHENTICATED')
      return
    }
    const reconnect = this.options.reconnect
    if (reconnect === false) {
      this.giveUp(code, reason, 'UNAUTHENTICATED')
      return
    }
    const delay = backoffDelay(this.attempt, reconnect, this.options.random)
    this.attempt += 1
    this.setState({ state: 'closed', attempt: this.attempt, code, reason, willReconnect: true, reconnectInMs: delay })
    this.reconnectTimer = setTimeout(() => { void this.open(token) }, delay)
  }

  private giveUp (code: number, reason: string, errorCode: 'UNAUTHENTICATED' | 'DISCONNECTED'): void {
    const message = errorCode === 'UNAUTHENTICATED'
      ? `the server refused the token (${code} ${reason}) and no new token came`
      : `the connection closed (${code} ${reason}) and the client stopped reconnecting`
    this.stop(errorCode, message)
    this.setState({ state: 'closed', attempt: this.attempt, code, reason, willReconnect: false })
    this.emitError(new ChatClientError(errorCode, message, { code, reason }))
  }

  /** Stops for good: no socket, no timers, every waiting promise rejected. */
  private stop (code: 'CLOSED' | 'UNAUTHENTICATED' | 'DISCONNECTED', message: string): void {
    this.stopped = true
    this.generation += 1
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer)
    this.reconnectTimer = null
    this.clearSocketTimers()
    const socket = this.socket
    this.socket = null
    this.sessionUp = false
    this.live = false
    if (socket !== null) {
      socket.onmessage = null
      socket.onopen = null
    }
    for (const [id, request] of [...this.requests]) {
      this.requests.delete(id)
      if (request.timer !== null) clearTimeout(request.timer)
      request.reject(new ChatClientError(code, `${request.event}: ${message}`, undefined, request.event))
    }
    this.queued.length = 0
    for (const entry of [...this.outbox.values()]) {
      this.dropFromOutbox(entry)
      entry.reject(new ChatClientError(code, `message.send: ${message}`, undefined, 'message.send'))
    }
    const waiters = this.readyWaiters
    this.readyWaiters = []
    for (const waiter of waiters) waiter.reject(new ChatClientError(code, message))
    for (const room of this.rooms.values()) room.syncing = false
    this.syncWanted.clear()
  }

  private clearSocketTimers (): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer)
    if (this.pingTimer !== null) clearInterval(this.pingTimer)
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer)
    this.connectTimer = null
    this.pingTimer = null
    this.refreshTimer = null
    this.pingOutstanding = false
  }

  private setState (change: StateChange): void {
    this.currentState = change.state
    this.emit('state', change)
  }

  // Frames

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
        if (id !== undefined) this.settle(id, data, null)
        return
      case 'error': {
        const wire = (frame.error ?? {}) as { code?: string, message?: string, details?: unknown, event?: string }
        const error = new ChatClientError(wire.code ?? 'INTERNAL', wire.message ?? 'error', wire.details, wire.event)
        if (id !== undefined && (this.requests.has(id) || this.sendsInFlight.has(id))) this.settle(id, {}, error)
        else this.emitError(error)
        return
      }
      case 'pong':
        return
      case 'session.ready':
        void this.sessionReady(data as unknown as SessionReady)
        return
      default:
        this.push(frame.event, data)
    }
  }

  private push (event: string, data: Record<string, unknown>): void {
    if (DURABLE_EVENTS.has(event) && typeof data.roomId === 'string' && typeof data.seq === 'number') {
      this.durable(event, data, false)
      return
    }
    if (event === 'room.added') {
      const room = data.room as { id?: unknown, lastSeq?: unknown } | undefined
      if (typeof room?.id === 'string' && typeof room.lastSeq === 'number') this.track(room.id, room.lastSeq)
    } else if (event === 'room.removed' && typeof data.roomId === 'string') {
      this.rooms.delete(data.roomId)
    }
    this.emit(event, data)
  }

  private async sessionReady (ready: SessionReady): Promise<void> {
    const socket = this.socket
    const generation = this.generation
    if (this.connectTimer !== null) clearTimeout(this.connectTimer)
    this.connectTimer = null
    this.sessionUp = true
    this.attempt = 0
    this.me = ready.user.id
    this.lastReady = ready
    const resuming = this.hadSession
    this.hadSession = true
    // The rooms of this session: forget those lost while away, start the new ones at their lastSeq,
    // and ask for what was missed in the others.
    const current = new Map(ready.rooms.map((room) => [room.id, room.lastSeq]))
    for (const roomId of [...this.rooms.keys()]) if (!current.has(roomId)) this.rooms.delete(roomId)
    const behind: string[] = []
    for (const [roomId, lastSeq] of current) {
      const room = this.rooms.get(roomId)
      if (room === undefined) this.track(roomId, lastSeq)
      else if (resuming && (room.cursor !== lastSeq || room.held.size > 0)) behind.push(roomId)
    }
    this.emit('session.ready', ready)
    this.setState({ state: 'open', attempt: 0 })
    const waiters = this.readyWaiters
    this.readyWaiters = []
    for (const waiter of waiters) waiter.resolve(ready)
    if (socket === null || socket !== this.socket || generation !== this.generation) return
    this.startPing(socket)
    this.scheduleRefresh()
    if (behind.length > 0) await this.runSync(behind)
    if (socket !== this.socket || generation !== this.generation) return
    this.live = true
    // Unacked sends first (in their order), then the requests made while offline.
    for (const entry of this.outbox.values()) if (entry.requestId === null && entry.retry === null) this.transmit(entry)
    const queued = this.queued.splice(0)
    for (const id of queued) {
      const request = this.requests.get(id)
      if (request !== undefined && !request.sent) this.write(id, request)
    }
  }

  // Requests on the wire

  private nextId (): string {
    this.counter += 1
    return `c${this.counter}`
  }

  private enqueue (event: string, data: Record<string, unknown> | undefined, internal = false): Promise<Record<string, unknown>> {
    if (this.stopped && this.currentState !== 'idle') return Promise.reject(new ChatClientError('CLOSED', `${event}: the client is closed`, undefined, event))
    const id = this.nextId()
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
      // The client's own requests (sync, a token refresh) go out as soon as a session is up.
      if (this.live || (internal && this.sessionUp)) this.write(id, request)
      else if (internal) {
        this.requests.delete(id)
        if (request.timer !== null) clearTimeout(request.timer)
        reject(new ChatClientError('DISCONNECTED', `${event}: no session`, undefined, event))
      } else this.queued.push(id)
    })
  }

  private write (id: string, request: PendingRequest): void {
    request.sent = true
    this.socket?.send(request.frame)
  }

  private transmit (entry: OutboxEntry): void {
    const socket = this.socket
    if (socket === null || socket.readyState !== OPEN || !this.sessionUp) return
    const id = this.nextId()
    entry.requestId = id
    this.sendsInFlight.set(id, entry)
    socket.send(JSON.stringify({ event: 'message.send', id, data: entry.data }))
  }

  private settle (id: string, data: Record<string, unknown>, error: ChatClientError | null): void {
    const entry = this.sendsInFlight.get(id)
    if (entry !== undefined) {
      this.sendsInFlight.delete(id)
      entry.requestId = null
      if (!this.outbox.has(entry.clientMsgId)) return
      if (error === null) {
        this.sent(entry, data as { message: Message })
        return
      }
      if (error.code === 'RATE_LIMITED' || error.code === 'UNAVAILABLE') {
        // Worth another try on this socket, after the server's hint; the deadline still holds.
        const retryAfterMs = (error.details as { retryAfterMs?: number } | undefined)?.retryAfterMs ?? 1000
        entry.retry = setTimeout(() => {
          entry.retry = null
          if (this.live && this.outbox.has(entry.clientMsgId)) this.transmit(entry)
        }, retryAfterMs)
        return
      }
      this.dropFromOutbox(entry)
      entry.reject(error)
      return
    }
    const request = this.requests.get(id)
    if (request === undefined) return
    this.requests.delete(id)
    if (request.timer !== null) clearTimeout(request.timer)
    if (error === null) request.resolve(data)
    else request.reject(error)
  }

  /** A send's ack, or its message met in a push or a sync: resolve it once, and note its seq as held. */
  private sent (entry: OutboxEntry, ack: { message: Message }): void {
    this.dropFromOutbox(entry)
    const message = ack.message
    if (typeof message?.seq === 'number') this.ownEvent(entry.roomId, message.seq)
    entry.resolve(ack)
  }

  private dropFromOutbox (entry: OutboxEntry): void {
    this.outbox.delete(entry.clientMsgId)
    if (entry.requestId !== null) this.sendsInFlight.delete(entry.requestId)
    entry.requestId = null
    if (entry.deadline !== null) clearTimeout(entry.deadline)
    if (entry.retry !== null) clearTimeout(entry.retry)
    entry.deadline = null
    entry.retry = null
  }

  /** Keeps the room cursors in step with what this client did itself. */
  private afterAck (event: string, data: Record<string, unknown> | undefined, ack: Record<string, unknown>): void {
    if (event === 'room.create' || event === 'dm.open' || event === 'room.join') {
      const room = ack.room as { id?: unknown, lastSeq?: unknown } | undefined
      if (typeof room?.id === 'string' && typeof room.lastSeq === 'number') this.track(room.id, room.lastSeq)
    } else if ((event === 'room.leave' || event === 'room.delete') && typeof data?.roomId === 'string') {
      this.rooms.delete(data.roomId)
    } else if (OWN_CHANGES.has(event) && typeof ack.roomId === 'string' && typeof ack.seq === 'number') {
      // An edit, a deletion or a reaction of this client: its push went to the other sockets only.
      this.ownEvent(ack.roomId, ack.seq)
    }
  }

  /** A seq this client wrote itself and will not get as a push: the cursor moves over it when it gets there. */
  private ownEvent (roomId: string, seq: number): void {
    const room = this.rooms.get(roomId)
    if (room === undefined || seq <= room.cursor) return
    room.ahead.add(seq)
    this.advance(roomId, room)
  }

  // Cursors, gaps and sync

  private track (roomId: string, lastSeq: number): RoomCursor {
    let room = this.rooms.get(roomId)
    if (room === undefined) {
      room = { cursor: lastSeq, ahead: new Set(), held: new Map(), syncing: false }
      this.rooms.set(roomId, room)
    }
    return room
  }

  /**
   * One durable event, pushed or replayed: emitted once, in seq order. A push past a gap is held and
   * the gap is asked for with `sync`; whatever arrives twice (a push and its replay) is dropped.
   */
  private durable (event: string, data: Record<string, unknown>, replayed: boolean): void {
    const roomId = data.roomId as string
    const seq = data.seq as number
    let room = this.rooms.get(roomId)
    if (room === undefined) {
      if (replayed) return
      // A room this client has not heard of yet (its room.added is on the way): start from here.
      room = this.track(roomId, seq - 1)
    }
    if (seq <= room.cursor || room.held.has(seq)) return
    if (seq === room.cursor + 1) {
      this.apply(roomId, room, event, data)
      this.advance(roomId, room)
      return
    }
    if (room.ahead.has(seq)) return
    room.held.set(seq, { event, data })
    if (!replayed) this.wantSync(roomId)
  }

  private apply (roomId: string, room: RoomCursor, event: string, data: Record<string, unknown>): void {
    const seq = data.seq as number
    room.cursor = seq
    if (room.ahead.delete(seq)) return // this client's own send: it had the ack, not an echo
    if (event === 'message.new') {
      const message = data.message as Message | undefined
      const clientMsgId = message?.clientMsgId
      if (clientMsgId !== undefined && message?.sender?.id === this.me) {
        const entry = this.outbox.get(clientMsgId)
        if (entry !== undefined && entry.roomId === roomId) {
          // A send of this client stored before its ack was lost: it resolves the send instead.
          this.dropFromOutbox(entry)
          entry.resolve({ message: message as Message })
          return
        }
      }
    }
    this.emit(event, data)
  }

  /** Moves the cursor over this client's own seqs and over held pushes that are next. */
  private advance (roomId: string, room: RoomCursor): void {
    for (;;) {
      const next = room.cursor + 1
      if (room.ahead.delete(next)) {
        room.cursor = next
        continue
      }
      const held = room.held.get(next)
      if (held !== undefined) {
        room.held.delete(next)
        this.apply(roomId, room, held.event, held.data)
        continue
      }
      break
    }
    for (const seq of room.ahead) if (seq <= room.cursor) room.ahead.delete(seq)
    for (const seq of room.held.keys()) if (seq <= room.cursor) room.held.delete(seq)
  }

  private wantSync (roomId: string): void {
    const room = this.rooms.get(roomId)
    if (room === undefined || room.syncing || !this.sessionUp) return
    this.syncWanted.add(roomId)
    if (this.syncScheduled) return
    this.syncScheduled = true
    queueMicrotask(() => {
      this.syncScheduled = false
      const roomIds = [...this.syncWanted]
      this.syncWanted.clear()
      if (roomIds.length > 0) void this.runSync(roomIds)
    })
  }

  /**
   * Replays what the rooms missed, from each cursor, page after page (`hasMore`), in order; a room whose
   * cursor the server no longer covers gets `resync`. Never throws: a failed sync is retried by the
   * next gap or reconnect.
   */
  private async runSync (roomIds: string[]): Promise<void> {
    const generation = this.generation
    const mine = roomIds.filter((roomId) => {
      const room = this.rooms.get(roomId)
      if (room === undefined || room.syncing) return false
      room.syncing = true
      return true
    })
    if (mine.length === 0) return
    let progressed = false
    try {
      let cursors = mine.map((roomId) => ({ roomId, seq: (this.rooms.get(roomId) as RoomCursor).cursor }))
      while (cursors.length > 0 && generation === this.generation) {
        const batch = cursors.slice(0, SYNC_BATCH)
        const asked = new Map(batch.map((cursor) => [cursor.roomId, cursor.seq]))
        const rest = cursors.slice(SYNC_BATCH)
        const reply = await this.enqueue('sync', { cursors: batch }, true) as { rooms: SyncRoom[] }
        if (generation !== this.generation) return
        const next: Array<{ roomId: string, seq: number }> = []
        for (const entry of reply.rooms) {
          const room = this.rooms.get(entry.roomId)
          if (room === undefined) continue
          if (entry.error !== undefined) {
            this.rooms.delete(entry.roomId)
            this.emit('room.removed', { roomId: entry.roomId })
            continue
          }
          if (entry.resync === true) {
            // Behind the retained window: jump to the room's end. Ahead of the room (its log was reset): go back to it.
            const askedSeq = asked.get(entry.roomId) ?? room.cursor
            room.cursor = askedSeq > entry.lastSeq ? entry.lastSeq : Math.max(room.cursor, entry.lastSeq)
            room.ahead.clear()
            progressed = true
            this.advance(entry.roomId, room)
            this.emit('resync', { roomId: entry.roomId, lastSeq: entry.lastSeq })
            continue
          }
          for (const replayed of entry.events) {
            if (typeof replayed.data?.seq !== 'number') continue
            progressed = true
            this.durable(replayed.event, { ...replayed.data, roomId: entry.roomId }, true)
          }
          const last = entry.events[entry.events.length - 1]
          if (entry.hasMore && last !== undefined) next.push({ roomId: entry.roomId, seq: last.data.seq as number })
        }
        cursors = [...next, ...rest]
      }
    } catch (error) {
      if (generation === this.generation && error instanceof ChatClientError) this.emitError(error)
      return
    } finally {
      for (const roomId of mine) {
        const room = this.rooms.get(roomId)
        if (room !== undefined) room.syncing = false
      }
    }
    if (generation !== this.generation) return
    this.emit('synced', { roomIds: mine })
    // A gap that opened while this ran, or that the replay did not close, gets another round.
    for (const roomId of mine) {
      const room = this.rooms.get(roomId)
      if (room !== undefined && room.held.size > 0 && progressed) this.wantSync(roomId)
    }
  }

  // Liveness and token refresh

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

  private scheduleRefresh (): void {
    if (typeof this.options.token !== 'function' || this.options.refreshToken === false || this.lastToken === null) return
    const exp = tokenExpiry(this.lastToken)
    if (exp === null) return
    const remaining = exp * 1000 - Date.now()
    const delay = Math.min(MAX_TIMER_MS, Math.max(1000, Math.floor(remaining * 0.8)))
    const generation = this.generation
    this.refreshTimer = setTimeout(() => { void this.refresh(generation) }, delay)
  }

  private async refresh (generation: number): Promise<void> {
    try {
      const token = await this.tokenNow()
      if (generation !== this.generation || token === this.lastToken) return
      await this.enqueue('auth', { token }, true)
      if (generation !== this.generation) return
      this.lastToken = token
      this.scheduleRefresh()
    } catch (error) {
      // The socket carries on until its token expires; then 4401 and a reconnect with the provider.
      if (generation === this.generation) this.emitError(error instanceof ChatClientError ? error : new ChatClientError('UNAUTHENTICATED', `token refresh failed: ${String(error)}`))
    }
  }

  // Emitting

  private emit (event: string, data: unknown): void {
    const set = this.listeners.get(event)
    if (set === undefined || set.size === 0) return
    for (const listener of [...set]) {
      try {
        listener(data)
      } catch (error) {
        if (event === 'error') {
          console.error('ChatClient: an error listener threw', error)
        } else {
          this.emitError(new ChatClientError('LISTENER_FAILED', `a "${event}" listener threw: ${error instanceof Error ? error.message : String(error)}`, error, event))
        }
      }
    }
  }

  private emitError (error: ChatClientError): void {
    if ((this.listeners.get('error')?.size ?? 0) > 0) this.emit('error', error)
  }
}
