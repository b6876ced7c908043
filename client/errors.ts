/**
 * Codes a request can fail with: the server's error codes (protocol section 8), and the client's own for
 * what never reached an answer.
 */
export type ChatErrorCode =
  | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_MEMBER' | 'NOT_FOUND' | 'CONFLICT' | 'ROOM_FULL' | 'VALIDATION_FAILED'
  | 'PAYLOAD_TOO_LARGE' | 'RATE_LIMITED' | 'UNAVAILABLE' | 'INTERNAL' | 'BAD_FRAME' | 'UNKNOWN_EVENT'
  /** A per-user quota (room creations a minute, rooms per user): `details.limit`. */
  | 'QUOTA_EXCEEDED'
  /** Moderation (docs/moderation.md): banned from the room, or muted in it; `details.until`. */
  | 'BANNED' | 'MUTED'
  /** The reply would have been larger than the server's maxReplyBytes: ask for a smaller page. */
  | 'REPLY_TOO_LARGE'
  /** No reply within `requestTimeoutMs` (a send: within `sendTimeoutMs`). */
  | 'TIMEOUT'
  /** The socket closed after the request was sent and before its reply: it may or may not have happened. */
  | 'DISCONNECTED'
  /** `close()` was called. (A client that stops for good on its own rejects with UNAUTHENTICATED or DISCONNECTED.) */
  | 'CLOSED'
  /** A listener threw (reported to `error` listeners). */
  | 'LISTENER_FAILED'
  | (string & {})

/** A refused or failed request: the server's `{code, message, details}`, or one of the client's own codes. */
export class ChatClientError extends Error {
  override readonly name = 'ChatClientError'
  readonly code: ChatErrorCode
  readonly details: unknown
  /** The request's event, when the error answers one. */
  readonly event: string | undefined

  constructor (code: ChatErrorCode, message: string, details?: unknown, event?: string) {
    super(message)
    this.code = code
    this.details = details
    this.event = event
  }
}
