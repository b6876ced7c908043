import type { FastifyInstance } from 'fastify'
import { Type, type Static } from 'typebox'
import { FavoriteSchema, FavoriteTypeSchema, MAX_USER_ID } from '../../schemas/room.js'
import { actorOf, ErrorSchema } from '../rooms/index.js'

const FavoritesReply = Type.Object({ favorites: Type.Array(FavoriteSchema) })
const FavoriteRef = Type.Object({
  type: FavoriteTypeSchema,
  id: Type.String({ minLength: 1, maxLength: MAX_USER_ID, description: 'a room id (type ROOM) or a user id (type USER)' }),
}, { additionalProperties: false })
const Errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema }

/** Favorites: `favorite.toggle` over WebSocket, /me/favorites over REST; every change reaches the user's other sockets. */
export default async function favoritesRoutes (app: FastifyInstance): Promise<void> {
  const rooms = app.chatRooms
  const gateway = app.chatGateway

  gateway.on('favorite.toggle', {
    summary: 'Adds or removes a favorite room (one you are a member of) or user; the ack lists them all.',
    schema: FavoriteRef,
    ack: FavoritesReply,
    handler: async (ctx, data) => ({
      favorites: await rooms.toggleFavorite({ user: ctx.user, connection: ctx.connection }, data.type, data.id),
    }),
  })
  gateway.declarePush('favorites.updated', {
    summary: 'To the user\'s other sockets when their favorites changed.',
    schema: FavoritesReply,
  })

  await app.register(async function favoritesRest (api: FastifyInstance) {
    const common = { tags: ['favorites'], security: [{ bearerAuth: [] }] }
    const preHandler = api.chatAuthenticate

    api.get('/me/favorites', {
      preHandler,
      schema: { ...common, summary: 'The caller\'s favorites', response: { 200: FavoritesReply, ...Errors } },
    }, async (request) => ({ favorites: await rooms.favorites(actorOf(request).user) }))

    api.put<{ Params: Static<typeof FavoriteRef> }>('/me/favorites/:type/:id', {
      preHandler,
      schema: { ...common, summary: 'Add a favorite (idempotent)', params: FavoriteRef, response: { 200: FavoritesReply, ...Errors } },
    }, async (request) => ({ favorites: await rooms.setFavorite(actorOf(request), request.params.type, request.params.id, true) }))

    api.delete<{ Params: Static<typeof FavoriteRef> }>('/me/favorites/:type/:id', {
      preHandler,
      schema: { ...common, summary: 'Remove a favorite (idempotent)', params: FavoriteRef, response: { 204: Type.Null({ description: 'no content' }), ...Errors } },
    }, async (request, reply) => {
      await rooms.setFavorite(actorOf(request), request.params.type, request.params.id, false)
      return reply.code(204).send()
    })
  }, { prefix: app.chatConfig.apiPrefix })
}
