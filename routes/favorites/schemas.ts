import { Type } from 'typebox'
import { FavoriteSchema, FavoriteTypeSchema, MAX_USER_ID } from '../../schemas/room.js'

export const FavoritesReply = Type.Object({ favorites: Type.Array(FavoriteSchema) })

/** A favorite: the `favorite.toggle` event's data, and the path of /me/favorites/:type/:id. */
export const FavoriteRef = Type.Object({
  type: FavoriteTypeSchema,
  id: Type.String({ minLength: 1, maxLength: MAX_USER_ID, description: 'a room id (type ROOM) or a user id (type USER)' }),
}, { additionalProperties: false })
