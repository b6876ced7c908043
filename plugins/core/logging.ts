import type { FastifyInstance } from 'fastify'

/**
 * Log serializers of every log line the suite writes, so that tokens and message contents never reach a
 * log whatever logger the host configured:
 * - `req`: Fastify's default request fields with `?token=` (how browsers authenticate a socket) masked.
 * - `err`: the standard error fields, with the bound values of a failed query cut off. drizzle-orm wraps a
 *   failed query in an error whose message, stack and `params` carry every parameter: the content of the
 *   message being inserted among them.
 *
 * They are set on the suite's encapsulation context (`logSerializers` of its register call covers every
 * request and socket logger of its routes) and on the context's own `app.log` (`useChatLogSerializers`).
 */

const TOKEN_QUERY = /([?&]token=)[^&#]*/gi
// drizzle-orm: `Failed query: <sql>\nparams: <values>`; the values run to the end of the message.
const QUERY_PARAMS = /\nparams: [^]*$/
const STACK_PARAMS = /\nparams: [^]*?(?=\n\s+at |$)/
const MAX_CAUSES = 5

/** A URL with the value of every `token` query parameter masked: the suite's `req` serializer and the standalone server's. */
export function redactUrl (url: string): string {
  return url.replace(TOKEN_QUERY, '$1[redacted]')
}

interface RequestLike {
  method?: string
  url?: string
  host?: string
  ip?: string
  headers?: Record<string, unknown>
  socket?: { remotePort?: number }
}

function serializeRequest (request: RequestLike): Record<string, unknown> {
  return {
    method: request.method,
    url: typeof request.url === 'string' ? redactUrl(request.url) : request.url,
    version: request.headers?.['accept-version'],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  }
}

function scrub (text: string, pattern: RegExp): string {
  return text.replace(pattern, '\nparams: [redacted]')
}

function serializeError (error: unknown, depth = 0): unknown {
  if (!(error instanceof Error)) return error
  const source = error as Error & Record<string, unknown>
  const out: Record<string, unknown> = {
    type: error.constructor?.name ?? error.name,
    message: scrub(error.message, QUERY_PARAMS),
    stack: typeof error.stack === 'string' ? scrub(error.stack, STACK_PARAMS) : error.stack,
  }
  // The fields that say what went wrong, never the data it went wrong with (params, parameters, query
  // values, details echoing input).
  for (const key of ['code', 'statusCode', 'errno', 'syscall', 'severity', 'routine', 'validationContext']) {
    if (source[key] !== undefined) out[key] = source[key]
  }
  if (error.cause !== undefined && depth < MAX_CAUSES) out.cause = serializeError(error.cause, depth + 1)
  if (error instanceof AggregateError) out.errors = error.errors.slice(0, 10).map((inner) => serializeError(inner, depth + 1))
  return out
}

// Typed as Fastify's register option wants it (it says serializers return strings; pino takes any value).
export const chatLogSerializers = {
  req: serializeRequest,
  err: (error: unknown) => serializeError(error),
} as unknown as Record<string, (value: unknown) => string>

/**
 * Gives the context's own logger (`app.log`: hub, broker, services) the suite's serializers. Call first in
 * the suite's context, before any plugin captures `app.log`.
 */
export function useChatLogSerializers (app: FastifyInstance): void {
  app.log = app.log.child({}, { serializers: chatLogSerializers })
}
