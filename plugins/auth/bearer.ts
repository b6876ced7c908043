import type { FastifyRequest } from 'fastify'

const BEARER = /^Bearer\s+(\S+)$/i

/** The token of an `Authorization: Bearer <token>` header, or null when there is none. */
export function bearerTokenOf (request: FastifyRequest): string | null {
  const header = request.headers.authorization
  const match = typeof header === 'string' ? BEARER.exec(header) : null
  return match === null ? null : match[1] as string
}
