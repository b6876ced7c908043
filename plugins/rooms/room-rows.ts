import { and, eq, inArray, sql } from 'drizzle-orm'
import { favorites, roomMembers, rooms, type Role } from '../../db/schema/index.js'
import { stageEntry } from '../../db/queries/feed-outbox.js'
import type { ChatDb } from '../../db/client.js'
import { chatError, refusals } from '../core/errors.js'
import { SERVER_USER_ID } from '../realtime/connection.js'

// The steps a membership change takes inside its own transaction, after the room's row lock.

/** Locks the room's row for the rest of the transaction: every membership change of a room is serialized here. */
export async function lockRoom (tx: ChatDb, roomId: string): Promise<typeof rooms.$inferSelect> {
  const [row] = await tx.select().from(rooms).where(eq(rooms.id, roomId)).for('update')
  if (row === undefined) throw refusals.roomNotFound()
  return row
}

/** The current roles of `userIds` in the room, read under the lock (the cache may be a moment behind). */
export async function rolesIn (tx: ChatDb, roomId: string, userIds: string[]): Promise<Map<string, Role>> {
  const found = await tx.select({ userId: roomMembers.userId, role: roomMembers.role }).from(roomMembers)
    .where(and(eq(roomMembers.roomId, roomId), inArray(roomMembers.userId, userIds)))
  const roles = new Map(found.map((row) => [row.userId, row.role]))
  // The server-side API acts as OWNER without being a member; tokens cannot claim its id.
  if (userIds.includes(SERVER_USER_ID)) roles.set(SERVER_USER_ID, 'OWNER')
  return roles
}

/** Takes `seats` places; the conditional UPDATE is what keeps maxMembers under concurrent joins. */
export async function takeSeats (tx: ChatDb, roomId: string, seats: number): Promise<void> {
  const updated = await tx.update(rooms).set({ memberCount: sql`${rooms.memberCount} + ${seats}` })
    .where(and(eq(rooms.id, roomId), sql`(${rooms.maxMembers} is null or ${rooms.memberCount} + ${seats} <= ${rooms.maxMembers})`))
    .returning({ id: rooms.id })
  if (updated.length === 0) throw chatError('ROOM_FULL', 'the room is full')
}

export async function freeSeat (tx: ChatDb, roomId: string): Promise<void> {
  await tx.update(rooms).set({ memberCount: sql`greatest(${rooms.memberCount} - 1, 0)` }).where(eq(rooms.id, roomId))
}

/**
 * Deletes a room in the caller's transaction, after its lock: its ROOM favorites, then the row (members,
 * messages, reactions and room events go with it, ON DELETE CASCADE), and with the feed on its
 * room.deleted entry, in the same transaction.
 */
export async function deleteRoom (tx: ChatDb, room: { id: string, tenant: string }, by: { actorId: string, memberIds: string[], feed: boolean }): Promise<void> {
  await tx.delete(favorites).where(and(eq(favorites.type, 'ROOM'), eq(favorites.targetId, room.id)))
  await tx.delete(rooms).where(eq(rooms.id, room.id))
  if (by.feed) await stageEntry(tx, { type: 'room.deleted', tenant: room.tenant, roomId: room.id, actorId: by.actorId, data: { roomId: room.id, memberIds: by.memberIds } })
}
