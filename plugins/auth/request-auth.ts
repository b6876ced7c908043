import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { chatError } from '../core/errors.js'
import type { ChatUser } from '../realtime/connection.js'
import { bearerTokenOf } from './bearer.js'

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The caller of a REST request of the API (decorated in the API context only). From `onRequest` on
     * it is the user of a valid bearer token, or null (what the rate limit counts by); from `preHandler`
     * on, the user as remembered (or the one the host's `authenticate` hook gave), never null in a route
     * handler of the API: read it there with `callerOf(request)`.
     */
    chatUser: ChatUser | null
  }
}

const MISSING_BEARER = 'missing "Authorization: Bearer <token>" header'

/** The caller of an API route; the API context's preHandler has set it or replied 401 already. */
export function callerOf (request: FastifyRequest): ChatUser {
  // Only a route outside the API context (where the request has no `chatUser` at all) gets here
  // without a caller: it is refused like a request without a token rather than run as nobody.
  const user: ChatUser | null | undefined = request.chatUser
  if (user === null || user === undefined) throw chatError('UNAUTHENTICATED', MISSING_BEARER)
  return user
}

/**
 * Authenticates each REST request of the API once, in the context it is registered in (routes/api):
 *
 * - onRequest: a bearer token is verified (one signature check per request), and its user set as
 *   `request.chatUser`, so the rate limit that runs next counts the request by that user. A bad token
 *   is remembered, not answered yet: the request is counted (by address) before it is refused.
 * - preHandler: the refusal of a bad token, or without a token the host's `authenticate` hook, or 401;
 *   then the user's name and avatar are remembered. After validation, as before: a malformed request
 *   is answered 400 whoever sends it.
 */
export const requestAuthPlugin = fp(async function requestAuthPlugin (app: FastifyInstance) {
  const { chatAuth: auth, chatUsers: users } = app
  const refusedTokens = new WeakMap<FastifyRequest, unknown>()

  app.decorateRequest('chatUser', null)

  app.addHook('onRequest', async function identifyCaller (request) {
    const token = bearerTokenOf(request)
    if (token === null) return
    try {
      request.chatUser = await auth.verify(token)
    } catch (error) {
      refusedTokens.set(request, error)
    }
  })

  app.addHook('preHandler', async function requireCaller (request) {
    if (refusedTokens.has(request)) throw refusedTokens.get(request)
    const user = request.chatUser ?? await auth.fromRequest(request)
    if (user === null) throw chatError('UNAUTHENTICATED', MISSING_BEARER)
    request.chatUser = await users.remember(user)
  })
}, { name: 'chat-request-auth', fastify: '5.x', dependencies: ['chat-auth', 'chat-users'] })
