import type { FastifyRequest } from 'fastify'
import { refusals } from '../core/errors.js'

/**
 * The Origin check of the WebSocket upgrade. Browsers send cookies (and HTTP auth) with a cross-site
 * upgrade, and the same-origin policy does not stop a page of another site from reading the socket:
 * where a host's `authenticate` hook reads a cookie, any site a user visits could chat as that user
 * (cross-site WebSocket hijacking). So a browser is admitted from the server's own origin and from the
 * configured `allowedOrigins` only. An upgrade without Origin is not a browser's (services, wscat,
 * mobile apps): it proves nothing about a site and is admitted, its token decides.
 */
export function originAllowed (origin: string | undefined, host: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined) return true
  if (allowed.includes('*')) return true
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false // "null" (sandboxed frames, file: pages) and anything malformed
  }
  if (url.origin === 'null') return false
  // The same site as the page's server: the Host the upgrade was sent to (behind a proxy, the forwarded
  // host when Fastify trusts the proxy). The scheme is left out: a TLS-terminating proxy changes it.
  if (host !== undefined && url.host === host.toLowerCase()) return true
  return allowed.includes(url.origin)
}

/** The upgrade route's onRequest hook: a foreign browser origin is answered 403 before the upgrade. */
export function originCheck (allowed: readonly string[]) {
  return async function checkOrigin (request: FastifyRequest): Promise<void> {
    if (!originAllowed(request.headers.origin, request.host, allowed)) throw refusals.foreignOrigin()
  }
}
