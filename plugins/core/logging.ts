import type { FastifyInstance } from 'fastify'

/**
 * Log serializers of every log line the suite writes, so that tokens and message contents never reach a
 * log whatever logger the host configured:
 * - `req`: Fastify's default request fields with the URL's tokens masked (`redactSecrets`: `?token=` is how
 *   browsers authenticate a socket).
 * - `err`: the standard error fields, with the bound values of a failed query cut off. drizzle-orm wraps a
 *   failed query in an error whose message, stack and `params` carry every parameter: the content of the
 *   message being inserted among them.
 *
 * They are set on the suite's encapsulation context (`logSerializers` of its register call covers every
 * request and socket logger of its routes) and on the context's own `app.log` (`useChatLogSerializers`).
 */

// drizzle-orm: `Failed query: <sql>\nparams: <values>`; the values run to the end of the message.
const QUERY_PARAMS = /\nparams: [^]*$/
const STACK_PARAMS = /\nparams: [^]*?(?=\n\s+at |$)/
const MAX_CAUSES = 5

const REDACTED = '[redacted]'
// A query parameter anywhere in a text (a URL, a message naming one, a JSON line): its key, then its value
// up to the next separator. Keys are compared decoded, so `%74oken` is `token` as the query parser sees it.
const QUERY_PARAM = /(^|[?&])([^=&#?\s"'\\]+)=([^&#\s"'\\]*)/g
const BEARER = /\b(Bearer\s+)[^\s"',;\\]+/gi
// A JWT wherever it is (header.payload.signature, base64url), whatever carries it.
const JWT = /\beyJ[\w-]+\.[\w-]+\.[\w-]*/g

function decodedKey (key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' ')).toLowerCase()
  } catch {
    return key.toLowerCase()
  }
}

/**
 * `text` with every token masked: the value of any query parameter whose key, decoded and in any case,
 * names a token (`token`, `access_token`, `%74oken`, `Token`...), whatever the path; the credentials of
 * `Bearer` (an Authorization header); anything shaped like a JWT. The one redaction of the suite: the
 * `req` and `err` serializers use it, and `chatLoggerOptions` runs it over every finished log line, free
 * text included (Fastify's own `Route GET:/ws/?token=... not found`).
 */
export function redactSecrets (text: string): string {
  return text
    .replace(QUERY_PARAM, (match: string, lead: string, key: string) => decodedKey(key).includes('token') ? `${lead}${key}=${REDACTED}` : match)
    .replace(BEARER, `$1${REDACTED}`)
    .replace(JWT, REDACTED)
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
    url: typeof request.url === 'string' ? redactSecrets(request.url) : request.url,
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
    message: redactSecrets(scrub(error.message, QUERY_PARAMS)),
    stack: typeof error.stack === 'string' ? redactSecrets(scrub(error.stack, STACK_PARAMS)) : error.stack,
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
 * Logger options for the host's Fastify (`Fastify({ logger: { level, ...chatLoggerOptions } })`), as the
 * standalone server uses them: the suite's serializers on every request of the host, and
 * `redactSecrets` over every line the logger writes, whoever wrote it. A plugin cannot reach the lines of
 * its host's root context (a 404 for `/ws/?token=...` is logged there, before any of the suite's code
 * runs): only the logger's own options can. `hooks.streamWrite` needs pino 9.4 or later.
 */
export const chatLoggerOptions = {
  serializers: chatLogSerializers,
  hooks: { streamWrite: redactSecrets },
}

/**
 * Gives the context's own logger (`app.log`: hub, broker, services) the suite's serializers. Call first in
 * the suite's context, before any plugin captures `app.log`.
 */
export function useChatLogSerializers (app: FastifyInstance): void {
  app.log = app.log.child({}, { serializers: chatLogSerializers })
}
