import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { and, count, eq, inArray, sql } from 'drizzle-orm'
import { favorites, roomMembers, rooms, users, type FavoriteType, type Role } from '../../db/schema/index.js'
import type { ChatDb } from '../../db/client.js'
import { chatError, refusals } from '../core/errors.js'
import { SERVER_USER_ID, type ChatUser, type Connection } from '../realtime/connection.js'
import type { RoomEvent, NewRoomEvent } from '../messaging/room-log.js'
import type { CachedRoom, Membership, RoomAction, RoomsService } from './types.js'
import { MembershipCache, type RoomEntry } from './membership-cache.js'
import { can, canKick, canSetRole } from './permissions.js'
import { PermissionClaims } from '../auth/permission-claims.js'
import type { AuthorizeRequest } from '../core/config.js'
import { isUuid, type CreateRoomData, type Favorite, type Member, type MemberWithStatus, type Person, type PresenceStatus, type RoomPatchData, type RoomSummary } from '../../schemas/room.js'
import { latestMessages, loadFavorites, loadMembers, loadSummaries, roomOf } from './room-summaries.js'
import { isoOf, type Message } from '../../schemas/message.js'

/** Who does an action: the user, and the socket that asked (it gets the ack, not the push), if any. */
export interface Actor {
  user: ChatUser
  connection?: Connection
}

export interface JoinResult {
  room: RoomSummary
  members: MemberWithStatus[]
  messages: Message[]
}

export interface SessionSnapshot {
  rooms: RoomSummary[]
  people: Person[]
  favorites: Favorite[]
}

/** What the REST and WebSocket surfaces call, on top of the contract other concerns use. */
export interface RoomsApiMethods {
  create (actor: Actor, data: CreateRoomData): Promise<RoomSummary>
  /** The DIRECT room of the actor and `userId`, created on first use; `created` tells which. */
  openDirect (actor: Actor, userId: string): Promise<{ room: RoomSummary, created: boolean }>
  join (actor: Actor, roomId: string): Promise<JoinResult>
  leave (actor: Actor, roomId: string): Promise<void>
  update (actor: Actor, roomId: string, patch: RoomPatchData): Promise<RoomSummary>
  delete (actor: Actor, roomId: string): Promise<void>
  /** One room as the actor sees it, with its members. */
  get (actor: Actor, roomId: string): Promise<{ room: RoomSummary, members: MemberWithStatus[] }>
  members (actor: Actor, roomId: string): Promise<MemberWithStatus[]>
  /** Adds (invites) users; returns the members that were added, skipping users who already were. */
  addMembers (actor: Actor, roomId: string, userIds: string[]): Promise<MemberWithStatus[]>
  /** Kicks a member; the actor's own id means leave. */
  removeMember (actor: Actor, roomId: string, userId: string): Promise<void>
  setRole (actor: Actor, roomId: string, userId: string, role: Role): Promise<Member>
  /** Every room of the user as they see it, most recently active first. */
  listForUser (user: ChatUser): Promise<RoomSummary[]>
  /** session.ready's rooms, people and favorites, in a fixed number of queries. */
  snapshot (user: ChatUser): Promise<SessionSnapshot>
  favorites (user: ChatUser): Promise<Favorite[]>
  toggleFavorite (actor: Actor, type: FavoriteType, id: string): Promise<Favorite[]>
  setFavorite (actor: Actor, type: FavoriteType, id: string, on: boolean): Promise<Favorite[]>
  /** Re-aligns this node's socket subscriptions with the database (runs after a broker reconnect). */
  reconcileSubscriptions (): Promise<void>
  /**
   * The user's role in a room for `action` (null: none, or the room does not exist for them): their
   * membership's role, raised to MODERATOR for moderator actions by the permissions claim chats:moderate.
   */
  actingRole (user: ChatUser, roomId: string, action?: RoomAction): Promise<Role | null>
  /** The node's membership cache (sizes, tests). */
  readonly cache: MembershipCache
}

// types.ts declares `app.chatRooms: RoomsService`; the richer methods join that interface here.
declare module './types.js' {
  interface RoomsService extends RoomsApiMethods {}
}

/** The rooms service as decorated: the contract and the richer methods. */
export type RoomsApi = RoomsService

/** The broker channel every node listens to for membership cache invalidations. */
export const INVALIDATE_CHANNEL = 'rooms:invalidate'
/** Hub user controls: subscribe / unsubscribe every socket of a user, on every node. */
export const ROOM_SUBSCRIBE = 'room.subscribe'
export const ROOM_UNSUBSCRIBE = 'room.unsubscribe'

/** How many favorites a user may keep. */
export const MAX_FAVORITES = 500
/** Messages in room.join's ack. */
export const JOIN_PAGE = 50

interface Invalidation {
  rooms?: string[]
  users?: string[]
  /** Rooms that no longer exist: every node also drops its sockets' subscriptions to them. */
  deleted?: string[]
}

/**
 * The key that makes a pair's DIRECT room unique: tenant and both ids, sorted, each URI-encoded so that
 * a ':' inside an id cannot make two different pairs collide.
 */
export function directKey (tenant: string, a: string, b: string): string {
  const [first, second] = a < b ? [a, b] : [b, a]
  return [tenant, first, second].map(encodeURIComponent).join(':')
}

function frame (event: string, data: unknown): string {
  return JSON.stringify({ event, data })
}

function unique (values: Iterable<string>): string[] {
  return [...new Set(values)]
}

function userRef (user: ChatUser): { id: string, name: string | null, avatar: string | null } {
  return { id: user.id, name: user.name, avatar: user.avatar }
}

/**
 * Rooms: the service behind room.*, dm.open and favorite.* and their REST routes, the membership cache
 * every concern authorizes against, and the session.ready snapshot of rooms, people and favorites.
 *
 * Cache coherence, the one design: every node subscribes the broker channel `rooms:invalidate` at start.
 * A node that commits a membership, role or room-settings change drops the affected entries from its own
 * cache at once (before it acks) and publishes the room and user ids; every other node drops the same
 * entries when the message arrives, and refills them from the database on the next miss. Invalidation
 * rather than shipping deltas keeps nodes correct whatever order two concurrent changes arrive in; a load
 * that an invalidation overtakes is not stored. User controls (hub.controlUser) are not used for this
 * because a user's entry can be cached on nodes where the user has no socket (REST, other members'
 * sends). Another node may act on the old state for the broker's latency (about a millisecond); every
 * write re-checks roles under the room's row lock, so only reads and message sends see that window.
 * After a broker reconnect (messages may have been lost) the whole cache is dropped.
 */
export const roomsPlugin = fp(async function roomsPlugin (app: FastifyInstance) {
  const db = app.chatDb
  const hub = app.chatHub
  const roomLog = app.chatRoomLog
  const broker = app.chatBroker
  const gateway = app.chatGateway

  async function loadRoomEntry (roomId: string): Promise<RoomEntry | null> {
    const found = await db.select({
      id: rooms.id,
      tenant: rooms.tenant,
      type: rooms.type,
      isPrivate: rooms.isPrivate,
      maxMembers: rooms.maxMembers,
      userId: roomMembers.userId,
      role: roomMembers.role,
    }).from(rooms).leftJoin(roomMembers, eq(roomMembers.roomId, rooms.id)).where(eq(rooms.id, roomId))
    const first = found[0]
    if (first === undefined) return null
    const room: CachedRoom = { id: first.id, tenant: first.tenant, type: first.type, isPrivate: first.isPrivate, maxMembers: first.maxMembers }
    const members = new Map<string, Role>()
    for (const row of found) if (row.userId !== null && row.role !== null) members.set(row.userId, row.role)
    return { room, members }
  }

  async function loadUserRooms (userId: string): Promise<string[]> {
    const found = await db.select({ roomId: roomMembers.roomId }).from(roomMembers).where(eq(roomMembers.userId, userId))
    return found.map((row) => row.roomId)
  }

  const cache = new MembershipCache({ loadRoom: loadRoomEntry, loadUserRooms })
  const claims = new PermissionClaims(app.chatConfig.requirePermissions)

  // ---- invalidation and subscriptions across nodes -------------------------------------------------

  function applyInvalidation (change: Invalidation): void {
    cache.invalidate(change)
    for (const roomId of change.deleted ?? []) {
      for (const connection of [...hub.roomConnections(roomId)]) {
        hub.unsubscribe(connection, roomId).catch((error: unknown) => app.log.warn({ err: error, roomId }, 'rooms: unsubscribe failed'))
      }
    }
  }

  async function invalidate (change: Invalidation): Promise<void> {
    applyInvalidation(change)
    // One node alone needs no message: the in-process broker has no other subscriber.
    if (broker.kind === 'memory') return
    try {
      await broker.publish(INVALIDATE_CHANNEL, `${hub.nodeId} ${JSON.stringify(change)}`)
    } catch (error) {
      app.log.error({ err: error }, 'rooms: publishing a cache invalidation failed; other nodes stay stale until their broker reconnects')
    }
  }

  const onInvalidation = (payload: string): void => {
    const space = payload.indexOf(' ')
    if (space < 0 || payload.slice(0, space) === hub.nodeId) return
    try {
      applyInvalidation(JSON.parse(payload.slice(space + 1)) as Invalidation)
    } catch (error) {
      app.log.warn({ err: error }, 'rooms: unreadable invalidation')
    }
  }
  /**
   * Brings every local socket's subscriptions back in line with the database: the rooms of its user are
   * subscribed, rooms it is no longer a member of are dropped. Controls published while the broker was
   * down were lost, so this runs after a reconnect; one query per 500 local users.
   */
  async function reconcileSubscriptions (): Promise<void> {
    const byUser = new Map<string, Connection[]>()
    for (const connection of hub.connections()) {
      const userId = connection.userId
      if (userId === null) continue
      const list = byUser.get(userId)
      if (list === undefined) byUser.set(userId, [connection])
      else list.push(connection)
    }
    const userIds = [...byUser.keys()]
    for (let start = 0; start < userIds.length; start += 500) {
      const chunk = userIds.slice(start, start + 500)
      const found = await db.select({ userId: roomMembers.userId, roomId: roomMembers.roomId }).from(roomMembers)
        .where(inArray(roomMembers.userId, chunk))
      const wanted = new Map<string, Set<string>>(chunk.map((userId) => [userId, new Set()]))
      for (const row of found) wanted.get(row.userId)?.add(row.roomId)
      const changes: Array<Promise<void>> = []
      for (const [userId, roomIds] of wanted) {
        for (const connection of byUser.get(userId) ?? []) {
          if (!connection.isOpen) continue
          for (const roomId of roomIds) if (!connection.rooms.has(roomId)) changes.push(hub.subscribe(connection, roomId))
          for (const roomId of [...connection.rooms]) {
            if (roomIds.has(roomId)) continue
            // Asked again through the cache: a join that committed after the query above is not undone.
            changes.push((async () => {
              const entry = await cache.room(roomId)
              if (entry === null || !entry.members.has(userId)) await hub.unsubscribe(connection, roomId)
            })())
          }
        }
      }
      await Promise.all(changes)
    }
  }

  await broker.subscribe(INVALIDATE_CHANNEL, onInvalidation)
  broker.onReconnect(() => {
    // Invalidations and controls may have been lost while the broker was away.
    cache.clear()
    reconcileSubscriptions().catch((error: unknown) => app.log.warn({ err: error }, 'rooms: reconciling subscriptions after a broker reconnect failed'))
  })
  app.addHook('onClose', async () => {
    await broker.unsubscribe(INVALIDATE_CHANNEL, onInvalidation).catch(() => {})
  })

  // Membership drives subscriptions: a control reaches every node with sockets of the user.
  hub.onUserControl((userId, control) => {
    const roomId = control.roomId
    if (typeof roomId !== 'string') return
    if (control.type === ROOM_SUBSCRIBE) {
      if (hub.connectionsOf(userId).size === 0) return
      const idle = hub.roomConnections(roomId).size === 0
      // The sockets join the room's set synchronously, before any frame of the room can be delivered.
      const subscribing = hub.subscribeUser(userId, roomId)
      // A node that starts listening to the room now delivers from the seq before the change on.
      if (idle && typeof control.seq === 'number') roomLog.baseline(roomId, control.seq)
      subscribing.catch((error: unknown) => app.log.warn({ err: error, roomId }, 'rooms: subscribe failed'))
    } else if (control.type === ROOM_UNSUBSCRIBE) {
      hub.unsubscribeUser(userId, roomId).catch((error: unknown) => app.log.warn({ err: error, roomId }, 'rooms: unsubscribe failed'))
    }
  })

  // ---- helpers ------------------------------------------------------------------------------------

  async function statusesOf (userIds: string[]): Promise<Map<string, { status: PresenceStatus, lastSeen: string | null }>> {
    return await app.chatPresenceStore.statusOf(userIds)
  }

  async function withStatus (members: Member[]): Promise<MemberWithStatus[]> {
    const statuses = await statusesOf(members.map((member) => member.user.id))
    return members.map((member) => ({ ...member, status: statuses.get(member.user.id)?.status ?? 'offline' }))
  }

  async function authorize (user: ChatUser, action: string, roomId?: string, data?: unknown): Promise<void> {
    if (user.server === true) return
    // The token's permissions claim first (when requirePermissions is on), then the host's veto.
    claims.require(user, action)
    const hook = app.chatHooks.authorize
    if (hook === undefined) return
    let allowed: boolean
    try {
      const request: AuthorizeRequest = {
        action,
        userId: user.id,
        user: { id: user.id, roles: user.roles, permissions: user.permissions, tenant: user.tenant },
      }
      if (roomId !== undefined) request.roomId = roomId
      if (data !== undefined) request.data = data
      allowed = await hook(request)
    } catch (error) {
      app.log.warn({ err: error, action, userId: user.id }, 'rooms: the authorize hook threw; refusing')
      allowed = false
    }
    if (allowed !== true) throw chatError('FORBIDDEN', `${action} refused by the host's authorize hook`)
  }

  /** The room from the cache; NOT_FOUND when it does not exist or belongs to another tenant. */
  async function roomFor (user: ChatUser, roomId: string): Promise<RoomEntry> {
    const entry = await cache.room(roomId)
    if (entry === null || (user.server !== true && entry.room.tenant !== user.tenant)) throw refusals.roomNotFound()
    return entry
  }

  async function memberOf (user: ChatUser, roomId: string): Promise<{ entry: RoomEntry, role: Role }> {
    const entry = await roomFor(user, roomId)
    const role = user.server === true ? 'OWNER' : entry.members.get(user.id)
    if (role === undefined) throw refusals.notMember()
    return { entry, role }
  }

  /**
   * Like memberOf, for a moderator action (`member.kick`, `message.delete.any`): the permissions claim
   * chats:moderate (with requirePermissions) acts as MODERATOR in any room of the user's tenant.
   */
  async function actingMemberOf (user: ChatUser, roomId: string, action: RoomAction): Promise<{ entry: RoomEntry, role: Role }> {
    const entry = await roomFor(user, roomId)
    const role = claims.actingRole(user, user.server === true ? 'OWNER' : entry.members.get(user.id), action)
    if (role === null) throw refusals.notMember()
    return { entry, role }
  }

  function refuseDirect (entry: RoomEntry, what: string): void {
    if (entry.room.type === 'DIRECT') throw chatError('FORBIDDEN', `${what} is not possible in a DIRECT room`)
  }

  function requireRole (role: Role, action: RoomAction, what: string): void {
    if (!can(role, action)) throw chatError('FORBIDDEN', `${what} needs a higher role than ${role}`)
  }

  /** Users known to belong to another tenant cannot be added or messaged. */
  async function assertSameTenant (userIds: string[], tenant: string): Promise<void> {
    if (userIds.length === 0) return
    const foreign = await db.select({ id: users.id }).from(users)
      .where(and(inArray(users.id, userIds), sql`${users.tenant} <> ${tenant}`)).limit(1)
    if (foreign.length > 0) throw chatError('NOT_FOUND', `user ${foreign[0]?.id ?? ''} not found`)
  }

  /** Locks the room's row for the rest of the transaction: every membership change of a room is serialized here. */
  async function lockRoom (tx: ChatDb, roomId: string) {
    const [row] = await tx.select().from(rooms).where(eq(rooms.id, roomId)).for('update')
    if (row === undefined) throw refusals.roomNotFound()
    return row
  }

  async function rolesIn (tx: ChatDb, roomId: string, userIds: string[]): Promise<Map<string, Role>> {
    const found = await tx.select({ userId: roomMembers.userId, role: roomMembers.role }).from(roomMembers)
      .where(and(eq(roomMembers.roomId, roomId), inArray(roomMembers.userId, userIds)))
    const roles = new Map(found.map((row) => [row.userId, row.role]))
    // The server-side API acts as OWNER without being a member; tokens cannot claim its id.
    if (userIds.includes(SERVER_USER_ID)) roles.set(SERVER_USER_ID, 'OWNER')
    return roles
  }

  /** Takes `seats` places; the conditional UPDATE is what keeps maxMembers under concurrent joins. */
  async function takeSeats (tx: ChatDb, roomId: string, seats: number): Promise<void> {
    const updated = await tx.update(rooms).set({ memberCount: sql`${rooms.memberCount} + ${seats}` })
      .where(and(eq(rooms.id, roomId), sql`(${rooms.maxMembers} is null or ${rooms.memberCount} + ${seats} <= ${rooms.maxMembers})`))
      .returning({ id: rooms.id })
    if (updated.length === 0) throw chatError('ROOM_FULL', 'the room is full')
  }

  async function freeSeat (tx: ChatDb, roomId: string): Promise<void> {
    await tx.update(rooms).set({ memberCount: sql`greatest(${rooms.memberCount} - 1, 0)` }).where(eq(rooms.id, roomId))
  }

  async function summariesFor (roomId: string, userIds: string[]): Promise<Map<string, RoomSummary>> {
    const { summaries } = await loadSummaries(db, userIds, [roomId])
    return new Map(summaries.map(({ userId, summary }) => [userId, summary]))
  }

  async function summaryFor (user: ChatUser, roomId: string): Promise<RoomSummary> {
    const summary = (await summariesFor(roomId, [user.id])).get(user.id)
    if (summary === undefined) throw refusals.notMember()
    return summary
  }

  /**
   * After a commit that gave `userIds` the room: subscribe each user's sockets on every node, then push
   * room.added. Both happen before the caller publishes the room events, so the new members' sockets
   * receive their own member_joined. `seqBefore` is the room's seq before those events.
   */
  async function announceJoined (roomId: string, userIds: string[], seqBefore: number, actor?: Actor): Promise<Map<string, RoomSummary>> {
    await quietly('subscribing new members', Promise.all(userIds.map((userId) => hub.controlUser(userId, { type: ROOM_SUBSCRIBE, roomId, seq: seqBefore }))))
    const summaries = await summariesFor(roomId, userIds)
    await quietly('room.added', Promise.all([...summaries].map(([userId, room]) =>
      hub.publishUser(userId, frame('room.added', { room }), userId === actor?.user.id ? actor.connection : undefined))))
    return summaries
  }

  /** After a commit that took the room from a user: drop their sockets' subscriptions, push room.removed. */
  async function announceLeft (roomId: string, userId: string, except?: Connection): Promise<void> {
    await quietly('unsubscribing a former member', hub.controlUser(userId, { type: ROOM_UNSUBSCRIBE, roomId }))
    await quietly('room.removed', hub.publishUser(userId, frame('room.removed', { roomId }), except))
  }

  /**
   * After a room was deleted: one room.removed to every socket of the room on every node (one publish,
   * not one per member), then the invalidation that makes every node drop the room's subscriptions.
   */
  async function announceDeleted (roomId: string, memberIds: string[], except?: Connection): Promise<void> {
    await quietly('room.removed', hub.publishRoom(roomId, frame('room.removed', { roomId }), except === undefined ? {} : { except }))
    await invalidate({ rooms: [roomId], users: memberIds, deleted: [roomId] })
  }

  async function publish (events: RoomEvent[]): Promise<void> {
    if (events.length > 0) await quietly('publishing room events', roomLog.publish(events))
  }

  /**
   * Fan-out after a commit. The change is durable, so a broker failure here is logged rather than turned
   * into an error reply (a retried create would make a second room): this node's sockets were already
   * served before the broker was asked, other nodes catch up from the room log and, after the broker
   * reconnects, by re-aligning subscriptions; clients catch up with sync.
   */
  async function quietly (what: string, work: Promise<unknown>): Promise<void> {
    try {
      await work
    } catch (error) {
      app.log.warn({ err: error }, `rooms: ${what} failed after the commit`)
    }
  }

  // ---- the service -------------------------------------------------------------------------------

  const service: RoomsApi = {
    cache,
    reconcileSubscriptions,

    async membership (roomId, userId): Promise<Membership | null> {
      const entry = await cache.room(roomId)
      if (entry === null) throw refusals.roomNotFound()
      const role = entry.members.get(userId)
      return role === undefined ? null : { room: entry.room, role }
    },

    async requireMember (roomId, userId) {
      const membership = await service.membership(roomId, userId)
      if (membership === null) throw refusals.notMember()
      return membership
    },

    roomIdsOf: (userId) => cache.userRooms(userId),

    async memberIds (roomId) {
      const entry = await cache.room(roomId)
      return entry === null ? [] : [...entry.members.keys()]
    },

    can,
    authorize,

    async actingRole (user, roomId, action) {
      const entry = await cache.room(roomId)
      if (entry === null || entry.room.tenant !== user.tenant) return null
      return claims.actingRole(user, entry.members.get(user.id), action ?? '')
    },

    async create (actor, data) {
      const { user } = actor
      const name = data.name.trim()
      if (name.length === 0) throw chatError('VALIDATION_FAILED', 'name: must not be blank', [{ field: 'name', message: 'must not be blank' }])
      const memberIds = unique(data.memberIds ?? []).filter((id) => id !== user.id)
      if (data.maxMembers !== undefined && memberIds.length + 1 > data.maxMembers) {
        throw chatError('VALIDATION_FAILED', `maxMembers: ${memberIds.length + 1} initial members do not fit in ${data.maxMembers}`, [{ field: 'maxMembers', message: 'smaller than the initial members' }])
      }
      await assertSameTenant(memberIds, user.tenant)
      await authorize(user, 'room.create', undefined, data)
      const room = await db.transaction(async (tx) => {
        const [created] = await tx.insert(rooms).values({
          tenant: user.tenant,
          type: data.type,
          name,
          description: data.description ?? null,
          avatar: data.avatar ?? null,
          isPrivate: data.isPrivate ?? false,
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
        return created
      })
      await invalidate({ users: [user.id, ...memberIds] })
      const summaries = await announceJoined(room.id, [user.id, ...memberIds], 0, actor)
      return summaries.get(user.id) ?? await summaryFor(user, room.id)
    },

    async openDirect (actor, userId) {
      const { user } = actor
      if (userId === user.id) throw chatError('VALIDATION_FAILED', 'userId: a direct room needs another user', [{ field: 'userId', message: 'must not be your own id' }])
      await assertSameTenant([userId], user.tenant)
      await authorize(user, 'dm.open', undefined, { userId })
      const key = directKey(user.tenant, user.id, userId)
      // The unique index on direct_key decides: of concurrent opens (on any node) one insert wins, the
      // others do nothing and read the winner's row, which their statement waits for.
      const outcome = await db.transaction(async (tx) => {
        const [inserted] = await tx.insert(rooms).values({
          tenant: user.tenant, type: 'DIRECT', name: '', isPrivate: true, memberCount: 2, directKey: key, createdBy: user.id,
        }).onConflictDoNothing({ target: rooms.directKey }).returning({ id: rooms.id })
        if (inserted !== undefined) {
          await tx.insert(roomMembers).values([
            { roomId: inserted.id, userId: user.id, role: 'MEMBER' as const, lastReadSeq: 0 },
            { roomId: inserted.id, userId, role: 'MEMBER' as const, lastReadSeq: 0 },
          ])
          return { roomId: inserted.id, created: true }
        }
        const [existing] = await tx.select({ id: rooms.id }).from(rooms).where(eq(rooms.directKey, key))
        if (existing === undefined) throw chatError('CONFLICT', 'the direct room is being created, retry')
        return { roomId: existing.id, created: false }
      })
      if (!outcome.created) return { room: await summaryFor(user, outcome.roomId), created: false }
      await invalidate({ users: [user.id, userId] })
      const summaries = await announceJoined(outcome.roomId, [user.id, userId], 0, actor)
      return { room: summaries.get(user.id) ?? await summaryFor(user, outcome.roomId), created: true }
    },

    async join (actor, roomId) {
      const { user } = actor
      const entry = await roomFor(user, roomId)
      const already = entry.members.has(user.id)
      // The permissions claim chats:join_private (with requirePermissions) admits without an invitation.
      const joinsPrivate = claims.grants(user, 'chats:join_private')
      if (!already) {
        refuseDirect(entry, 'joining')
        if (entry.room.isPrivate && !joinsPrivate) throw chatError('FORBIDDEN', 'this room is private: members are added by invitation only')
      }
      await authorize(user, 'room.join', roomId)
      if (!already) {
        const events = await db.transaction(async (tx) => {
          const room = await lockRoom(tx, roomId)
          if (room.type === 'DIRECT' || (room.isPrivate && !joinsPrivate)) throw chatError('FORBIDDEN', 'this room admits members by invitation only')
          if ((await rolesIn(tx, roomId, [user.id])).size > 0) return [] // joined meanwhile: idempotent
          await takeSeats(tx, roomId, 1)
          const appended = await roomLog.append(tx, roomId, [{ event: 'room.member_joined', data: { user: userRef(user), role: 'MEMBER' } }])
          const lastSeq = appended[appended.length - 1]?.seq ?? room.lastSeq
          await tx.insert(roomMembers).values({ roomId, userId: user.id, role: 'MEMBER', lastReadSeq: lastSeq })
          return appended
        })
        if (events.length > 0) {
          await invalidate({ rooms: [roomId], users: [user.id] })
          await announceJoined(roomId, [user.id], (events[0] as RoomEvent).seq - 1, actor)
          await publish(events)
        }
      }
      // Without chats:read (when claims are enforced) the join answers no members and no messages.
      const reads = user.server === true || claims.mayRead(user)
      const [room, members, messages] = await Promise.all([
        summaryFor(user, roomId),
        reads ? loadMembers(db, roomId).then(withStatus) : [],
        reads ? latestMessages(db, roomId, JOIN_PAGE) : [],
      ])
      return { room, members, messages }
    },

    async leave (actor, roomId) {
      const { user } = actor
      const { entry, role } = await memberOf(user, roomId)
      refuseDirect(entry, 'leaving')
      if (role === 'OWNER' && entry.members.size > 1) {
        throw refusals.ownerCannotLeave()
      }
      await authorize(user, 'room.leave', roomId)
      const outcome = await db.transaction(async (tx) => {
        const room = await lockRoom(tx, roomId)
        const current = (await rolesIn(tx, roomId, [user.id])).get(user.id)
        if (current === undefined) throw refusals.notMember()
        if (current === 'OWNER') {
          if (room.memberCount > 1) throw refusals.ownerCannotLeave()
          // The last member leaving is the end of the room.
          await tx.delete(favorites).where(and(eq(favorites.type, 'ROOM'), eq(favorites.targetId, roomId)))
          await tx.delete(rooms).where(eq(rooms.id, roomId))
          return { deleted: true as const }
        }
        await tx.delete(roomMembers).where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, user.id)))
        await freeSeat(tx, roomId)
        const events = await roomLog.append(tx, roomId, [{ event: 'room.member_left', data: { userId: user.id } }])
        return { deleted: false as const, events }
      })
      if (outcome.deleted) {
        await announceDeleted(roomId, [user.id], actor.connection)
        return
      }
      await invalidate({ rooms: [roomId], users: [user.id] })
      // The leaving user's sockets still hear their own member_left, then lose the room.
      await publish(outcome.events)
      await announceLeft(roomId, user.id, actor.connection)
    },

    async update (actor, roomId, patch) {
      const { user } = actor
      const { entry, role } = await memberOf(user, roomId)
      refuseDirect(entry, 'updating the room')
      requireRole(role, 'room.update', 'updating the room')
      const name = patch.name?.trim()
      if (name !== undefined && name.length === 0) throw chatError('VALIDATION_FAILED', 'name: must not be blank', [{ field: 'name', message: 'must not be blank' }])
      await authorize(user, 'room.update', roomId, patch)
      const changes: Partial<typeof rooms.$inferInsert> = {}
      if (name !== undefined) changes.name = name
      if (patch.description !== undefined) changes.description = patch.description
      if (patch.avatar !== undefined) changes.avatar = patch.avatar
      if (patch.isPrivate !== undefined) changes.isPrivate = patch.isPrivate
      if (patch.maxMembers !== undefined) changes.maxMembers = patch.maxMembers
      if (Object.keys(changes).length > 0) {
        const events = await db.transaction(async (tx) => {
          const room = await lockRoom(tx, roomId)
          const current = (await rolesIn(tx, roomId, [user.id])).get(user.id)
          if (current === undefined) throw refusals.notMember()
          requireRole(current, 'room.update', 'updating the room')
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
                is_private: updated.isPrivate, max_members: updated.maxMembers, member_count: updated.memberCount,
                last_seq: updated.lastSeq + 1, created_by: updated.createdBy, created_at: isoOf(updated.createdAt),
              }),
            },
          }
          return await roomLog.append(tx, roomId, [next])
        })
        await invalidate({ rooms: [roomId] })
        await publish(events)
      }
      return await summaryFor(user, roomId)
    },

    async delete (actor, roomId) {
      const { user } = actor
      const { entry, role } = await memberOf(user, roomId)
      refuseDirect(entry, 'deleting the room')
      requireRole(role, 'room.delete', 'deleting the room')
      await authorize(user, 'room.delete', roomId)
      const memberIds = await db.transaction(async (tx) => {
        await lockRoom(tx, roomId)
        const current = (await rolesIn(tx, roomId, [user.id])).get(user.id)
        if (current === undefined) throw refusals.notMember()
        requireRole(current, 'room.delete', 'deleting the room')
        const members = await tx.select({ userId: roomMembers.userId }).from(roomMembers).where(eq(roomMembers.roomId, roomId))
        await tx.delete(favorites).where(and(eq(favorites.type, 'ROOM'), eq(favorites.targetId, roomId)))
        // Members, messages, reactions and room events go with it (ON DELETE CASCADE).
        await tx.delete(rooms).where(eq(rooms.id, roomId))
        return members.map((row) => row.userId)
      })
      await announceDeleted(roomId, memberIds, actor.connection)
    },

    async get (actor, roomId) {
      await memberOf(actor.user, roomId)
      await authorize(actor.user, 'room.get', roomId)
      const [room, members] = await Promise.all([summaryFor(actor.user, roomId), loadMembers(db, roomId).then(withStatus)])
      return { room, members }
    },

    async members (actor, roomId) {
      await memberOf(actor.user, roomId)
      await authorize(actor.user, 'room.members', roomId)
      return await withStatus(await loadMembers(db, roomId))
    },

    async addMembers (actor, roomId, userIds) {
      const { user } = actor
      const { entry, role } = await memberOf(user, roomId)
      refuseDirect(entry, 'adding members')
      requireRole(role, 'member.add', 'adding members')
      const ids = unique(userIds).filter((id) => id !== user.id)
      await assertSameTenant(ids, entry.room.tenant)
      await authorize(user, 'room.member.add', roomId, { userIds: ids })
      if (ids.length === 0) return []
      const profiles = await app.chatUsers.profiles(ids)
      const outcome = await db.transaction(async (tx) => {
        const room = await lockRoom(tx, roomId)
        const roles = await rolesIn(tx, roomId, [user.id, ...ids])
        const current = roles.get(user.id)
        if (current === undefined) throw refusals.notMember()
        requireRole(current, 'member.add', 'adding members')
        const added = ids.filter((id) => !roles.has(id))
        if (added.length === 0) return { added, events: [] as RoomEvent[] }
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
      await invalidate({ rooms: [roomId], users: outcome.added })
      await announceJoined(roomId, outcome.added, (outcome.events[0] as RoomEvent).seq - 1)
      await publish(outcome.events)
      return await withStatus(await loadMembers(db, roomId, outcome.added))
    },

    async removeMember (actor, roomId, userId) {
      const { user } = actor
      if (userId === user.id) return await service.leave(actor, roomId)
      const { entry, role } = await actingMemberOf(user, roomId, 'member.kick')
      refuseDirect(entry, 'removing members')
      const target = entry.members.get(userId)
      if (target === undefined) throw refusals.targetNotMember()
      if (!canKick(role, target)) throw chatError('FORBIDDEN', `a ${role} cannot remove a ${target}`)
      await authorize(user, 'room.member.remove', roomId, { userId })
      const events = await db.transaction(async (tx) => {
        await lockRoom(tx, roomId)
        const roles = await rolesIn(tx, roomId, [user.id, userId])
        const actorRole = claims.actingRole(user, roles.get(user.id), 'member.kick')
        const targetRole = roles.get(userId)
        if (actorRole === null) throw refusals.notMember()
        if (targetRole === undefined) throw refusals.targetNotMember()
        if (!canKick(actorRole, targetRole)) throw chatError('FORBIDDEN', `a ${actorRole} cannot remove a ${targetRole}`)
        await tx.delete(roomMembers).where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, userId)))
        await freeSeat(tx, roomId)
        return await roomLog.append(tx, roomId, [{ event: 'room.member_left', data: { userId, by: user.id } }])
      })
      await invalidate({ rooms: [roomId], users: [userId] })
      await publish(events)
      await announceLeft(roomId, userId)
    },

    async setRole (actor, roomId, userId, role) {
      const { user } = actor
      const { entry, role: actorRole } = await memberOf(user, roomId)
      refuseDirect(entry, 'changing roles')
      if (userId === user.id) throw chatError('FORBIDDEN', 'you cannot change your own role (hand over OWNER to another member instead)')
      const target = entry.members.get(userId)
      if (target === undefined) throw refusals.targetNotMember()
      if (!canSetRole(actorRole, target, role)) throw chatError('FORBIDDEN', `a ${actorRole} cannot make a ${target} ${role}`)
      await authorize(user, 'room.member.role', roomId, { userId, role })
      const profiles = await app.chatUsers.profiles([user.id, userId])
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
        await invalidate({ rooms: [roomId] })
        await publish(outcome.events)
      }
      return outcome.member
    },

    async listForUser (user) {
      return (await loadSummaries(db, [user.id])).summaries.map(({ summary }) => summary)
    },

    async snapshot (user) {
      const ticket = cache.userTicket(user.id)
      const [{ summaries, peers }, favoriteList] = await Promise.all([loadSummaries(db, [user.id]), loadFavorites(db, user.id)])
      const roomList = summaries.map(({ summary }) => summary)
      cache.primeUser(user.id, roomList.map((room) => room.id), ticket)
      const byId = new Map([...peers.values()].map((peer) => [peer.id, peer]))
      const statuses = await statusesOf([...byId.keys()])
      const people: Person[] = [...byId.values()].map((peer) => {
        const status = statuses.get(peer.id)
        return { id: peer.id, name: peer.name, avatar: peer.avatar, status: status?.status ?? 'offline', lastSeen: status?.lastSeen ?? peer.lastSeen }
      })
      return { rooms: roomList, people, favorites: favoriteList }
    },

    favorites: (user) => loadFavorites(db, user.id),

    async toggleFavorite (actor, type, id) {
      const [existing] = await db.select({ count: count() }).from(favorites)
        .where(and(eq(favorites.userId, actor.user.id), eq(favorites.type, type), eq(favorites.targetId, id)))
      return await service.setFavorite(actor, type, id, (existing?.count ?? 0) === 0)
    },

    async setFavorite (actor, type, id, on) {
      const { user } = actor
      const where = and(eq(favorites.userId, user.id), eq(favorites.type, type), eq(favorites.targetId, id))
      let changed: boolean
      if (on) {
        if (type === 'ROOM') {
          if (!isUuid(id)) throw chatError('VALIDATION_FAILED', 'id: a room id is a uuid', [{ field: 'id', message: 'must be a uuid' }])
          await memberOf(user, id)
        } else {
          if (id === user.id) throw chatError('VALIDATION_FAILED', 'id: you cannot favorite yourself', [{ field: 'id', message: 'must not be your own id' }])
          await assertSameTenant([id], user.tenant)
        }
        await authorize(user, 'favorite.toggle', type === 'ROOM' ? id : undefined, { type, id, on })
        const [held] = await db.select({ count: count() }).from(favorites).where(eq(favorites.userId, user.id))
        if ((held?.count ?? 0) >= MAX_FAVORITES) throw chatError('CONFLICT', `at most ${MAX_FAVORITES} favorites`)
        const inserted = await db.insert(favorites).values({ userId: user.id, type, targetId: id }).onConflictDoNothing().returning({ id: favorites.targetId })
        changed = inserted.length > 0
      } else {
        await authorize(user, 'favorite.toggle', type === 'ROOM' && isUuid(id) ? id : undefined, { type, id, on })
        const deleted = await db.delete(favorites).where(where).returning({ id: favorites.targetId })
        changed = deleted.length > 0
      }
      const list = await loadFavorites(db, user.id)
      if (changed) await quietly('favorites.updated', hub.publishUser(user.id, frame('favorites.updated', { favorites: list }), actor.connection))
      return list
    },
  }

  app.decorate('chatRooms', service)

  // session.ready: rooms, people, favorites; every socket is subscribed to each of its user's rooms.
  gateway.contributeToSession(async (connection, user) => {
    const snapshot = await service.snapshot(user)
    await Promise.all(snapshot.rooms.map(async (room) => {
      if (!connection.isOpen) return
      const idle = hub.roomConnections(room.id).size === 0
      const subscribing = hub.subscribe(connection, room.id)
      // Only a node that starts listening to the room now takes the snapshot's seq as its baseline:
      // where other sockets already listen, frames in flight must still reach them.
      if (idle) roomLog.baseline(room.id, room.lastSeq)
      await subscribing
    }))
    // A socket that closed meanwhile was forgotten by the hub before these subscriptions: undo them.
    if (!connection.isOpen) await Promise.all([...connection.rooms].map((roomId) => hub.unsubscribe(connection, roomId)))
    return { rooms: snapshot.rooms, people: snapshot.people, favorites: snapshot.favorites }
  })
}, {
  name: 'chat-rooms',
  fastify: '5.x',
  dependencies: ['chat-config', 'chat-database', 'chat-broker', 'chat-hub', 'chat-gateway', 'chat-room-log', 'chat-users', 'chat-presence-store'],
})
