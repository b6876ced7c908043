import createError, { type FastifyErrorConstructor } from '@fastify/error'

/**
 * Every error of the protocol, one @fastify/error factory per code. REST replies use the factory's
 * statusCode through Fastify's error shape; WebSocket replies use the same code in the envelope, so a
 * refusal reads the same on both transports.
 */
const factories = {
  UNAUTHENTICATED: createError('UNAUTHENTICATED', '%s', 401),
  FORBIDDEN: createError('FORBIDDEN', '%s', 403),
  NOT_MEMBER: createError('NOT_MEMBER', '%s', 403),
  NOT_FOUND: createError('NOT_FOUND', '%s', 404),
  CONFLICT: createError('CONFLICT', '%s', 409),
  ROOM_FULL: createError('ROOM_FULL', '%s', 409),
  VALIDATION_FAILED: createError('VALIDATION_FAILED', '%s', 400),
  PAYLOAD_TOO_LARGE: createError('PAYLOAD_TOO_LARGE', '%s', 413),
  RATE_LIMITED: createError('RATE_LIMITED', '%s', 429),
  UNAVAILABLE: createError('UNAVAILABLE', '%s', 503),
  INTERNAL: createError('INTERNAL', '%s', 500),
  BAD_FRAME: createError('BAD_FRAME', '%s', 400),
  UNKNOWN_EVENT: createError('UNKNOWN_EVENT', '%s', 400),
} satisfies Record<string, FastifyErrorConstructor>

export type ErrorCode = keyof typeof factories

export const ERROR_CODES = Object.keys(factories) as ErrorCode[]

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
