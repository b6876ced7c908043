import { createHash } from 'node:crypto'
import { and, eq, inArray, sql } from 'drizzle-orm'
import type { ChatDb } from '../../db/client.js'
import { roomMembers, rooms } from '../../db/schema/index.js'
import type { ChatConfig } from '../core/config.js'
import { refusals } from '../core/errors.js'
import { SharedBuckets } from '../core/rate-limit.js'
import { SERVER_USER_ID, type ChatUser } from '../realtime/connection.js'
import { userKeyOf } from '../../lib/user-key.js'

/** pg_advisory_xact_lock(int4, int4) class key: 'chat' in ASCII plus 2 ("a user's rooms"); the migrations use +0 with 1. */
const USER_ROOMS_LOCK_CLASS = 0x63686174 + 2

/**
 * The per-user quotas of protocol 11.2, in one place: how fast a user makes rooms, and how many rooms a
 * user can be a member of.
 */
export interface RoomQuotas {
  /**
   * Spends one of the user's room creations (room.create, a dm.open that creates the room) on this
   * node, shared by all the user's sockets and REST calls; throws QUOTA_EXCEEDED when none is left.
   * The host's own code (the server user) is not counted.
   */
  takeCreation (user: ChatUser): void
  /**
   * Inside the transaction that makes `userIds` members of one more room each: refuses with
   * QUOTA_EXCEEDED when one of them is already at maxRoomsPerUser. It takes a transaction-scoped
   * advisory lock per user first, so two writers on any nodes that add the same user take turns and
   * the second one counts the first one's row: the cap holds exactly, not just per node.
   */
  admit (tx: ChatDb, tenant: string, userIds: string[]): Promise<void>
}

/** A user's lock key: 31 bits of a hash of (tenant, id). A collision only makes two users take turns. */
function lockKeyOf (tenant: string, userId: string): number {
  return createHash('sha1').update(userKeyOf({ id: userId, tenant })).digest().readInt32BE(0)
}

export function createRoomQuotas (config: ChatConfig['quotas']): RoomQuotas {
  const { roomsPerMinute, maxRoomsPerUser } = config
  // A bucket of roomsPerMinute refilled over a minute: the burst is the minute's worth.
  const creations = new SharedBuckets(roomsPerMinute / 60, roomsPerMinute)

  return {
    takeCreation (user) {
      if (user.server === true) return
      const key = userKeyOf(user)
      // Held for the one take only: the idle bucket stays until it would be full again, so a user
      // cannot get a fresh minute by spreading calls over sockets, REST or reconnects.
      const bucket = creations.hold(key)
      const wait = bucket.take()
      creations.release(key)
      if (wait > 0) {
        throw refusals.quotaExceeded(`at most ${roomsPerMinute} rooms a minute may be created or opened`, { limit: roomsPerMinute, retryAfterMs: wait })
      }
    },

    async admit (tx, tenant, userIds) {
      const ids = [...new Set(userIds)].filter((id) => id !== SERVER_USER_ID)
      if (ids.length === 0) return
      // Sorted keys, one statement: every writer locks in the same order, so two cannot deadlock on
      // users (each also holds at most one room lock, taken before these).
      const keys = [...new Set(ids.map((id) => lockKeyOf(tenant, id)))].sort((a, b) => a - b)
      await tx.execute(sql`select pg_advisory_xact_lock(${USER_ROOMS_LOCK_CLASS}::int4, k) from unnest(array[${sql.join(keys.map((key) => sql`${key}::int4`), sql`, `)}]) with ordinality as t(k, n) order by n`)
      // Cheap first: the users' rows in every tenant, from the user_id index alone (about 2 ms for 5000
      // rows). A room's tenant is in rooms, so only a user at the cap there needs the count scoped to the
      // tenant, which joins rooms (about 35 ms for 5000 rows): a user is in no more rooms of one tenant
      // than of all.
      const totals = await tx.select({ userId: roomMembers.userId, rooms: sql<number>`count(*)::int` }).from(roomMembers)
        .where(inArray(roomMembers.userId, ids))
        .groupBy(roomMembers.userId)
      const near = totals.filter((row) => Number(row.rooms) >= maxRoomsPerUser).map((row) => row.userId)
      if (near.length === 0) return
      const counts = await tx.select({ userId: roomMembers.userId, rooms: sql<number>`count(*)::int` }).from(roomMembers)
        .innerJoin(rooms, eq(rooms.id, roomMembers.roomId))
        .where(and(eq(rooms.tenant, tenant), inArray(roomMembers.userId, near)))
        .groupBy(roomMembers.userId)
      const full = counts.filter((row) => Number(row.rooms) >= maxRoomsPerUser).map((row) => row.userId)
      if (full.length > 0) {
        throw refusals.quotaExceeded(`${full.length === 1 ? 'a user is' : 'users are'} already in ${maxRoomsPerUser} rooms, the most one user may be in`, { limit: maxRoomsPerUser, userIds: full })
      }
    },
  }
}
