import type { FastifyError, FastifyInstance } from 'fastify'
import { isChatError, toWireError } from './errors.js'

/**
 * REST errors in Fastify's shape with the protocol's codes. Set inside the suite's own encapsulation
 * context, so a host's error handler is never replaced.
 */
export function setChatErrorHandler (app: FastifyInstance): void {
  app.setErrorHandler(function chatErrorHandler (error: FastifyError, request, reply) {
    if (error.validation !== undefined) {
      return reply.code(400).send({ statusCode: 400, code: 'VALIDATION_FAILED', error: 'Bad Request', message: error.message })
    }
    if (isChatError(error)) {
      return reply.code(error.statusCode).send({
        statusCode: error.statusCode, code: error.code, error: statusText(error.statusCode), message: error.message,
      })
    }
    if (error.statusCode === 413 || error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send({ statusCode: 413, code: 'PAYLOAD_TOO_LARGE', error: 'Payload Too Large', message: error.message })
    }
    if (error.statusCode === 429) {
      return reply.code(429).send({ statusCode: 429, code: 'RATE_LIMITED', error: 'Too Many Requests', message: error.message })
    }
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.code(error.statusCode).send({ statusCode: error.statusCode, code: 'VALIDATION_FAILED', error: statusText(error.statusCode), message: error.message })
    }
    const wire = toWireError(error)
    const statusCode = wire.code === 'UNAVAILABLE' ? 503 : 500
    request.log.error({ err: error }, 'request failed')
    return reply.code(statusCode).send({ statusCode, code: wire.code, error: statusText(statusCode), message: wire.message })
  })
}

function statusText (statusCode: number): string {
  switch (statusCode) {
    case 400: return 'Bad Request'
    case 401: return 'Unauthorized'
    case 403: return 'Forbidden'
    case 404: return 'Not Found'
    case 409: return 'Conflict'
    case 413: return 'Payload Too Large'
    case 429: return 'Too Many Requests'
    case 503: return 'Service Unavailable'
    default: return 'Internal Server Error'
  }
}
