import type { FastifyInstance } from 'fastify'
import { FavoriteRef, FavoritesReply } from './schemas.js'

/**
 * Favorites over WebSocket: `favorite.toggle`, and the `favorites.updated` push to the user's other
 * sockets. The REST twin, /me/favorites (routes/favorites/rest.ts), is in the API context (routes/api).
 */
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
}
