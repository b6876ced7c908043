import { ChatClientError } from './errors.js'
import type { PushEvents } from './types.js'

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

export type Listener<T> = (data: T) => void

/**
 * The client's listeners by event name. A listener that throws never stops the others: its error goes
 * to the `error` listeners (and one of those that throws, to the console).
 */
export class Emitter {
  // Stored as taking `never`: a listener of any one event's data fits, and emit hands it that data.
  private readonly listeners = new Map<string, Set<Listener<never>>>()

  on (event: string, listener: Listener<never>): () => void {
    let set = this.listeners.get(event)
    if (set === undefined) {
      set = new Set()
      this.listeners.set(event, set)
    }
    set.add(listener)
    return () => this.off(event, listener)
  }

  off (event: string, listener: Listener<never>): void {
    this.listeners.get(event)?.delete(listener)
  }

  emit<K extends keyof ChatClientEvents> (event: K, data: ChatClientEvents[K]): void
  emit (event: string, data: unknown): void
  emit (event: string, data: unknown): void {
    const set = this.listeners.get(event)
    if (set === undefined || set.size === 0) return
    for (const listener of [...set]) {
      try {
        (listener as Listener<unknown>)(data)
      } catch (error) {
        if (event === 'error') {
          console.error('ChatClient: an error listener threw', error)
        } else {
          this.emitError(new ChatClientError('LISTENER_FAILED', `a "${event}" listener threw: ${error instanceof Error ? error.message : String(error)}`, error, event))
        }
      }
    }
  }

  /** Reports an error to the `error` listeners; dropped when there are none (the client never throws it). */
  emitError (error: ChatClientError): void {
    if ((this.listeners.get('error')?.size ?? 0) > 0) this.emit('error', error)
  }
}
