import { eq } from 'drizzle-orm'
import { roomMembers, rooms } from '../../db/schema/index.js'
import { chatError, refusals } from '../core/errors.js'
import { isoOf } from '../../schemas/message.js'
import type { NewRoomEvent } from '../messaging/room-log.js'
import type { RoomsApiMethods } from './types.js'
import type { RoomsContext } from './context.js'
import { refuseDirect, refuseReservedUser, requireRole } from './room-access.js'
import { deleteRoom, lockRoom, rolesIn } from './room-rows.js'
import { roomOf, serverSummaryOfRoom, summaryOfRoom } from './room-summaries.js'
import { userKeysOf } from '../../lib/user-key.js'
import { stageEntry } from '../../db/queries/feed-outbox.js'

/**
 * The key that makes a pair's DIRECT room unique: tenant and both ids, sorted, each URI-encoded so that
 * a ':' inside an id cannot make two different pairs collide.
 */
export function directKey (tenant: string, a: string, b: string): string {
  const [first, second] = a < b ? [a, b] : [b, a]
  return [tenant, first, second].map(encodeURIComponent).join(':')
}

export type RoomLifecycle = Pick<RoomsApiMethods, 'create' | 'openDirect' | 'update' | 'delete'>

/** Rooms come and go: create a group or channel, open a DIRECT room, change settings, delete. */
export function createRoomLifecycle (ctx: RoomsContext): RoomLifecycle {
  const { app, sync, access, announce, quotas } = ctx
  const { chatDb: db, chatRoomLog: roomLog } = app
  // With the feed on, a room's creation and deletion stage their feed entries in their own transaction.
  const feedOn = app.chatConfig.feed !== false

  return {
    async create (actor, data) {
      const { user } = actor
      const name = data.name.trim()
      if (name.length === 0) throw chatError('VALIDATION_FAILED', 'name: must not be blank', [{ field: 'name', message: 'must not be blank' }])
      const memberIds = [...new Set(data.memberIds ?? [])].filter((id) => id !== user.id)
      refuseReservedUser(user, memberIds, 'memberIds')
      if (data.maxMembers !== undefined && memberIds.length + 1 > data.maxMembers) {
        throw chatError('VALIDATION_FAILED', `maxMembers: ${memberIds.length + 1} initial members do not fit in ${data.maxMembers}`, [{ field: 'maxMembers', message: 'smaller than the initial members' }])
      }
      // Before any database work, so that a refused flood costs the node no query.
      quotas.takeCreation(user)
      await access.authorize(user, 'room.create', undefined, data)
      const room = await db.transaction(async (tx) => {
        await quotas.admit(tx, user.tenant, [user.id, ...memberIds])
        const [created] = await tx.insert(rooms).values({
          tenant: user.tenant,
          type: data.type,
          name,
          description: data.description ?? null,
          avatar: data.avatar ?? null,
          // A SUPPORT room is the customer's with staff: never open to anyone's join (protocol 11.3).
          isPrivate: data.type === 'SUPPORT' ? true : data.isPrivate ?? false,
          maxMembers: data.maxMembers ?? null,
          memberCount: memberIds.length + 1,
          createdBy: user.id,
        }).returning({ id: rooms.id })
        if (created === undefined) throw chatError('INTERNAL', 'room insert returned nothing')
        // Creating a room is not an event: it starts at lastSeq 0 with its initial members.
        await tx.insert(roomMembers).values([
          { roomId: created.id, userId: user.id, role: 'OWNER' as const, lastReadSeq: 0 },
          ...memberIds.map((userId) => ({ roomId: created.id, userId, role: 'MEMBER' as const, lastReadSeq: 0 })),
        ])
        if (feedOn) await stageEntry(tx, { type: 'room.created', tenant: user.tenant, roomId: created.id, actorId: user.id, data: { room: { id: created.id, type: data.type, name, isPrivate: data.isPrivate ?? false }, memberIds: [user.id, ...memberIds] } })
        return created
      })
      await sync.invalidate({ users: userKeysOf(user.tenant, [user.id, ...memberIds]) })
      const summaries = await announce.joined(room.id, [user.id, ...memberIds], 0, actor)
      return summaries.get(user.id) ?? await summaryOfRoom(db, user.id, room.id)
    },

    async openDirect (actor, userId) {
      const { user } = actor
      if (userId === user.id) throw chatError('VALIDATION_FAILED', 'userId: a direct room needs another user', [{ field: 'userId', message: 'must not be your own id' }])
      refuseReservedUser(user, [userId], 'userId')
      await access.authorize(user, 'dm.open', undefined, { userId })
      const key = directKey(user.tenant, user.id, userId)
      // Opening a direct room that exists is free: only a dm.open that would create one spends quota.
      const [open] = await db.select({ id: rooms.id }).from(rooms).where(eq(rooms.directKey, key))
      if (open !== undefined) return { room: await summaryOfRoom(db, user.id, open.id), created: false }
      quotas.takeCreation(user)
      // The unique index on direct_key decides: of concurrent opens (on any node) one insert wins, the
      // others do nothing and read the winner's row, which their statement waits for.
      const outcome = await db.transaction(async (tx) => {
        const [inserted] = await tx.insert(rooms).values({
          tenant: user.tenant, type: 'DIRECT', name: '', isPrivate: true, memberCount: 2, directKey: key, createdBy: user.id,
        }).onConflictDoNothing({ target: rooms.directKey }).returning({ id: rooms.id })
        if (inserted !== undefined) {
          await quotas.admit(tx, user.tenant, [user.id, userId])
          await tx.insert(roomMembers).values([
            { roomId: inserted.id, userId: user.id, role: 'MEMBER' as const, lastReadSeq: 0 },
            { roomId: inserted.id, userId, role: 'MEMBER' as const, lastReadSeq: 0 },
          ])
          if (feedOn) await stageEntry(tx, { type: 'room.created', tenant: user.tenant, roomId: inserted.id, actorId: user.id, data: { room: { id: inserted.id, type: 'DIRECT', name: '', isPrivate: true }, memberIds: [user.id, userId] } })
          return { roomId: inserted.id, created: true }
        }
        const [existing] = await tx.select({ id: rooms.id }).from(rooms).where(eq(rooms.directKey, key))
        if (existing === undefined) throw chatError('CONFLICT', 'the direct room is being created, retry')
        return { roomId: existing.id, created: false }
      })
      if (!outcome.created) return { room: await summaryOfRoom(db, user.id, outcome.roomId), created: false }
      await sync.invalidate({ users: userKeysOf(user.tenant, [user.id, userId]) })
      const summaries = await announce.joined(outcome.roomId, [user.id, userId], 0, actor)
      return { room: summaries.get(user.id) ?? await summaryOfRoom(db, user.id, outcome.roomId), created: true }
    },

    async update (actor, roomId, patch) {
      const { user } = actor
      const { entry, role } = await access.memberOf(user, roomId)
      refuseDirect(entry, 'updating the room')
      // Opening and closing a SUPPORT room is the staff's (MODERATOR, as they join); the rest is ADMIN's.
      const action = Object.keys(patch).every((key) => key === 'status') ? 'room.status' : 'room.update'
      requireRole(role, action, 'updating the room')
      if (patch.status !== undefined && entry.room.type !== 'SUPPORT') throw chatError('VALIDATION_FAILED', 'status: only a SUPPORT room is opened and closed', [{ field: 'status', message: 'SUPPORT rooms only' }])
      if (patch.isPrivate === false && entry.room.type === 'SUPPORT') throw chatError('VALIDATION_FAILED', 'isPrivate: a SUPPORT room stays private', [{ field: 'isPrivate', message: 'SUPPORT rooms are private' }])
      const name = patch.name?.trim()
      if (name !== undefined && name.length === 0) throw chatError('VALIDATION_FAILED', 'name: must not be blank', [{ field: 'name', message: 'must not be blank' }])
      await access.authorize(user, 'room.update', roomId, patch)
      const changes: Partial<typeof rooms.$inferInsert> = {}
      if (name !== undefined) changes.name = name
      if (patch.description !== undefined) changes.description = patch.description
      if (patch.avatar !== undefined) changes.avatar = patch.avatar
      if (patch.isPrivate !== undefined) changes.isPrivate = patch.isPrivate
      if (patch.maxMembers !== undefined) changes.maxMembers = patch.maxMembers
      if (patch.slowModeSec !== undefined) changes.slowModeSec = patch.slowModeSec
      if (patch.frozen !== undefined) changes.frozen = patch.frozen
      if (patch.status !== undefined) changes.status = patch.status
      if (patch.retentionDays !== undefined) changes.retentionDays = patch.retentionDays
      if (Object.keys(changes).length > 0) {
        const events = await db.transaction(async (tx) => {
          const room = await lockRoom(tx, roomId)
          const current = (await rolesIn(tx, roomId, [user.id])).get(user.id)
          if (current === undefined) throw refusals.notMember()
          requireRole(current, action, 'updating the room')
          if (changes.maxMembers != null && changes.maxMembers < room.memberCount) {
            throw chatError('VALIDATION_FAILED', `maxMembers: the room has ${room.memberCount} members`, [{ field: 'maxMembers', message: 'below the current member count' }])
          }
          const [updated] = await tx.update(rooms).set(changes).where(eq(rooms.id, roomId)).returning()
          if (updated === undefined) throw refusals.roomNotFound()
          const next: NewRoomEvent = {
            event: 'room.updated',
            data: {
              room: roomOf({
                id: updated.id, type: updated.type, name: updated.name, description: updated.description, avatar: updated.avatar,
                is_private: updated.isPrivate, max_members: updated.maxMembers, frozen: updated.frozen, slow_mode_sec: updated.slowModeSec, pinned_message_ids: updated.pinnedMessageIds, status: updated.status, retention_days: updated.retentionDays, member_count: updated.memberCount,
                last_seq: updated.lastSeq + 1, created_by: updated.createdBy, created_at: isoOf(updated.createdAt),
              }),
            },
          }
          return await roomLog.append(tx, roomId, [next])
        })
        await sync.invalidate({ rooms: [roomId] })
        await roomLog.publish(events)
      }
      return user.server === true ? await serverSummaryOfRoom(db, roomId) : await summaryOfRoom(db, user.id, roomId)
    },

    async delete (actor, roomId) {
      const { user } = actor
      const { entry, role } = await access.memberOf(user, roomId)
      refuseDirect(entry, 'deleting the room')
      requireRole(role, 'room.delete', 'deleting the room')
      await access.authorize(user, 'room.delete', roomId)
      const memberIds = await db.transaction(async (tx) => {
        await lockRoom(tx, roomId)
        const current = (await rolesIn(tx, roomId, [user.id])).get(user.id)
        if (current === undefined) throw refusals.notMember()
        requireRole(current, 'room.delete', 'deleting the room')
        const members = await tx.select({ userId: roomMembers.userId }).from(roomMembers).where(eq(roomMembers.roomId, roomId))
        const memberIds = members.map((row) => row.userId)
        await deleteRoom(tx, entry.room, { actorId: user.id, memberIds, feed: feedOn })
        return memberIds
      })
      await announce.deleted(roomId, entry.room.tenant, memberIds, actor.connection)
    },
  }
}
