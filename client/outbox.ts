import { ChatClientError } from './errors.js'
import { MAX_TIMER_MS, type ChatClientOptions } from './options.js'
import type { Message, SendOptions } from './types.js'

/** What the outbox needs of the connection. */
export interface SendLine {
  /** The client stopped after it had started: new sends reject with CLOSED. */
  readonly closed: boolean
  /** A session is up and its resume is done: sends go out at once. */
  readonly live: boolean
  /** An open socket with a session up: a send can be written now. */
  readonly writable: boolean
  nextId (): string
  send (frame: string): void
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

function uuid (): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto
  if (crypto?.randomUUID !== undefined) return crypto.randomUUID()
  // Older runtimes: an RFC 4122 v4 layout from Math.random, good enough for a retry key.
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
    const r = Math.floor(Math.random() * 16)
    return (c === 'x' ? r : (r & 0x3) | 0x8).toString(16)
  })
}

/**
 * The sends without an ack, in the order they were made. Each carries a clientMsgId and stays until its
 * ack (or its message met in a push or a sync), its deadline, or a refusal: cut off or made offline, it
 * goes out again on the next session with the same clientMsgId, so the server stores it once.
 */
export class Outbox {
  private readonly line: SendLine
  private readonly options: Pick<ChatClientOptions, 'sendTimeoutMs' | 'newId'>
  /** Called with the room and seq of an acked send, before its promise resolves: the cursor moves over it. */
  private readonly acked: (roomId: string, seq: number) => void
  private readonly entries = new Map<string, OutboxEntry>()
  private readonly inFlight = new Map<string, OutboxEntry>()

  constructor (line: SendLine, options: Pick<ChatClientOptions, 'sendTimeoutMs' | 'newId'>, acked: (roomId: string, seq: number) => void) {
    this.line = line
    this.options = options
    this.acked = acked
  }

  /** Sends that have no ack yet (waiting for a connection, or in flight). */
  get size (): number {
    return this.entries.size
  }

  private get sendTimeoutMs (): number {
    return this.options.sendTimeoutMs ?? 120000
  }

  /** Whether this envelope id is a send in flight on the current socket. */
  has (id: string): boolean {
    return this.inFlight.has(id)
  }

  send (roomId: string, content: string, options: SendOptions): Promise<{ message: Message }> {
    if (this.line.closed) return Promise.reject(new ChatClientError('CLOSED', 'the client is closed', undefined, 'message.send'))
    const clientMsgId = options.clientMsgId ?? (this.options.newId ?? uuid)()
    const existing = this.entries.get(clientMsgId)
    if (existing !== undefined) return new Promise((resolve, reject) => {
      const { resolve: first, reject: firstReject } = existing
      existing.resolve = (value) => { first(value); resolve(value) }
      existing.reject = (error) => { firstReject(error); reject(error) }
    })
    const data: Record<string, unknown> = { roomId, content, clientMsgId }
    if (options.type !== undefined) data.type = options.type
    if (options.replyToId !== undefined) data.replyToId = options.replyToId
    if (options.attachments !== undefined) data.attachments = options.attachments
    if (options.mentions !== undefined) data.mentions = options.mentions
    if (options.threadRootId !== undefined) data.threadRootId = options.threadRootId
    return new Promise((resolve, reject) => {
      const entry: OutboxEntry = { clientMsgId, roomId, data, requestId: null, deadline: null, retry: null, resolve, reject }
      entry.deadline = setTimeout(() => {
        this.drop(entry)
        reject(new ChatClientError('TIMEOUT', `message.send: no ack within ${this.sendTimeoutMs} ms`, undefined, 'message.send'))
      }, Math.min(this.sendTimeoutMs, MAX_TIMER_MS))
      this.entries.set(clientMsgId, entry)
      if (this.line.live) this.transmit(entry)
    })
  }

  /** An ack (error null) or an error for a send in flight; false when this id is no send of this socket. */
  settle (id: string, data: Record<string, unknown>, error: ChatClientError | null): boolean {
    const entry = this.inFlight.get(id)
    if (entry === undefined) return false
    this.inFlight.delete(id)
    entry.requestId = null
    if (!this.entries.has(entry.clientMsgId)) return true
    if (error === null) {
      this.delivered(entry, data as { message: Message })
      return true
    }
    if (error.code === 'RATE_LIMITED' || error.code === 'UNAVAILABLE') {
      // Worth another try on this socket, after the server's hint; the deadline still holds.
      const retryAfterMs = (error.details as { retryAfterMs?: number } | undefined)?.retryAfterMs ?? 1000
      entry.retry = setTimeout(() => {
        entry.retry = null
        if (this.line.live && this.entries.has(entry.clientMsgId)) this.transmit(entry)
      }, retryAfterMs)
      return true
    }
    this.drop(entry)
    entry.reject(error)
    return true
  }

  /**
   * A message of this client met in a push or a sync while its send waits for an ack (the send was
   * stored, its ack lost): it resolves the send. False when no send of that room waits for it.
   */
  claim (roomId: string, message: Message): boolean {
    const clientMsgId = message.clientMsgId
    if (clientMsgId === undefined) return false
    const entry = this.entries.get(clientMsgId)
    if (entry === undefined || entry.roomId !== roomId) return false
    this.drop(entry)
    entry.resolve({ message })
    return true
  }

  /** A session is live: the sends not on the wire go out, in the order they were made. */
  replay (): void {
    for (const entry of this.entries.values()) if (entry.requestId === null && entry.retry === null) this.transmit(entry)
  }

  /** The socket closed: nothing is in flight any more, and no retry waits for that socket. */
  disconnected (): void {
    this.inFlight.clear()
    for (const entry of this.entries.values()) {
      entry.requestId = null
      if (entry.retry !== null) clearTimeout(entry.retry)
      entry.retry = null
    }
  }

  /** The client stopped for good: every send rejects with its code (one in flight may have been stored). */
  rejectAll (code: string, message: string): void {
    for (const entry of [...this.entries.values()]) {
      this.drop(entry)
      entry.reject(new ChatClientError(code, `message.send: ${message}`, undefined, 'message.send'))
    }
  }

  private transmit (entry: OutboxEntry): void {
    if (!this.line.writable) return
    const id = this.line.nextId()
    entry.requestId = id
    this.inFlight.set(id, entry)
    this.line.send(JSON.stringify({ event: 'message.send', id, data: entry.data }))
  }

  /** A send's ack: resolve it once, after the room's cursor noted its seq as this client's own. */
  private delivered (entry: OutboxEntry, ack: { message: Message }): void {
    this.drop(entry)
    const message = ack.message
    if (typeof message?.seq === 'number') this.acked(entry.roomId, message.seq)
    entry.resolve(ack)
  }

  private drop (entry: OutboxEntry): void {
    this.entries.delete(entry.clientMsgId)
    if (entry.requestId !== null) this.inFlight.delete(entry.requestId)
    entry.requestId = null
    if (entry.deadline !== null) clearTimeout(entry.deadline)
    if (entry.retry !== null) clearTimeout(entry.retry)
    entry.deadline = null
    entry.retry = null
  }
}
