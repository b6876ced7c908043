import { and, count, eq, type SQL } from 'drizzle-orm'
import type { TenantUser } from '../../lib/user-key.js'
import { favorites } from '../../db/schema/index.js'
import { chatError } from '../core/errors.js'
import { isUuid } from '../../schemas/room.js'
import type { RoomsApiMethods } from './types.js'
import type { RoomsContext } from './context.js'
import { loadFavorites } from './room-summaries.js'

/** A user's favorites: the user is the pair (tenant, sub). */
function ownedBy (user: TenantUser): SQL | undefined {
  return and(eq(favorites.tenant, user.tenant), eq(favorites.userId, user.id))
}

/** How many favorites a user may keep. */
export const MAX_FAVORITES = 500

export type Favorites = Pick<RoomsApiMethods, 'favorites' | 'toggleFavorite' | 'setFavorite'>

/**
 * A user's favorite rooms and people. A ROOM favorite needs membership to be set; the list is read back
 * after every change and pushed as favorites.updated to the user's other sockets.
 */
export function createFavorites (ctx: RoomsContext): Favorites {
  const { app, access, announce } = ctx
  const db = app.chatDb

  const service: Favorites = {
    favorites: (user) => loadFavorites(db, user),

    async toggleFavorite (actor, type, id) {
      const [existing] = await db.select({ count: count() }).from(favorites)
        .where(and(ownedBy(actor.user), eq(favorites.type, type), eq(favorites.targetId, id)))
      return await service.setFavorite(actor, type, id, (existing?.count ?? 0) === 0)
    },

    async setFavorite (actor, type, id, on) {
      const { user } = actor
      const where = and(ownedBy(user), eq(favorites.type, type), eq(favorites.targetId, id))
      let changed: boolean
      if (on) {
        if (type === 'ROOM') {
          if (!isUuid(id)) throw chatError('VALIDATION_FAILED', 'id: a room id is a uuid', [{ field: 'id', message: 'must be a uuid' }])
          await access.memberOf(user, id)
        } else {
          // A USER favorite names a user of the caller's own tenant: ids are never read across tenants.
          if (id === user.id) throw chatError('VALIDATION_FAILED', 'id: you cannot favorite yourself', [{ field: 'id', message: 'must not be your own id' }])
        }
        await access.authorize(user, 'favorite.toggle', type === 'ROOM' ? id : undefined, { type, id, on })
        const [held] = await db.select({ count: count() }).from(favorites).where(ownedBy(user))
        if ((held?.count ?? 0) >= MAX_FAVORITES) throw chatError('CONFLICT', `at most ${MAX_FAVORITES} favorites`)
        const inserted = await db.insert(favorites).values({ tenant: user.tenant, userId: user.id, type, targetId: id }).onConflictDoNothing().returning({ id: favorites.targetId })
        changed = inserted.length > 0
      } else {
        await access.authorize(user, 'favorite.toggle', type === 'ROOM' && isUuid(id) ? id : undefined, { type, id, on })
        const deleted = await db.delete(favorites).where(where).returning({ id: favorites.targetId })
        changed = deleted.length > 0
      }
      const list = await loadFavorites(db, user)
      if (changed) await announce.favorites(user, list, actor.connection)
      return list
    },
  }
  return service
}
