import { and, eq } from 'drizzle-orm'
import { roomMembers, type Role } from '../../db/schema/index.js'
import { chatError, refusals } from '../core/errors.js'
import type { ChatUser } from '../realtime/connection.js'
import { isoOf } from '../../schemas/message.js'
import { PAGE_LIMIT, PAGE_LIMIT_MAX, type Member, type MemberWithStatus } from '../../schemas/room.js'
import { ENVELOPE_RESERVE, ReplyBudget, utf8Bytes } from '../../lib/reply-budget.js'
import type { RoomEvent } from '../messaging/room-log.js'
import type { Actor, CachedRoom, MemberPage, RoomsApiMethods } from './types.js'
import type { RoomsContext } from './context.js'
import { canActOn, canSetRole } from './permissions.js'
import { refuseDirect, refuseReservedUser, requireRole } from './room-access.js'
import { deleteRoom, freeSeat, lockRoom, rolesIn, takeSeats } from './room-rows.js'
import { latestMessages, loadMembers, summaryOfRoom } from './room-summaries.js'
import { refuseBanned } from './room-moderation.js'
import { holdsGrant } from '../auth/permission-claims.js'
import { userKeyOf, userKeysOf } from '../../lib/user-key.js'

/** Messages in room.join's ack (the latest; fewer when they would not fit in maxReplyBytes). */
export const JOIN_PAGE = 50
/** Members in room.join's ack and GET /rooms/:roomId; the rest are paged (room.members). */
export const JOIN_MEMBERS = 100

/** room.members' ack around its members. */
const MEMBER_PAGE_FRAME = '{"members":[],"hasMore":false,"nextOffset":2147483647}'

export type RoomMembers = Pick<RoomsApiMethods, 'get' | 'members' | 'join' | 'leave' | 'addMembers' | 'removeMember' | 'setRole'>

function userRef (user: ChatUser): { id: string, name: string | null, avatar: string | null } {
  return { id: user.id, name: user.name, avatar: user.avatar }
}

/**
 * Who is in a room and how that changes: join, leave, invite, kick, roles. Each change checks against
 * the cache first, then again under the room's row lock in its transaction; after the commit it
 * invalidates the cache on every node, announces the change and publishes the room events.
 */
export function createRoomMembers (ctx: RoomsContext): RoomMembers {
  const { app, claims, sync, access, announce, withStatus, quotas } = ctx
  const { chatDb: db, chatRoomLog: roomLog, chatUsers: users } = app
  const maxReplyBytes = app.chatConfig.maxReplyBytes

  /** Members from `offset`, at most `limit`, cut where the next one would not fit in the budget. */
  async function memberPage (room: CachedRoom, offset: number, limit: number, budget: ReplyBudget): Promise<MemberPage> {
    const rows = await loadMembers(db, room.id, undefined, { offset, limit: limit + 1 })
    const members: MemberWithStatus[] = []
    for (const member of await withStatus(room.tenant, rows.slice(0, limit))) {
      if (!budget.take(JSON.stringify(member))) break
      members.push(member)
    }
    const hasMore = members.length < Math.min(rows.length, limit) || rows.length > limit
    return { members, hasMore, nextOffset: hasMore ? offset + members.length : null }
  }

  async function leave (actor: Actor, roomId: string): Promise<void> {
    const { user } = actor
    const { entry, role } = await access.memberOf(user, roomId)
    refuseDirect(entry, 'leaving')
    if (role === 'OWNER' && entry.members.size > 1) {
      throw refusals.ownerCannotLeave()
    }
    await access.authorize(user, 'room.leave', roomId)
    const outcome = await db.transaction(async (tx) => {
      const room = await lockRoom(tx, roomId)
      const current = (await rolesIn(tx, roomId, [user.id])).get(user.id)
      if (current === undefined) throw refusals.notMember()
      if (current === 'OWNER') {
        if (room.memberCount > 1) throw refusals.ownerCannotLeave()
        // The last member leaving is the end of the room.
        await deleteRoom(tx, entry.room, { actorId: user.id, memberIds: [user.id], feed: app.chatConfig.feed !== false })
        return { deleted: true as const }
      }
      await tx.delete(roomMembers).where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, user.id)))
      await freeSeat(tx, roomId)
      const events = await roomLog.append(tx, roomId, [{ event: 'room.member_left', data: { userId: user.id } }])
      return { deleted: false as const, events }
    })
    if (outcome.deleted) {
      await announce.deleted(roomId, user.tenant, [user.id], actor.connection)
      return
    }
    await sync.invalidate({ rooms: [roomId], users: [userKeyOf(user)] })
    // The leaving user's sockets still hear their own member_left, then lose the room.
    await roomLog.publish(outcome.events)
    await announce.left(roomId, user, actor.connection)
  }

  return {
    leave,

    async get (actor, roomId) {
      const { entry } = await access.memberOf(actor.user, roomId)
      await access.authorize(actor.user, 'room.get', roomId)
      const room = await summaryOfRoom(db, actor.user.id, roomId)
      const budget = new ReplyBudget(maxReplyBytes, ENVELOPE_RESERVE + utf8Bytes(JSON.stringify({ room, members: [], membersHasMore: false })))
      const page = await memberPage(entry.room, 0, JOIN_MEMBERS, budget)
      return { room, members: page.members, membersHasMore: page.hasMore }
    },

    async members (actor, roomId, page = {}) {
      const { entry } = await access.memberOf(actor.user, roomId)
      await access.authorize(actor.user, 'room.members', roomId)
      const offset = page.offset ?? 0
      const limit = Math.min(page.limit ?? PAGE_LIMIT, PAGE_LIMIT_MAX)
      return await memberPage(entry.room, offset, limit, new ReplyBudget(maxReplyBytes, ENVELOPE_RESERVE + MEMBER_PAGE_FRAME.length))
    },

    async join (actor, roomId) {
      const { user } = actor
      const entry = await access.roomFor(user, roomId)
      // Any join of a DIRECT room, a member's included: its two members are fixed (protocol section 5).
      refuseDirect(entry, 'joining')
      const already = entry.members.has(user.id)
      // The permissions claim chats:join_private (with requirePermissions) admits without an invitation;
      // support staff (the chats:support grant) join a SUPPORT room of their tenant, as MODERATOR.
      const staff = entry.room.type === 'SUPPORT' && holdsGrant(user, 'chats:support')
      const joinsPrivate = claims.grants(user, 'chats:join_private') || staff
      const role = staff ? 'MODERATOR' as const : 'MEMBER' as const
      if (!already) {
        if (entry.room.isPrivate && !joinsPrivate) throw chatError('FORBIDDEN', 'this room is private: members are added by invitation only')
      }
      await access.authorize(user, 'room.join', roomId)
      if (!already) {
        const events = await db.transaction(async (tx) => {
          const room = await lockRoom(tx, roomId)
          if (room.type === 'DIRECT' || (room.isPrivate && !joinsPrivate)) throw chatError('FORBIDDEN', 'this room admits members by invitation only')
          if ((await rolesIn(tx, roomId, [user.id])).size > 0) return [] // joined meanwhile: idempotent
          await refuseBanned(tx, roomId, [user.id])
          await quotas.admit(tx, room.tenant, [user.id])
          await takeSeats(tx, roomId, 1)
          const appended = await roomLog.append(tx, roomId, [{ event: 'room.member_joined', data: { user: userRef(user), role } }])
          const lastSeq = appended[appended.length - 1]?.seq ?? room.lastSeq
          await tx.insert(roomMembers).values({ roomId, userId: user.id, role, lastReadSeq: lastSeq })
          return appended
        })
        if (events.length > 0) {
          await sync.invalidate({ rooms: [roomId], users: [userKeyOf(user)] })
          await announce.joined(roomId, [user.id], (events[0] as RoomEvent).seq - 1, actor)
          await roomLog.publish(events)
        }
      }
      // Without chats:read (when claims are enforced) the join answers no members and no messages.
      const reads = user.server === true || claims.mayRead(user)
      const [room, latest] = await Promise.all([
        summaryOfRoom(db, user.id, roomId),
        reads ? latestMessages(db, roomId, JOIN_PAGE) : [],
      ])
      // One reply: the room, then the newest messages that fit (older ones by history.fetch), then members.
      const budget = new ReplyBudget(maxReplyBytes, ENVELOPE_RESERVE + utf8Bytes(JSON.stringify({ room, members: [], membersHasMore: false, messages: [] })))
      let first = latest.length
      while (first > 0 && budget.take(JSON.stringify(latest[first - 1]))) first -= 1
      const messages = latest.slice(first)
      const page = reads ? await memberPage(entry.room, 0, JOIN_MEMBERS, budget) : { members: [], hasMore: false }
      return { room, members: page.members, membersHasMore: page.hasMore, messages }
    },

    async addMembers (actor, roomId, userIds) {
      const { user } = actor
      const { entry, role } = await access.memberOf(user, roomId)
      refuseDirect(entry, 'adding members')
      requireRole(role, 'member.add', 'adding members')
      const ids = [...new Set(userIds)].filter((id) => id !== user.id)
      refuseReservedUser(user, ids, 'userIds')
      await access.authorize(user, 'room.member.add', roomId, { userIds: ids })
      if (ids.length === 0) return []
      const profiles = await users.profiles(entry.room.tenant, ids)
      const outcome = await db.transaction(async (tx) => {
        const room = await lockRoom(tx, roomId)
        const roles = await rolesIn(tx, roomId, [user.id, ...ids])
        const current = roles.get(user.id)
        if (current === undefined) throw refusals.notMember()
        requireRole(current, 'member.add', 'adding members')
        const added = ids.filter((id) => !roles.has(id))
        if (added.length === 0) return { added, events: [] as RoomEvent[] }
        await refuseBanned(tx, roomId, added)
        await quotas.admit(tx, room.tenant, added)
        await takeSeats(tx, roomId, added.length)
        const events = await roomLog.append(tx, roomId, added.map((id) => {
          const profile = profiles.get(id)
          return { event: 'room.member_joined', data: { user: { id, name: profile?.name ?? null, avatar: profile?.avatar ?? null }, role: 'MEMBER' } }
        }))
        const lastSeq = events[events.length - 1]?.seq ?? room.lastSeq
        await tx.insert(roomMembers).values(added.map((id) => ({ roomId, userId: id, role: 'MEMBER' as const, lastReadSeq: lastSeq })))
        return { added, events }
      })
      if (outcome.added.length === 0) return []
      await sync.invalidate({ rooms: [roomId], users: userKeysOf(entry.room.tenant, outcome.added) })
      await announce.joined(roomId, outcome.added, (outcome.events[0] as RoomEvent).seq - 1)
      await roomLog.publish(outcome.events)
      return await withStatus(entry.room.tenant, await loadMembers(db, roomId, outcome.added))
    },

    async removeMember (actor, roomId, userId) {
      const { user } = actor
      if (userId === user.id) return await leave(actor, roomId)
      const { entry, role } = await access.actingMemberOf(user, roomId, 'member.kick')
      refuseDirect(entry, 'removing members')
      const target = entry.members.get(userId)
      if (target === undefined) throw refusals.targetNotMember()
      if (!canActOn(role, target, 'member.kick')) throw chatError('FORBIDDEN', `a ${role} cannot remove a ${target}`)
      await access.authorize(user, 'room.member.remove', roomId, { userId })
      const events = await db.transaction(async (tx) => {
        await lockRoom(tx, roomId)
        const roles = await rolesIn(tx, roomId, [user.id, userId])
        const actorRole = claims.actingRole(user, roles.get(user.id), 'member.kick')
        const targetRole = roles.get(userId)
        if (actorRole === null) throw refusals.notMember()
        if (targetRole === undefined) throw refusals.targetNotMember()
        if (!canActOn(actorRole, targetRole, 'member.kick')) throw chatError('FORBIDDEN', `a ${actorRole} cannot remove a ${targetRole}`)
        await tx.delete(roomMembers).where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, userId)))
        await freeSeat(tx, roomId)
        return await roomLog.append(tx, roomId, [{ event: 'room.member_left', data: { userId, by: user.id } }])
      })
      const removed = { id: userId, tenant: entry.room.tenant }
      await sync.invalidate({ rooms: [roomId], users: [userKeyOf(removed)] })
      await roomLog.publish(events)
      await announce.left(roomId, removed)
    },

    async setRole (actor, roomId, userId, role) {
      const { user } = actor
      const { entry, role: actorRole } = await access.memberOf(user, roomId)
      refuseDirect(entry, 'changing roles')
      if (userId === user.id) throw chatError('FORBIDDEN', 'you cannot change your own role (hand over OWNER to another member instead)')
      const target = entry.members.get(userId)
      if (target === undefined) throw refusals.targetNotMember()
      if (!canSetRole(actorRole, target, role)) throw chatError('FORBIDDEN', `a ${actorRole} cannot make a ${target} ${role}`)
      await access.authorize(user, 'room.member.role', roomId, { userId, role })
      const profiles = await users.profiles(entry.room.tenant, [user.id, userId])
      const memberOfRow = (row: { userId: string, role: Role, joinedAt: Date }): Member => {
        const profile = profiles.get(row.userId)
        return { user: { id: row.userId, name: profile?.name ?? null, avatar: profile?.avatar ?? null }, role: row.role, joinedAt: isoOf(row.joinedAt) }
      }
      const outcome = await db.transaction(async (tx) => {
        await lockRoom(tx, roomId)
        const roles = await rolesIn(tx, roomId, [user.id, userId])
        const actorNow = roles.get(user.id)
        const targetNow = roles.get(userId)
        if (actorNow === undefined) throw refusals.notMember()
        if (targetNow === undefined) throw refusals.targetNotMember()
        if (!canSetRole(actorNow, targetNow, role)) throw chatError('FORBIDDEN', `a ${actorNow} cannot make a ${targetNow} ${role}`)
        const setRoleOf = async (id: string, next: Role): Promise<Member> => {
          const [row] = await tx.update(roomMembers).set({ role: next })
            .where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, id)))
            .returning({ userId: roomMembers.userId, role: roomMembers.role, joinedAt: roomMembers.joinedAt })
          if (row === undefined) throw refusals.targetNotMember()
          return memberOfRow(row)
        }
        if (targetNow === role) {
          // Already so: nothing changes and no seq is taken.
          const [row] = await tx.select({ userId: roomMembers.userId, role: roomMembers.role, joinedAt: roomMembers.joinedAt }).from(roomMembers)
            .where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, userId)))
          return { member: memberOfRow(row as { userId: string, role: Role, joinedAt: Date }), events: [] as RoomEvent[] }
        }
        const changed = await setRoleOf(userId, role)
        const members = [changed]
        // Handing over OWNER: the previous owner becomes ADMIN, so a room always has exactly one owner.
        if (role === 'OWNER') members.push(await setRoleOf(user.id, 'ADMIN'))
        const events = await roomLog.append(tx, roomId, members.map((member) => ({ event: 'room.member_updated', data: { member } })))
        return { member: changed, events }
      })
      if (outcome.events.length > 0) {
        await sync.invalidate({ rooms: [roomId] })
        await roomLog.publish(outcome.events)
      }
      return outcome.member
    },
  }
}
