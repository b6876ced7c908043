import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify'
import { isChatError, toWireError, type ErrorCode } from './errors.js'

// The codes whose details the contract gives over REST too (protocol 11: QUOTA_EXCEEDED's limit); the
// others keep Fastify's four fields (RATE_LIMITED says when in Retry-After), except a refusal that says
// why in `details.reason` (protocol 11.3: content screening's FORBIDDEN, and its UNAVAILABLE).
const REST_DETAILS = new Set<ErrorCode>(['QUOTA_EXCEEDED'])

function restShowsDetails (code: ErrorCode, details: unknown): boolean {
  return REST_DETAILS.has(code) || typeof (details as { reason?: unknown } | null)?.reason === 'string'
}

/** Fastify's error shape with a protocol code; `error` is the status's standard reason phrase. */
function sendError (reply: FastifyReply, statusCode: number, code: ErrorCode, message: string, details?: unknown): FastifyReply {
  const body: Record<string, unknown> = { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Internal Server Error', message }
  if (details !== undefined && restShowsDetails(code, details)) body.details = details
  return reply.code(statusCode).send(body)
}

/**
 * REST errors in Fastify's shape with the protocol's codes. Set inside the suite's own encapsulation
 * context, so a host's error handler is never replaced.
 */
export function setChatErrorHandler (app: FastifyInstance): void {
  app.setErrorHandler(function chatErrorHandler (error: FastifyError, request, reply) {
    if (error.validation !== undefined) return sendError(reply, 400, 'VALIDATION_FAILED', error.message)
    if (isChatError(error)) return sendError(reply, error.statusCode, error.code, error.message, error.details)
    if (error.statusCode === 413 || error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(reply, 413, 'PAYLOAD_TOO_LARGE', error.message)
    if (error.statusCode === 429) return sendError(reply, 429, 'RATE_LIMITED', error.message)
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      return sendError(reply, error.statusCode, 'VALIDATION_FAILED', error.message)
    }
    const wire = toWireError(error)
    request.log.error({ err: error }, 'request failed')
    return sendError(reply, wire.code === 'UNAVAILABLE' ? 503 : 500, wire.code, wire.message)
  })
}
