import type { FastifyInstance } from 'fastify'
import { eq } from 'drizzle-orm'
import { rooms as roomsTable } from '../../db/schema/index.js'
import { messageById } from '../../db/queries/message-reader.js'
import { chatError, refusals } from '../core/errors.js'
import type { ChatUser, Connection } from '../realtime/connection.js'
import { MAX_PINS } from '../../schemas/room.js'
import { loadRoom } from '../rooms/room-summaries.js'
import { lockRoom } from '../rooms/room-rows.js'
import type { RoomEvent } from './room-log.js'

/**
 * Pins (protocol 11.3): `message.pin` / `message.unpin` change the room's pinnedMessageIds (oldest pin
 * first, at most MAX_PINS) and write `room.updated` with the whole room, a durable room event. A
 * MODERATOR's in a group room, any member's in a DIRECT room. Returns the events written (none when the
 * message was already pinned, or not pinned).
 */
export function createPins (app: FastifyInstance): (user: ChatUser, messageId: string, pinned: boolean, except?: Connection) => Promise<RoomEvent[]> {
  const db = app.chatDb
  const roomLog = app.chatRoomLog
  return async function pin (user, messageId, pinned, except) {
    const message = await messageById(db, messageId)
    if (message === null) throw refusals.messageNotFound()
    const rooms = app.chatRooms
    const { room, role } = await rooms.requireMember(message.roomId, user)
    if (room.type !== 'DIRECT' && !rooms.can(role, 'message.pin')) throw chatError('FORBIDDEN', 'pinning is for MODERATOR and above')
    if (pinned && message.deletedAt !== null) throw refusals.messageDeleted()
    await rooms.authorize(user, pinned ? 'message.pin' : 'message.unpin', message.roomId, { messageId })
    const events = await db.transaction(async (tx) => {
      const locked = await lockRoom(tx, message.roomId)
      const current = locked.pinnedMessageIds
      if (pinned === current.includes(messageId)) return []
      if (pinned && current.length >= MAX_PINS) throw chatError('CONFLICT', `at most ${MAX_PINS} messages are pinned in a room: unpin one first`)
      const next = pinned ? [...current, messageId] : current.filter((id) => id !== messageId)
      await tx.update(roomsTable).set({ pinnedMessageIds: next }).where(eq(roomsTable.id, message.roomId))
      const updated = await loadRoom(tx, message.roomId)
      if (updated === null) throw refusals.roomNotFound()
      // The room as of this event: its lastSeq is the seq the event takes.
      return await roomLog.append(tx, message.roomId, [{ event: 'room.updated', data: { room: { ...updated, lastSeq: updated.lastSeq + 1 }, by: user.id } }])
    })
    await roomLog.publish(events, except)
    return events
  }
}
