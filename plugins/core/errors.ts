import createError, { type FastifyErrorConstructor } from '@fastify/error'

/**
 * Every error of the protocol, one @fastify/error factory per code. REST replies use the factory's
 * statusCode through Fastify's error shape; WebSocket replies use the same code in the envelope, so a
 * refusal reads the same on both transports.
 */
const STATUS = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_MEMBER: 403,
  // Moderation (protocol 11.3): banned from a room (no join, no add), muted in it (reads only).
  BANNED: 403,
  MUTED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  ROOM_FULL: 409,
  VALIDATION_FAILED: 400,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  QUOTA_EXCEEDED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
  BAD_FRAME: 400,
  UNKNOWN_EVENT: 400,
  // A reply that would be larger than maxReplyBytes (frames only: REST lists are paged).
  REPLY_TOO_LARGE: 413,
} as const

export type ErrorCode = keyof typeof STATUS

const factories = Object.fromEntries(Object.entries(STATUS).map(([code, statusCode]) =>
  [code, createError(code, '%s', statusCode)])) as Record<ErrorCode, FastifyErrorConstructor>

export const ERROR_CODES = Object.keys(STATUS) as ErrorCode[]

/** The error every concern throws: a FastifyError with a protocol code and optional details. */
export interface ChatError extends Error {
  code: ErrorCode
  statusCode: number
  details?: unknown
}

export function chatError (code: ErrorCode, message: string, details?: unknown): ChatError {
  const error = new factories[code](message) as unknown as ChatError
  if (details !== undefined) error.details = details
  return error
}

/**
 * Refusals that read the same wherever they are raised, each a @fastify/error factory with its
 * message, so a throw names what went wrong instead of retyping the text:
 * `throw refusals.notMember()`.
 */
function refusal (code: ErrorCode, message: string): FastifyErrorConstructor<{ code: ErrorCode, statusCode: number }, []> {
  return createError<ErrorCode, number, []>(code, message, STATUS[code])
}

export const refusals = {
  notMember: refusal('NOT_MEMBER', 'you are not a member of this room'),
  roomNotFound: refusal('NOT_FOUND', 'room not found'),
  targetNotMember: refusal('NOT_FOUND', 'that user is not a member of this room'),
  messageNotFound: refusal('NOT_FOUND', 'message not found'),
  messageDeleted: refusal('NOT_FOUND', 'message was deleted'),
  blankName: refusal('VALIDATION_FAILED', 'name: must not be blank'),
  ownerCannotLeave: refusal('CONFLICT', 'the owner cannot leave while others remain: hand over OWNER first (room.member.role)'),
  brokerClosed: refusal('UNAVAILABLE', 'broker closed'),
  /** A WebSocket upgrade from a browser page of another site (plugins/realtime/origin.ts). */
  foreignOrigin: refusal('FORBIDDEN', 'this origin may not open a socket here: add it to allowedOrigins'),
  /** The server's own user: no one can talk to it or add it (protocol 11.3). */
  reservedUser: (field: string): ChatError =>
    chatError('VALIDATION_FAILED', `${field}: "system" is reserved for the server`, [{ field, message: 'reserved user' }]),
  /** A ban in force: `until` is when it ends by itself (null: until lifted). */
  banned: (until: string | null, userIds?: string[]): ChatError =>
    chatError('BANNED', until === null ? 'banned from this room' : `banned from this room until ${until}`, { until, ...(userIds !== undefined ? { userIds } : {}) }),
  muted: (until: number): ChatError =>
    chatError('MUTED', `you are muted in this room until ${new Date(until).toISOString()}`, { until: new Date(until).toISOString() }),
  slowMode: (retryAfterMs: number, slowModeSec: number): ChatError =>
    chatError('RATE_LIMITED', `slow mode: one message per ${slowModeSec} s here`, { retryAfterMs }),
  replyTooLarge: refusal('REPLY_TOO_LARGE', 'the reply would be larger than maxReplyBytes: ask for less (a smaller page)'),
  /** Text a database cannot store (NUL, an unpaired surrogate), in a frame, a request or a host's send. */
  unstorableText: (field: string): ChatError =>
    chatError('VALIDATION_FAILED', `${field}: must not contain NUL characters or unpaired surrogates`, [{ field, message: 'not storable text' }]),
  /** A per-user quota (quotas.*): `details.limit` is the quota, the rest says which and for how long. */
  quotaExceeded: (message: string, details: { limit: number, retryAfterMs?: number, userIds?: string[] }): ChatError =>
    chatError('QUOTA_EXCEEDED', message, details),
  /** A token claim the suite will not take as given (auth.ts): 4401 on a socket, 401 on REST. */
  badClaim: (claim: string, rule: string): ChatError => chatError('UNAUTHENTICATED', `token claim "${claim}" ${rule}`),
}

export function isChatError (error: unknown): error is ChatError {
  if (!(error instanceof Error)) return false
  const code: unknown = (error as { code?: unknown }).code
  return typeof code === 'string' && Object.hasOwn(factories, code)
}

export interface WireError {
  code: ErrorCode
  message: string
  details?: unknown
}

// Connection failures of postgres.js, PGlite and ioredis: the client cannot be served right now,
// which is a 503 for the caller rather than a bug of ours. 57014 is a statement cancelled for time
// (statement_timeout, or a send batch past its deadline).
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'CONNECTION_CLOSED',
  'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', '57014', '57P01', '57P03', '53300', '08006', '08001', '08003'])

export function isUnavailableError (error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && UNAVAILABLE_ERRNOS.has(code)) return true
  const cause = (error as { cause?: unknown }).cause
  return cause !== undefined && cause !== error && isUnavailableError(cause)
}

/** Maps anything thrown by a handler to the envelope's error object, never leaking internals. */
export function toWireError (error: unknown): WireError {
  if (isChatError(error)) {
    const wire: WireError = { code: error.code, message: error.message }
    if (error.details !== undefined) wire.details = error.details
    return wire
  }
  if (isUnavailableError(error)) return { code: 'UNAVAILABLE', message: 'a backing service is unavailable, retry later' }
  return { code: 'INTERNAL', message: 'internal error' }
}
