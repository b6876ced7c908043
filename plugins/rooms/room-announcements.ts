import type { FastifyInstance } from 'fastify'
import type { Connection } from '../realtime/connection.js'
import type { Favorite, RoomSummary } from '../../schemas/room.js'
import type { Actor } from './types.js'
import { ROOM_SUBSCRIBE, ROOM_UNSUBSCRIBE, type MembershipSync } from './membership-sync.js'
import { loadSummaries } from './room-summaries.js'
import { userKeyOf, userKeysOf, type TenantUser } from '../../lib/user-key.js'

/**
 * What a committed room change tells sockets beyond the room's own events (which go through
 * roomLog.publish): subscriptions to start or stop on every node, and the per-user pushes room.added,
 * room.removed and favorites.updated.
 */
export interface RoomAnnouncer {
  /**
   * After a commit that gave `userIds` the room: subscribe each user's sockets on every node, then push
   * room.added. Both happen before the caller publishes the room events, so the new members' sockets
   * receive their own member_joined. `seqBefore` is the room's seq before those events. Answers each
   * user's summary of the room.
   */
  joined (roomId: string, userIds: string[], seqBefore: number, actor?: Actor): Promise<Map<string, RoomSummary>>
  /**
   * After a commit that took the room from a user: drop their sockets' subscriptions, push room.removed
   * (with `reason` "banned" after a ban).
   */
  left (roomId: string, user: TenantUser, except?: Connection, reason?: 'banned'): Promise<void>
  /**
   * After a room was deleted: one room.removed to every socket of the room on every node (one publish,
   * not one per member), then the invalidation that makes every node drop the room's subscriptions.
   */
  deleted (roomId: string, tenant: string, memberIds: string[], except?: Connection): Promise<void>
  /** The user's favorites changed: every socket of theirs but the one that asked. */
  favorites (user: TenantUser, list: Favorite[], except?: Connection): Promise<void>
}

function frame (event: string, data: unknown): string {
  return JSON.stringify({ event, data })
}

export function createRoomAnnouncer (app: FastifyInstance, sync: MembershipSync): RoomAnnouncer {
  const { chatDb: db, chatHub: hub } = app

  /**
   * The change is durable, so a broker failure here is logged rather than turned into an error reply (a
   * retried create would make a second room): this node's sockets were already served before the broker
   * was asked, other nodes catch up after the broker reconnects by re-aligning subscriptions; clients
   * catch up with sync.
   */
  async function quietly (what: string, work: Promise<unknown>): Promise<void> {
    try {
      await work
    } catch (error) {
      app.log.warn({ err: error }, `rooms: ${what} failed after the commit`)
    }
  }

  return {
    async joined (roomId, userIds, seqBefore, actor) {
      // Read first for the room's tenant: the new members are users of that tenant (their keys).
      const found = (await loadSummaries(db, userIds, [roomId])).summaries
      const tenant = found[0]?.tenant
      const summaries = new Map(found.map(({ userId, summary }) => [userId, summary]))
      if (tenant === undefined) return summaries
      await quietly('subscribing new members', Promise.all(userIds.map((id) => hub.controlUser(userKeyOf({ id, tenant }), { type: ROOM_SUBSCRIBE, roomId, seq: seqBefore }))))
      await quietly('room.added', Promise.all([...summaries].map(([id, room]) =>
        hub.publishUser(userKeyOf({ id, tenant }), frame('room.added', { room }), id === actor?.user.id ? actor.connection : undefined))))
      return summaries
    },

    async left (roomId, user, except, reason) {
      const userKey = userKeyOf(user)
      await quietly('unsubscribing a former member', hub.controlUser(userKey, { type: ROOM_UNSUBSCRIBE, roomId }))
      await quietly('room.removed', hub.publishUser(userKey, frame('room.removed', reason === undefined ? { roomId } : { roomId, reason }), except))
    },

    async deleted (roomId, tenant, memberIds, except) {
      await quietly('room.removed', hub.publishRoom(roomId, frame('room.removed', { roomId }), except === undefined ? {} : { except }))
      await sync.invalidate({ rooms: [roomId], users: userKeysOf(tenant, memberIds), deleted: [roomId] })
    },

    async favorites (user, list, except) {
      await quietly('favorites.updated', hub.publishUser(userKeyOf(user), frame('favorites.updated', { favorites: list }), except))
    },
  }
}
