import type { FastifyInstance } from 'fastify'
import { eq, inArray, sql } from 'drizzle-orm'
import { roomMembers, rooms, type Role } from '../../db/schema/index.js'
import { executePrepared, rows, type ChatDb } from '../../db/client.js'
import { arrayOf, inList } from '../../db/queries/sql-parts.js'
import { isUuid } from '../../schemas/room.js'
import { MicroBatch } from '../../lib/micro-batch.js'
import type { Connection } from '../realtime/connection.js'
import { userKeyOf, userOfKey } from '../../lib/user-key.js'
import type { CachedRoom } from './types.js'
import { MembershipCache, type RoomEntry } from './membership-cache.js'
import { InvalidationRetry, type Invalidation } from './invalidation-retry.js'

/** The broker channel every node listens to for membership cache invalidations. */
export const INVALIDATE_CHANNEL = 'rooms:invalidate'
/** Hub user controls: subscribe / unsubscribe every socket of a user, on every node. */
export const ROOM_SUBSCRIBE = 'room.subscribe'
export const ROOM_UNSUBSCRIBE = 'room.unsubscribe'
/** While the broker is down: how often local sockets lose the rooms their users were removed from. */
const DROP_WHILE_DOWN_MS = 2000

export type { Invalidation }

export interface MembershipSync {
  /** This node's membership cache, filled from the database on a miss. */
  readonly cache: MembershipCache
  /** Drops the entries on this node at once, then tells the other nodes (call it before the ack). */
  invalidate (change: Invalidation): Promise<void>
  /** Re-aligns this node's socket subscriptions with the database (runs after a broker reconnect). */
  reconcileSubscriptions (): Promise<void>
}

interface RoomEntryRow {
  id: string
  tenant: string
  type: CachedRoom['type']
  is_private: boolean
  max_members: number | null
  frozen: boolean
  slow_mode_sec: number
  user_id: string | null
  role: Role | null
  muted_until_ms: number | null
}

/**
 * The entries of the rooms missed in one turn (each room's settings and every member's role), in one
 * statement. Misses come in bursts: the presence pushes of a wave of sessions ask for the member count of
 * every room their users are in, most of them new to this node; one statement per room made a fifth of a
 * first wave's statements. A room id that is not a uuid is no room (never a failed statement that would
 * fail the other rooms of the batch).
 */
function roomEntriesBatch (db: ChatDb, timeoutMs: number): MicroBatch<string, RoomEntry | null> {
  return new MicroBatch(async (roomIds) => {
    const entries = new Map<string, RoomEntry>()
    const wanted = [...new Set(roomIds.filter(isUuid))]
    const found = wanted.length === 0 ? [] : rows<RoomEntryRow>(await executePrepared(db, 'room entries', sql`
      select r.id, r.tenant, r.type, r.is_private, r.max_members, r.frozen, r.slow_mode_sec,
        m.user_id, m.role, floor(extract(epoch from m.muted_until) * 1000)::float8 as muted_until_ms
      from chat.rooms r left join chat.room_members m on m.room_id = r.id
      where r.id = any(${arrayOf(wanted, 'uuid')})`))
    for (const row of found) {
      let entry = entries.get(row.id)
      if (entry === undefined) {
        const room: CachedRoom = {
          id: row.id, tenant: row.tenant, type: row.type, isPrivate: row.is_private, maxMembers: row.max_members,
          frozen: row.frozen, slowModeSec: row.slow_mode_sec,
        }
        entry = { room, members: new Map(), muted: new Map() }
        entries.set(row.id, entry)
      }
      if (row.user_id === null || row.role === null) continue
      entry.members.set(row.user_id, row.role)
      if (row.muted_until_ms !== null) entry.muted.set(row.user_id, row.muted_until_ms)
    }
    // The uuid's spelling the caller used may differ in case from the database's.
    return roomIds.map((roomId) => entries.get(roomId.toLowerCase()) ?? null)
  }, { maxBatch: 200, inFlight: { max: 1, timeoutMs, what: 'reading rooms\' members' } })
}

/**
 * The rooms of users (by key): each sub's memberships in rooms of its key's tenant, in one statement.
 * Misses come in bursts: when many sessions start at once, the presence pushes of the users who came
 * online ask for their rooms (to push to them) while the sessions' own reads, which would have filled
 * the cache, are still under way.
 */
function userRoomsBatch (db: ChatDb, timeoutMs: number): MicroBatch<string, string[]> {
  return new MicroBatch(async (userKeys) => {
    const wanted = new Map(userKeys.map((userKey) => [userKey, [] as string[]]))
    const subs = [...new Set(userKeys.map((userKey) => userOfKey(userKey).id))]
    const found = rows<{ user_id: string, tenant: string, room_id: string }>(await db.execute(sql`
      select m.user_id, r.tenant, m.room_id from chat.room_members m join chat.rooms r on r.id = m.room_id
      where m.user_id in (${inList(subs)})`))
    // The same sub in another tenant is another user: only the rows of the keys asked for count.
    for (const row of found) wanted.get(userKeyOf({ id: row.user_id, tenant: row.tenant }))?.push(row.room_id)
    return userKeys.map((userKey) => wanted.get(userKey) as string[])
  }, { maxBatch: 500, inFlight: { max: 1, timeoutMs, what: 'reading users\' rooms' } })
}

/**
 * The membership cache kept coherent across nodes, and socket subscriptions kept in line with membership.
 *
 * Cache coherence, the one design: every node subscribes the broker channel `rooms:invalidate` at start.
 * A node that commits a membership, role or room-settings change drops the affected entries from its own
 * cache at once (before it acks) and publishes the room and user ids; every other node drops the same
 * entries when the message arrives, and refills them from the database on the next miss. Invalidation
 * rather than shipping deltas keeps nodes correct whatever order two concurrent changes arrive in; a load
 * that an invalidation overtakes is not stored. User controls (hub.controlUser) are not used for this
 * because a user's entry can be cached on nodes where the user has no socket (REST, other members'
 * sends). Another node may act on the old state for the broker's latency (about a millisecond); every
 * write re-checks membership and roles in its own statement or transaction under the room's row lock
 * (sends, edits, deletes, reactions, read marks: protocol 11.2), so only reads and typing see that
 * window. While the broker's connection is lost the cache is distrusted (every lookup reads the
 * database, nothing is kept); after the reconnect (messages may have been lost) it starts empty. An
 * invalidation whose publish failed is published again until it goes through (invalidation-retry.ts).
 */
export async function startMembershipSync (app: FastifyInstance): Promise<MembershipSync> {
  const { chatDb: db, chatHub: hub, chatBroker: broker } = app
  const userRooms = userRoomsBatch(db, app.chatConfig.databaseTimeoutMs)
  const roomEntries = roomEntriesBatch(db, app.chatConfig.databaseTimeoutMs)
  const cache = new MembershipCache({
    loadRoom: (roomId) => roomEntries.load(roomId),
    loadUserRooms: (userKey) => userRooms.load(userKey),
  })

  function applyInvalidation (change: Invalidation): void {
    if (change.all === true) cache.clear()
    cache.invalidate(change)
    for (const roomId of change.deleted ?? []) {
      for (const connection of [...hub.roomConnections(roomId)]) {
        hub.unsubscribe(connection, roomId).catch((error: unknown) => app.log.warn({ err: error, roomId }, 'rooms: unsubscribe failed'))
      }
    }
  }

  async function publishInvalidation (change: Invalidation): Promise<void> {
    await broker.publish(INVALIDATE_CHANNEL, `${hub.nodeId} ${JSON.stringify(change)}`)
  }
  const retry = new InvalidationRetry(publishInvalidation, (error) => {
    app.log.debug({ err: error }, 'rooms: republishing a cache invalidation failed; trying again')
  })

  async function invalidate (change: Invalidation): Promise<void> {
    applyInvalidation(change)
    // One node alone needs no message: the in-process broker has no other subscriber.
    if (broker.kind === 'memory') return
    try {
      await publishInvalidation(change)
    } catch (error) {
      // Not only logged: published again until it goes through (other nodes' writes are checked by
      // the database meanwhile, and a node that lost its broker reads membership from the database).
      app.log.warn({ err: error }, 'rooms: publishing a cache invalidation failed; it is retried until the broker takes it')
      retry.add(change)
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
    await reconcile(true)
  }

  /** `subscribe` false: only drops what is no longer a membership (a subscribe needs the broker). */
  async function reconcile (subscribe: boolean): Promise<void> {
    const byUser = new Map<string, Connection[]>()
    for (const connection of hub.connections()) {
      const userKey = connection.userKey
      if (userKey === null) continue
      const list = byUser.get(userKey)
      if (list === undefined) byUser.set(userKey, [connection])
      else list.push(connection)
    }
    const userKeys = [...byUser.keys()]
    for (let start = 0; start < userKeys.length; start += 500) {
      const chunk = userKeys.slice(start, start + 500)
      const found = await db.select({ userId: roomMembers.userId, roomId: roomMembers.roomId, tenant: rooms.tenant }).from(roomMembers)
        .innerJoin(rooms, eq(rooms.id, roomMembers.roomId))
        .where(inArray(roomMembers.userId, [...new Set(chunk.map((userKey) => userOfKey(userKey).id))]))
      // By user key: a socket is subscribed only to the rooms of its own tenant.
      const wanted = new Map<string, Set<string>>(chunk.map((userKey) => [userKey, new Set()]))
      for (const row of found) wanted.get(userKeyOf({ id: row.userId, tenant: row.tenant }))?.add(row.roomId)
      const changes: Array<Promise<void>> = []
      for (const [userKey, roomIds] of wanted) {
        for (const connection of byUser.get(userKey) ?? []) {
          if (!connection.isOpen) continue
          if (subscribe) for (const roomId of roomIds) if (!connection.rooms.has(roomId)) changes.push(hub.subscribe(connection, roomId))
          for (const roomId of [...connection.rooms]) {
            if (roomIds.has(roomId)) continue
            // Asked again through the cache: a join that committed after the query above is not undone.
            changes.push((async () => {
              const entry = await cache.room(roomId)
              const user = userOfKey(userKey)
              if (entry === null || !entry.members.has(user.id) || entry.room.tenant !== user.tenant) await hub.unsubscribe(connection, roomId)
            })())
          }
        }
      }
      await Promise.all(changes)
    }
  }

  await broker.subscribe(INVALIDATE_CHANNEL, onInvalidation)
  // Fail closed: while the broker is away this node would not hear other nodes' invalidations, so its
  // cache is not trusted (every lookup reads the database) until it is resubscribed and starts afresh.
  // The controls that unsubscribe a removed member's sockets are lost too: until the broker is back, this
  // node drops its sockets' subscriptions that the database no longer backs every DROP_WHILE_DOWN_MS.
  let dropping: NodeJS.Timeout | null = null
  const stopDropping = (): void => {
    if (dropping !== null) clearInterval(dropping)
    dropping = null
  }
  broker.onDisconnect(() => {
    cache.distrust()
    app.log.warn('rooms: broker connection lost; membership is read from the database until it is back')
    stopDropping()
    dropping = setInterval(() => {
      reconcile(false).catch((error: unknown) => app.log.warn({ err: error }, 'rooms: dropping lost subscriptions while the broker is down failed'))
    }, DROP_WHILE_DOWN_MS)
    dropping.unref()
  })
  broker.onReconnect(() => {
    stopDropping()
    // Invalidations and controls may have been lost while the broker was away.
    cache.trust()
    retry.flushNow()
    reconcileSubscriptions().catch((error: unknown) => app.log.warn({ err: error }, 'rooms: reconciling subscriptions after a broker reconnect failed'))
  })
  app.addHook('onClose', async () => {
    stopDropping()
    retry.close()
    await broker.unsubscribe(INVALIDATE_CHANNEL, onInvalidation).catch(() => {})
  })

  // Membership drives subscriptions: a control reaches every node with sockets of the user.
  hub.onUserControl((userKey, control) => {
    const roomId = control.roomId
    if (typeof roomId !== 'string') return
    if (control.type === ROOM_SUBSCRIBE) {
      // Addressed by user key: only the sockets of the room's tenant hear it.
      const sockets = [...hub.connectionsOf(userKey)]
      if (sockets.length === 0) return
      // The sockets join the room's set synchronously, before any frame of the room can be delivered; a
      // node that starts listening to the room now delivers from the seq before the change on.
      const knownSeq = typeof control.seq === 'number' ? control.seq : undefined
      const subscribing = Promise.all(sockets.map((connection) => hub.subscribe(connection, roomId, knownSeq)))
      subscribing.catch((error: unknown) => app.log.warn({ err: error, roomId }, 'rooms: subscribe failed'))
    } else if (control.type === ROOM_UNSUBSCRIBE) {
      hub.unsubscribeUser(userKey, roomId).catch((error: unknown) => app.log.warn({ err: error, roomId }, 'rooms: unsubscribe failed'))
    }
  })

  return { cache, invalidate, reconcileSubscriptions }
}
