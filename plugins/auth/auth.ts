import fp from 'fastify-plugin'
import fastifyJwt, { type JWT } from '@fastify/jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { chatError, refusals } from '../core/errors.js'
import { isStorableText } from '../../lib/input-hygiene.js'
import { SERVER_USER_ID, type ChatUser } from '../realtime/connection.js'

export interface DevTokenClaims {
  sub: string
  name?: string
  avatar?: string
  roles?: string[]
  permissions?: string[]
  tenant?: string
}

export interface ChatAuth {
  /** Verifies a token and returns the user it names; throws UNAUTHENTICATED saying why. */
  verify (token: string): Promise<ChatUser>
  /** The host's `authenticate` hook, when configured: the user of a request's own session, or null. */
  fromRequest (request: FastifyRequest): Promise<ChatUser | null>
  /** Signs a token with the configured secret (dev tokens, tests); throws when only a public key is set. */
  sign (claims: DevTokenClaims, expiresIn?: string | number): string
  readonly canSign: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    chatAuth: ChatAuth
  }
}

/**
 * The claims that become stored text (users.id, users.tenant, users.name, users.avatar, room and member
 * rows), each with its limit in characters. Over a limit a token is refused rather than cut: a cut `sub`
 * or `tenant` would be another user, a cut name or URL a wrong one.
 */
export const CLAIM_LIMITS = { sub: 128, tenant: 128, name: 100, avatar: 2048 } as const

/**
 * A claim as stored text, or null when absent (undefined, null, or an empty name or avatar). Refused with
 * 4401 / 401: not a string, over its limit, or text the database cannot store (NUL, an unpaired
 * surrogate), which before failed deep in a query (a 500, a 1011, a room written for a user who then
 * could not act in it).
 */
function claimText (claims: Record<string, unknown>, claim: keyof typeof CLAIM_LIMITS): string | null {
  const value = claims[claim]
  if (value === undefined || value === null) return null
  if (typeof value !== 'string') throw refusals.badClaim(claim, 'must be a string')
  if (value.length > CLAIM_LIMITS[claim]) throw refusals.badClaim(claim, `is over ${CLAIM_LIMITS[claim]} characters`)
  if (!isStorableText(value)) throw refusals.badClaim(claim, 'must not contain NUL characters or unpaired surrogates')
  return value
}

function stringList (value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string').slice(0, 100) : []
}

/**
 * Turns verified claims into the user the suite works with: the one place claims are checked, for every
 * way in (tokens on a socket or REST, the host's verifyToken and authenticate hooks).
 */
export function userFromClaims (claims: Record<string, unknown>): ChatUser {
  const sub = claimText(claims, 'sub')
  if (sub === null || sub.length === 0) throw refusals.badClaim('sub', `is required (1 to ${CLAIM_LIMITS.sub} characters)`)
  if (sub === SERVER_USER_ID) throw chatError('UNAUTHENTICATED', `"sub" ${SERVER_USER_ID} is reserved for the server`)
  const name = claimText(claims, 'name')
  const avatar = claimText(claims, 'avatar')
  return {
    id: sub,
    tenant: claimText(claims, 'tenant') ?? '',
    name: name === '' ? null : name,
    avatar: avatar === '' ? null : avatar,
    roles: stringList(claims.roles),
    permissions: stringList(claims.permissions),
    exp: typeof claims.exp === 'number' ? claims.exp : null,
  }
}

function reasonOf (error: unknown): string {
  const code = (error as { code?: unknown }).code
  switch (code) {
    case 'FAST_JWT_EXPIRED': return 'token expired'
    case 'FAST_JWT_INACTIVE': return 'token not yet valid'
    case 'FAST_JWT_MALFORMED': case 'FAST_JWT_INVALID_TYPE': return 'token malformed'
    case 'FAST_JWT_INVALID_SIGNATURE': return 'token signature invalid'
    case 'FAST_JWT_INVALID_ALGORITHM': case 'FAST_JWT_MISSING_SIGNATURE': return 'token algorithm not accepted'
    case 'FAST_JWT_INVALID_CLAIM_VALUE': case 'FAST_JWT_MISSING_REQUIRED_CLAIM': return 'token claims not accepted'
    default: return 'token invalid'
  }
}

let namespaceCounter = 0

function claimsOrRefuse (claims: unknown): ChatUser {
  if (typeof claims !== 'object' || claims === null) throw chatError('UNAUTHENTICATED', 'token malformed')
  return userFromClaims(claims as Record<string, unknown>)
}

/** Verifies with the suite's own @fastify/jwt registration (a namespace of its own). */
async function registerJwt (app: FastifyInstance): Promise<JWT | null> {
  const { jwt: options } = app.chatConfig
  if (options.secret === undefined && options.publicKey === undefined) return null
  // A namespace of our own, so that a host's @fastify/jwt (or a second suite) is never touched.
  const namespace = `chatSuite${++namespaceCounter}`
  const algorithms = options.algorithms ?? (options.secret !== undefined ? ['HS256', 'HS384', 'HS512'] : undefined)
  const verifyOptions: Record<string, unknown> = {}
  if (algorithms !== undefined) verifyOptions.algorithms = algorithms
  if (options.issuer !== undefined) verifyOptions.allowedIss = options.issuer
  if (options.audience !== undefined) verifyOptions.allowedAud = options.audience
  // fast-jwt checks allowedIss / allowedAud only against claims that are present: a configured issuer or
  // audience must also be required, or a token without the claim would pass.
  const required = [...(options.issuer !== undefined ? ['iss'] : []), ...(options.audience !== undefined ? ['aud'] : [])]
  if (required.length > 0) verifyOptions.requiredClaims = required
  await app.register(fastifyJwt, {
    namespace,
    decoratorName: `${namespace}User`,
    secret: options.secret ?? { public: options.publicKey as string },
    verify: verifyOptions,
    sign: options.secret !== undefined ? { algorithm: 'HS256' } : {},
  })
  return (app.jwt as unknown as Record<string, JWT>)[namespace] as JWT
}

export const authPlugin = fp(async function authPlugin (app: FastifyInstance) {
  const { verifyToken, authenticate } = app.chatHooks
  const jwt = await registerJwt(app)
  if (jwt === null && verifyToken === undefined && authenticate === undefined) {
    throw new Error('chat: option "jwt" needs a "secret" (HS256) or a "publicKey" (RS256/ES256), or give "verifyToken" or "authenticate"')
  }
  const secret = app.chatConfig.jwt.secret

  async function verify (token: string): Promise<ChatUser> {
    if (verifyToken !== undefined) {
      let claims: unknown
      try {
        claims = await verifyToken(token)
      } catch (error) {
        throw chatError('UNAUTHENTICATED', reasonOf(error))
      }
      return claimsOrRefuse(claims)
    }
    if (jwt === null) throw chatError('UNAUTHENTICATED', 'tokens are not accepted here')
    let claims: unknown
    try {
      claims = jwt.verify(token)
    } catch (error) {
      throw chatError('UNAUTHENTICATED', reasonOf(error))
    }
    return claimsOrRefuse(claims)
  }

  const auth: ChatAuth = {
    canSign: secret !== undefined && jwt !== null,
    verify,
    async fromRequest (request) {
      if (authenticate === undefined) return null
      let claims: unknown
      try {
        claims = await authenticate(request)
      } catch (error) {
        throw chatError('UNAUTHENTICATED', error instanceof Error ? error.message : 'not authenticated')
      }
      return claims === null || claims === undefined ? null : claimsOrRefuse(claims)
    },
    sign (claims: DevTokenClaims, expiresIn: string | number = '1h'): string {
      if (secret === undefined || jwt === null) throw new Error('chat: cannot sign tokens without a jwt secret')
      return jwt.sign({ ...claims }, { expiresIn })
    },
  }
  app.decorate('chatAuth', auth)
}, { name: 'chat-auth', fastify: '5.x', dependencies: ['chat-config'] })
