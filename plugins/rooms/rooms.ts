import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { chatError, refusals } from '../core/errors.js'
import type { Membership, RoomsService } from './types.js'
import { can, ROLE_RANK } from './permissions.js'
import { createRoomModeration } from './room-moderation.js'
import { localTurns, redisTurns } from './slow-mode.js'
import { createRoomsContext } from './context.js'
import { createRoomLifecycle } from './room-lifecycle.js'
import { createRoomMembers } from './room-members.js'
import { PAGE_LIMIT, PAGE_LIMIT_MAX } from '../../schemas/room.js'
import { ENVELOPE_RESERVE, ReplyBudget, fitList } from '../../lib/reply-budget.js'
import { createFavorites } from './favorites.js'
import { contributeRoomsToSession, createSnapshot } from './room-session.js'
import { loadSummaries, loadSupportQueue, usersSharingARoom } from './room-summaries.js'
import { directoryPage } from './room-directory.js'
import { holdsGrant } from '../auth/permission-claims.js'
import { rolesIn } from './room-rows.js'
import { userKeyOf } from '../../lib/user-key.js'

/** room.list's and GET /rooms' answer around its rooms. */
const ROOMS_PAGE_FRAME = '{"rooms":[],"hasMore":false,"nextOffset":2147483647}'

// The service's types live in types.ts; re-exported for code that imported them from here.
export type { Actor, JoinResult, SessionSnapshot, RoomsApiMethods } from './types.js'

/** The rooms service as decorated: the contract and the richer methods. */
export type RoomsApi = RoomsService

/**
 * Rooms: the service behind room.*, dm.open and favorite.* and their REST routes, the membership cache
 * every concern authorizes against (kept coherent across nodes by membership-sync.ts), and the
 * session.ready snapshot of rooms, people and favorites. This file is the facade: the answers read
 * from the cache are here, each kind of change in a file of its own (room-lifecycle.ts, room-members.ts,
 * favorites.ts), the checks they share in room-access.ts and what they tell sockets after a commit in
 * room-announcements.ts.
 */
export const roomsPlugin = fp(async function roomsPlugin (app: FastifyInstance) {
  const ctx = await createRoomsContext(app)
  const { claims, sync, access } = ctx
  const cache = sync.cache
  const slowTurns = app.chatRedis === null ? localTurns() : redisTurns(app.chatRedis, app.chatConfig.redisPrefix)

  const service: RoomsApi = {
    cache,
    reconcileSubscriptions: sync.reconcileSubscriptions,

    async membership (roomId, user): Promise<Membership | null> {
      const entry = await access.roomFor(user, roomId)
      // The server is OWNER in every room it may see (roomFor: its tenant, or every tenant for the host).
      const role = user.server === true ? 'OWNER' : entry.members.get(user.id)
      return role === undefined ? null : { room: entry.room, role, mutedUntil: entry.muted.get(user.id) ?? null }
    },

    async requireMember (roomId, user) {
      const membership = await service.membership(roomId, user)
      if (membership === null) throw refusals.notMember()
      return membership
    },

    roomIdsOf: (user) => cache.userRooms(userKeyOf(user)),

    sharingARoom: (user, userIds) => usersSharingARoom(app.chatDb, user, userIds),

    async memberIds (roomId) {
      const entry = await cache.room(roomId)
      return entry === null ? [] : [...entry.members.keys()]
    },

    can,
    authorize: access.authorize,

    // On every send: no async step of its own beyond the membership lookup it extends.
    requireVoice (roomId, user, voice) {
      return service.requireMember(roomId, user).then((membership) => {
        if (user.server === true) return membership
        if (membership.mutedUntil !== null && membership.mutedUntil > Date.now()) throw refusals.muted(membership.mutedUntil)
        // Reactions stay open to every member of a CHANNEL or a frozen room: only speaking is ADMIN's.
        if (voice !== 'react' && ROLE_RANK[membership.role] < ROLE_RANK.ADMIN) {
          if (membership.room.type === 'CHANNEL') throw chatError('FORBIDDEN', 'in a CHANNEL only ADMIN and above post')
          if (membership.room.frozen) throw chatError('FORBIDDEN', 'this room is frozen: only ADMIN and above may send')
        }
        return membership
      })
    },

    takeSlowModeTurn (user, membership) {
      const seconds = membership.room.slowModeSec
      // Most rooms: nothing to wait for, not even a promise.
      if (seconds === 0 || user.server === true || ROLE_RANK[membership.role] >= ROLE_RANK.MODERATOR) return null
      const key = `${membership.room.id}:${userKeyOf(user)}`
      return slowTurns.take(key, seconds * 1000).then((retryAfterMs) => {
        if (retryAfterMs !== null) throw refusals.slowMode(retryAfterMs, seconds)
        return {
          giveBack () {
            slowTurns.giveBack(key).catch((error: unknown) => app.log.warn({ err: error }, 'slow mode: handing a turn back failed'))
          },
        }
      })
    },

    async actingRole (user, roomId, action) {
      const entry = await cache.room(roomId)
      if (entry === null || (user.allTenants !== true && entry.room.tenant !== user.tenant)) return null
      return claims.actingRole(user, entry.members.get(user.id), action ?? '')
    },

    async actingRoleIn (tx, user, roomId, action) {
      if (user.server === true) return 'OWNER'
      // A statement of its own after the room's lock, which every removal takes: it sees any kick
      // committed before the lock was granted (READ COMMITTED takes a snapshot per statement).
      return claims.actingRole(user, (await rolesIn(tx, roomId, [user.id])).get(user.id), action ?? '')
    },

    async listForUser (user) {
      return (await loadSummaries(app.chatDb, [user.id], undefined, user.tenant)).summaries.map(({ summary }) => summary)
    },

    async listPage (user, page = {}) {
      // A user holds at most quotas.maxRoomsPerUser rooms, so the list is read whole and cut here.
      const all = await service.listForUser(user)
      const offset = page.offset ?? 0
      const wanted = all.slice(offset, offset + Math.min(page.limit ?? PAGE_LIMIT, PAGE_LIMIT_MAX))
      const fitted = fitList(wanted, new ReplyBudget(app.chatConfig.maxReplyBytes, ENVELOPE_RESERVE + ROOMS_PAGE_FRAME.length))
      const hasMore = offset + fitted.length < all.length
      return { rooms: fitted, hasMore, nextOffset: hasMore ? offset + fitted.length : null }
    },

    async supportQueue (user, page = {}) {
      if (!holdsGrant(user, 'chats:support')) throw chatError('FORBIDDEN', 'the support queue is for holders of chats:support')
      await access.authorize(user, 'support.queue')
      const offset = page.offset ?? 0
      const limit = Math.min(page.limit ?? PAGE_LIMIT, PAGE_LIMIT_MAX)
      const found = await loadSupportQueue(app.chatDb, user.tenant, offset, limit + 1)
      const rooms = fitList(found.slice(0, limit), new ReplyBudget(app.chatConfig.maxReplyBytes, ENVELOPE_RESERVE + ROOMS_PAGE_FRAME.length))
      const hasMore = rooms.length < found.length
      return { rooms, hasMore, nextOffset: hasMore ? offset + rooms.length : null }
    },

    async directory (user, request = {}) {
      await access.authorize(user, 'room.directory')
      return await directoryPage(app.chatDb, user, request, app.chatConfig.maxReplyBytes)
    },

    snapshot: createSnapshot(ctx),
    ...createRoomLifecycle(ctx),
    ...createRoomMembers(ctx),
    ...createRoomModeration(ctx),
    ...createFavorites(ctx),
  }

  app.decorate('chatRooms', service)
  contributeRoomsToSession(app, (user) => service.snapshot(user))
}, {
  name: 'chat-rooms',
  fastify: '5.x',
  dependencies: ['chat-config', 'chat-database', 'chat-broker', 'chat-hub', 'chat-gateway', 'chat-sessions', 'chat-room-log', 'chat-users', 'chat-presence-store'],
})
