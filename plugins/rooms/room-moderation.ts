import { and, desc, eq, gt, isNull, or, sql } from 'drizzle-orm'
import { MUTED_FOREVER, roomBans, roomMembers, type Role } from '../../db/schema/index.js'
import type { ChatDb } from '../../db/client.js'
import { inList } from '../../db/queries/sql-parts.js'
import { chatError, refusals } from '../core/errors.js'
import type { ChatUser } from '../realtime/connection.js'
import { isoOf } from '../../schemas/message.js'
import type { Ban, ModerationOptions } from '../../schemas/moderation.js'
import type { Member } from '../../schemas/room.js'
import type { RoomEvent } from '../messaging/room-log.js'
import type { RoomsContext } from './context.js'
import { canActOn } from './permissions.js'
import { refuseDirect, refuseReservedUser, requireRole } from './room-access.js'
import { freeSeat, lockRoom, rolesIn } from './room-rows.js'
import { loadMembers } from './room-summaries.js'
import type { RoomsApiMethods } from './types.js'
import { userKeyOf } from '../../lib/user-key.js'

export type RoomModeration = Pick<RoomsApiMethods, 'ban' | 'unban' | 'bans' | 'mute' | 'unmute'>

type BanRow = typeof roomBans.$inferSelect

function banOf (row: BanRow): Ban {
  return { userId: row.userId, by: row.bannedBy, reason: row.reason, until: row.until === null ? null : isoOf(row.until), createdAt: isoOf(row.createdAt) }
}

/** A ban in force: none, or one without an end, or one that ends later (an ended ban needs no job). */
const inForce = or(isNull(roomBans.until), gt(roomBans.until, sql`now()`))

/** The bans in force among `userIds` in a room, read in the caller's transaction (after the room's lock). */
export async function bansIn (tx: ChatDb, roomId: string, userIds: string[]): Promise<BanRow[]> {
  if (userIds.length === 0) return []
  return await tx.select().from(roomBans)
    .where(and(eq(roomBans.roomId, roomId), sql`${roomBans.userId} in (${inList(userIds)})`, inForce))
}

/** Refuses a join or an add while any of `userIds` is banned (BANNED, details.userIds). */
export async function refuseBanned (tx: ChatDb, roomId: string, userIds: string[]): Promise<void> {
  const banned = await bansIn(tx, roomId, userIds)
  if (banned.length === 0) return
  const first = banned[0] as BanRow
  throw refusals.banned(banned.length === 1 && first.until !== null ? isoOf(first.until) : null, banned.map((row) => row.userId))
}

/**
 * Bans and mutes (protocol 11.3). Each checks against the cache first and again under the room's lock,
 * writes its room event with the change (a seq, replayed by sync, staged for the feed), then tells every
 * node through the cache invalidation: a muted member's next send is refused on any node.
 */
export function createRoomModeration (ctx: RoomsContext): RoomModeration {
  const { app, claims, sync, access, announce } = ctx
  const { chatDb: db, chatRoomLog: roomLog } = app

  /** The acting role under the lock, and the target's: the cache may be a moment behind. */
  async function rolesUnderLock (tx: ChatDb, user: ChatUser, roomId: string, userId: string, action: 'member.ban' | 'member.mute'): Promise<{ actor: Role, target: Role | undefined }> {
    await lockRoom(tx, roomId)
    const roles = await rolesIn(tx, roomId, [user.id, userId])
    const actor = claims.actingRole(user, roles.get(user.id), action)
    if (actor === null) throw refusals.notMember()
    requireRole(actor, action, action === 'member.ban' ? 'banning' : 'muting')
    const target = roles.get(userId)
    if (target !== undefined && !canActOn(actor, target, action)) throw chatError('FORBIDDEN', `a ${actor} cannot ${action === 'member.ban' ? 'ban' : 'mute'} a ${target}`)
    return { actor, target }
  }

  /** The checks before the transaction: the room, the acting role, the target's role by the cache. */
  async function precheck (user: ChatUser, roomId: string, userId: string, action: 'member.ban' | 'member.mute'): Promise<{ tenant: string }> {
    const what = action === 'member.ban' ? 'banning' : 'muting'
    if (userId === user.id) throw chatError('FORBIDDEN', `${what} yourself is not possible`)
    const { entry, role } = await access.actingMemberOf(user, roomId, action)
    refuseDirect(entry, what)
    requireRole(role, action, what)
    refuseReservedUser(user, [userId], 'userId')
    const target = entry.members.get(userId)
    if (target !== undefined && !canActOn(role, target, action)) throw chatError('FORBIDDEN', `a ${role} cannot ${action === 'member.ban' ? 'ban' : 'mute'} a ${target}`)
    return { tenant: entry.room.tenant }
  }

  async function setMute (user: ChatUser, roomId: string, userId: string, until: Date | null, reason: string | null): Promise<Member> {
    const action = until === null ? 'room.unmute' : 'room.mute'
    await precheck(user, roomId, userId, 'member.mute')
    await access.authorize(user, action, roomId, { userId, reason })
    const { member, events } = await db.transaction(async (tx) => {
      const { target } = await rolesUnderLock(tx, user, roomId, userId, 'member.mute')
      if (target === undefined) throw refusals.targetNotMember()
      await tx.update(roomMembers).set({ mutedUntil: until }).where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, userId)))
      const [updated] = await loadMembers(tx, roomId, [userId])
      if (updated === undefined) throw refusals.targetNotMember()
      const data: Record<string, unknown> = { member: updated, by: user.id, action: until === null ? 'unmuted' : 'muted' }
      if (reason !== null) data.reason = reason
      return { member: updated, events: await roomLog.append(tx, roomId, [{ event: 'room.member_updated', data }]) }
    })
    await sync.invalidate({ rooms: [roomId] })
    await roomLog.publish(events)
    return member
  }

  return {
    async ban (actor, roomId, userId, options: ModerationOptions) {
      const { user } = actor
      const { tenant } = await precheck(user, roomId, userId, 'member.ban')
      await access.authorize(user, 'room.ban', roomId, { userId, ...options })
      const outcome = await db.transaction(async (tx) => {
        const { target } = await rolesUnderLock(tx, user, roomId, userId, 'member.ban')
        // The database's clock ends it, as it judges "in force".
        const until = options.durationSec === undefined ? null : sql`now() + make_interval(secs => ${options.durationSec})`
        const values = { roomId, userId, bannedBy: user.id, reason: options.reason ?? null, until, createdAt: sql`now()` }
        const [row] = await tx.insert(roomBans).values(values)
          .onConflictDoUpdate({ target: [roomBans.roomId, roomBans.userId], set: { bannedBy: values.bannedBy, reason: values.reason, until: values.until, createdAt: values.createdAt } })
          .returning()
        const ban = banOf(row as BanRow)
        const detail = { userId, by: user.id, until: ban.until, ...(ban.reason !== null ? { reason: ban.reason } : {}) }
        let events: RoomEvent[]
        if (target !== undefined) {
          await tx.delete(roomMembers).where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, userId)))
          await freeSeat(tx, roomId)
          events = await roomLog.append(tx, roomId, [{ event: 'room.member_left', data: { ...detail, banned: true } }])
        } else {
          // Banned before joining: the room still hears of it (moderators see who is kept out).
          events = await roomLog.append(tx, roomId, [{ event: 'room.member_banned', data: detail }])
        }
        return { ban, wasMember: target !== undefined, events }
      })
      const banned = { id: userId, tenant }
      if (outcome.wasMember) await sync.invalidate({ rooms: [roomId], users: [userKeyOf(banned)] })
      await roomLog.publish(outcome.events)
      if (outcome.wasMember) await announce.left(roomId, banned, undefined, 'banned')
      return outcome.ban
    },

    async unban (actor, roomId, userId) {
      const { user } = actor
      const { entry, role } = await access.actingMemberOf(user, roomId, 'member.ban')
      refuseDirect(entry, 'lifting a ban')
      requireRole(role, 'member.ban', 'lifting a ban')
      await access.authorize(user, 'room.unban', roomId, { userId })
      const events = await db.transaction(async (tx) => {
        await lockRoom(tx, roomId)
        const actorRole = claims.actingRole(user, (await rolesIn(tx, roomId, [user.id])).get(user.id), 'member.ban')
        if (actorRole === null) throw refusals.notMember()
        requireRole(actorRole, 'member.ban', 'lifting a ban')
        const lifted = await tx.delete(roomBans).where(and(eq(roomBans.roomId, roomId), eq(roomBans.userId, userId), inForce)).returning({ userId: roomBans.userId })
        // An ended ban's row goes too, quietly: it kept no one out any more.
        await tx.delete(roomBans).where(and(eq(roomBans.roomId, roomId), eq(roomBans.userId, userId)))
        if (lifted.length === 0) return []
        return await roomLog.append(tx, roomId, [{ event: 'room.ban_lifted', data: { userId, by: user.id } }])
      })
      await roomLog.publish(events)
    },

    async bans (actor, roomId) {
      const { user } = actor
      const { role } = await access.actingMemberOf(user, roomId, 'room.bans')
      requireRole(role, 'room.bans', 'reading the bans')
      await access.authorize(user, 'room.bans', roomId)
      const found = await db.select().from(roomBans).where(and(eq(roomBans.roomId, roomId), inForce)).orderBy(desc(roomBans.createdAt)).limit(1000)
      return found.map(banOf)
    },

    async mute (actor, roomId, userId, options) {
      // The nodes' clocks judge a mute (the cache compares with Date.now()), so a node's clock sets its end.
      const until = options.durationSec === undefined ? MUTED_FOREVER : new Date(Date.now() + options.durationSec * 1000)
      return await setMute(actor.user, roomId, userId, until, options.reason ?? null)
    },

    async unmute (actor, roomId, userId) {
      return await setMute(actor.user, roomId, userId, null, null)
    },
  }
}
