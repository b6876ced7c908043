import type { FastifyInstance, FastifyRequest } from 'fastify'
import fastifyCors from '@fastify/cors'
import { corsOptionsOf } from '../../plugins/core/cors.js'
import { requestAuthPlugin } from '../../plugins/auth/request-auth.js'
import { refusals } from '../../plugins/core/errors.js'
import { rateLimitPlugin } from '../../plugins/core/rate-limit.js'
import { unstorableField } from '../../lib/input-hygiene.js'
import roomsRest from '../rooms/rest.js'
import moderationRest from '../moderation/rest.js'
import messagesRest from '../messages/rest.js'
import { presenceRest } from '../presence/index.js'
import favoritesRest from '../favorites/rest.js'
import serviceRest from '../service/rest.js'
import { strictValidation } from './validation.js'

/**
 * Text that is not storable (NUL, unpaired surrogate) in a body, query or parameter string is refused
 * with 400 `VALIDATION_FAILED` before the handler runs, as the gateway refuses it in a frame.
 */
async function refuseUnstorableText (request: FastifyRequest): Promise<void> {
  const field = unstorableField(request.body, 'body') ?? unstorableField(request.params, 'params') ?? unstorableField(request.query, 'query')
  if (field !== null) {
    throw refusals.unstorableText(field)
  }
}

/**
 * The REST API: one encapsulation context, registered under `apiPrefix`, that holds every REST route
 * of the concerns and nothing else. What it adds applies to exactly these routes, whatever their URLs:
 *
 * - onRequest: CORS when the `cors` option is set (a preflight is answered here, before anything else);
 *   the caller's bearer token verified once (plugins/auth/request-auth.ts), then the rate
 *   limit counted by that caller (plugins/core/rate-limit.ts);
 * - validation by the routes' TypeBox schemas, unknown fields refused in the body and the query alike
 *   (./validation.ts);
 * - preHandler, after validation: text hygiene, then the caller required (401) and remembered.
 *
 * The concerns' REST plugins are typed by their TypeBox schemas (@fastify/type-provider-typebox), so
 * their handlers read params, query and body without casts, and the caller with `callerOf(request)`.
 */
export default async function apiRoutes (app: FastifyInstance): Promise<void> {
  const { concerns, cors } = app.chatConfig
  if (cors !== false) await app.register(fastifyCors, corsOptionsOf(cors))
  strictValidation(app)
  // Before the caller is required: a malformed request is answered 400 whoever sends it.
  app.addHook('preHandler', refuseUnstorableText)
  await app.register(requestAuthPlugin)
  await app.register(rateLimitPlugin)

  await app.register(roomsRest)
  await app.register(moderationRest)
  if (concerns.messaging) await app.register(messagesRest)
  if (concerns.presence) await app.register(presenceRest)
  await app.register(favoritesRest)
  if (concerns.messaging && concerns.presence) await app.register(serviceRest, { prefix: '/service' })
}
