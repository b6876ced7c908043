import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { callerOf } from '../../plugins/auth/request-auth.js'
import { ClientErrors } from '../../schemas/error.js'
import { actorOf } from '../rooms/rest.js'
import { FavoriteRef, FavoritesReply } from './schemas.js'

/**
 * /me/favorites, in the API context (routes/api: authenticated, rate limited); every change reaches
 * the user's sockets as `favorites.updated`, as a `favorite.toggle` does.
 */
const favoritesRest: FastifyPluginAsyncTypebox = async function favoritesRest (app) {
  const rooms = app.chatRooms
  const common = { tags: ['favorites'], security: [{ bearerAuth: [] }] }

  app.get('/me/favorites', {
    schema: { ...common, summary: 'The caller\'s favorites', response: { 200: FavoritesReply, ...ClientErrors } },
  }, async (request) => ({ favorites: await rooms.favorites(callerOf(request)) }))

  app.put('/me/favorites/:type/:id', {
    schema: { ...common, summary: 'Add a favorite (idempotent)', params: FavoriteRef, response: { 200: FavoritesReply, ...ClientErrors } },
  }, async (request) => ({ favorites: await rooms.setFavorite(actorOf(request), request.params.type, request.params.id, true) }))

  app.delete('/me/favorites/:type/:id', {
    schema: { ...common, summary: 'Remove a favorite (idempotent)', params: FavoriteRef, response: { 204: Type.Null({ description: 'no content' }), ...ClientErrors } },
  }, async (request, reply) => {
    await rooms.setFavorite(actorOf(request), request.params.type, request.params.id, false)
    return reply.code(204).send(null)
  })
}

export default favoritesRest
