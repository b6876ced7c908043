import type { BackoffOptions } from './backoff.js'

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

/** The longest delay setTimeout keeps (about 24.8 days); a longer one would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647
