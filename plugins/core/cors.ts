import type { FastifyCorsOptions } from '@fastify/cors'
import type { ChatConfig } from './config.js'

/** What a browser page of an allowed origin may send and read, besides the simple headers. */
const ALLOWED_HEADERS = ['Authorization', 'Content-Type']
const EXPOSED_HEADERS = ['Retry-After', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset']
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']

/**
 * @fastify/cors's options from the validated `cors` option, for the REST API's context (routes/api).
 * Registered first there, its onRequest hook answers a preflight before the caller is verified or
 * counted by the rate limit, and puts the headers on every answer, refusals included, so a page of an
 * allowed origin can read a 401 or a 429. A foreign origin gets no Access-Control-Allow-Origin: its
 * browser keeps the answer from it.
 */
export function corsOptionsOf (cors: Exclude<ChatConfig['cors'], false>): FastifyCorsOptions {
  return {
    origin: cors.origins.includes('*') ? '*' : cors.origins,
    credentials: cors.credentials,
    maxAge: cors.maxAgeSec,
    methods: METHODS,
    allowedHeaders: ALLOWED_HEADERS,
    exposedHeaders: EXPOSED_HEADERS,
    strictPreflight: true,
  }
}
