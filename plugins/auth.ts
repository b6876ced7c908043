import fp from 'fastify-plugin'
import fastifyJwt, { type JWT } from '@fastify/jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { chatError } from './errors.js'
import type { ChatUser } from './connection.js'

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
  verify (token: string): ChatUser
  /** Signs a token with the configured secret (dev tokens, tests); throws when only a public key is set. */
  sign (claims: DevTokenClaims, expiresIn?: string | number): string
  readonly canSign: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    chatAuth: ChatAuth
    /** preHandler for REST routes: sets request.chatUser or replies 401. */
    chatAuthenticate: (request: FastifyRequest) => Promise<void>
  }
  interface FastifyRequest {
    chatUser: ChatUser | null
  }
}

const MAX_ID = 128
const MAX_TEXT = 512

function optionalText (value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 ? value.slice(0, MAX_TEXT) : null
}

function stringList (value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string').slice(0, 100) : []
}

/** Turns verified claims into the user the suite works with; a token without a usable `sub` is refused. */
export function userFromClaims (claims: Record<string, unknown>): ChatUser {
  const sub = claims.sub
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_ID) {
    throw chatError('UNAUTHENTICATED', `token has no valid "sub" (1 to ${MAX_ID} characters)`)
  }
  return {
    id: sub,
    tenant: typeof claims.tenant === 'string' ? claims.tenant.slice(0, MAX_ID) : '',
    name: optionalText(claims.name),
    avatar: optionalText(claims.avatar),
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

export const authPlugin = fp(async function authPlugin (app: FastifyInstance) {
  const { jwt: options } = app.chatConfig
  if (options.secret === undefined && options.publicKey === undefined) {
    throw new Error('chat: option "jwt" needs a "secret" (HS256) or a "publicKey" (RS256/ES256)')
  }
  // A namespace of our own, so that a host's @fastify/jwt (or a second suite) is never touched.
  const namespace = `chatSuite${++namespaceCounter}`
  const algorithms = options.algorithms ?? (options.secret !== undefined ? ['HS256', 'HS384', 'HS512'] : undefined)
  const verifyOptions: Record<string, unknown> = {}
  if (algorithms !== undefined) verifyOptions.algorithms = algorithms
  if (options.issuer !== undefined) verifyOptions.allowedIss = options.issuer
  if (options.audience !== undefined) verifyOptions.allowedAud = options.audience
  await app.register(fastifyJwt, {
    namespace,
    decoratorName: `${namespace}User`,
    secret: options.secret ?? { public: options.publicKey as string },
    verify: verifyOptions,
    sign: options.secret !== undefined ? { algorithm: 'HS256' } : {},
  })
  const jwt = (app.jwt as unknown as Record<string, JWT>)[namespace] as JWT

  const auth: ChatAuth = {
    canSign: options.secret !== undefined,
    verify (token: string): ChatUser {
      let claims: unknown
      try {
        claims = jwt.verify(token)
      } catch (error) {
        throw chatError('UNAUTHENTICATED', reasonOf(error))
      }
      if (typeof claims !== 'object' || claims === null) throw chatError('UNAUTHENTICATED', 'token malformed')
      return userFromClaims(claims as Record<string, unknown>)
    },
    sign (claims: DevTokenClaims, expiresIn: string | number = '1h'): string {
      if (options.secret === undefined) throw new Error('chat: cannot sign tokens without a jwt secret')
      return jwt.sign({ ...claims }, { expiresIn })
    },
  }
  app.decorate('chatAuth', auth)
  app.decorateRequest('chatUser', null)
  app.decorate('chatAuthenticate', async function chatAuthenticate (request: FastifyRequest) {
    const header = request.headers.authorization
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header) : null
    if (match === null) throw chatError('UNAUTHENTICATED', 'missing "Authorization: Bearer <token>" header')
    const user = auth.verify(match[1] as string)
    await app.chatUsers.remember(user)
    request.chatUser = user
  })
}, { name: 'chat-auth', fastify: '5.x', dependencies: ['chat-config', 'chat-users'] })
