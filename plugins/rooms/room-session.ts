import type { FastifyInstance } from 'fastify'
import type { Person } from '../../schemas/room.js'
import type { RoomsApiMethods } from './types.js'
import type { RoomsContext } from './context.js'
import type { Favorite } from '../../schemas/room.js'
import type { ChatDb } from '../../db/client.js'
import { loadSessionRows, type UserSummary } from './room-summaries.js'
import { ENVELOPE_RESERVE, ReplyBudget, fitList, utf8Bytes } from '../../lib/reply-budget.js'
import { MicroBatch } from '../../lib/micro-batch.js'
import { userKeyOf, type TenantUser } from '../../lib/user-key.js'

/** session.ready's fields besides rooms, people and favorites (user, connectionId, serverTime, others' parts). */
const SESSION_RESERVE = 8192

/** What session.ready reads of one user: their rooms as they see them, and their favorites. */
interface SessionRows {
  summaries: UserSummary[]
  favorites: Favorite[]
}

/**
 * The session reads of every user whose session starts in the same turn, one statement per tenant (the
 * rooms' summaries and the favorites): a reconnect storm's sessions cost a few statements per turn, not two
 * each (every statement costs a round trip, a query build here, and a parse and plan in PostgreSQL).
 * One batch runs at a time: the sessions that arrive while it runs go in the next one, so that a burst's
 * batches grow with the burst (sessions arrive a few per turn) and PostgreSQL plans far fewer statements.
 */
function sessionRowsBatch (db: ChatDb, timeoutMs: number): MicroBatch<TenantUser, SessionRows> {
  return new MicroBatch(async (users) => {
    const tenants = new Map<string, string[]>()
    for (const user of users) {
      const ids = tenants.get(user.tenant)
      if (ids === undefined) tenants.set(user.tenant, [user.id])
      else ids.push(user.id)
    }
    const byKey = new Map<string, SessionRows>()
    await Promise.all([...tenants].map(async ([tenant, ids]) => {
      const { summaries, favorites } = await loadSessionRows(db, tenant, ids)
      for (const id of ids) byKey.set(userKeyOf({ id, tenant }), { summaries: [], favorites: favorites.get(id) ?? [] })
      // Rows come most recently active first; each user's list keeps that order.
      for (const row of summaries) byKey.get(userKeyOf({ id: row.userId, tenant }))?.summaries.push(row)
    }))
    return users.map((user) => byKey.get(userKeyOf(user)) as SessionRows)
  }, { inFlight: { max: 1, timeoutMs, what: 'the session reads' } })
}

/**
 * session.ready's rooms, people (the other user of each DIRECT room, with presence) and favorites, in a
 * fixed number of queries; the user's room list primes this node's membership cache on the way.
 */
export function createSnapshot (ctx: RoomsContext): RoomsApiMethods['snapshot'] {
  const { app, sync } = ctx
  const { chatDb: db, chatPresenceStore: presence } = app
  const sessionRows = sessionRowsBatch(db, app.chatConfig.databaseTimeoutMs)
  return async function snapshot (user) {
    // A user is the pair (tenant, sub): the session shows, and subscribes, only the rooms of the token's
    // tenant (protocol 11.1), and the cache keeps them under the user's key.
    const userKey = userKeyOf(user)
    const ticket = sync.cache.userTicket(userKey)
    const { summaries, favorites: favoriteList } = await sessionRows.load(user)
    sync.cache.primeUser(userKey, summaries.map(({ summary }) => summary.id), ticket)
    const roomList = summaries.map(({ summary }) => summary)
    const byId = new Map(summaries.flatMap(({ peer }) => peer === undefined ? [] : [[peer.id, peer] as const]))
    // The peers' last seen came with the summaries: no second read for the offline ones.
    const statuses = await presence.statusOf(user.tenant, [...byId.keys()], new Map([...byId.values()].map((peer) => [peer.id, peer.lastSeen])))
    const people: Person[] = [...byId.values()].map((peer) => {
      const status = statuses.get(peer.id)
      return { id: peer.id, name: peer.name, avatar: peer.avatar, status: status?.status ?? 'offline', lastSeen: status?.lastSeen ?? peer.lastSeen }
    })
    return { rooms: roomList, people, favorites: favoriteList }
  }
}

/** session.ready: rooms, people, favorites; every socket is subscribed to each of its user's rooms. */
export function contributeRoomsToSession (app: FastifyInstance, snapshot: RoomsApiMethods['snapshot']): void {
  const { chatSessions: sessions, chatHub: hub } = app
  sessions.contribute(async (connection, user) => {
    const { rooms, people, favorites } = await snapshot(user)
    await Promise.all(rooms.map(async (room) => {
      if (!connection.isOpen) return
      // A node that starts listening to the room now takes the snapshot's seq as its baseline (where
      // other sockets already listen, frames in flight must still reach them), and catches up on what
      // was committed before its subscription took effect.
      await hub.subscribe(connection, room.id, room.lastSeq)
      // The socket joined the room before that: every frame this node delivered since reached it (held
      // until session.ready). One delivered between the snapshot's read and the join did not, so
      // session.ready says the room is at least that far, and the client syncs it instead of waiting
      // for a later push.
      const delivered = hub.deliveredUpTo(room.id)
      if (delivered !== null && delivered > room.lastSeq) room.lastSeq = delivered
    }))
    // A socket that closed meanwhile was forgotten by the hub before these subscriptions: undo them.
    if (!connection.isOpen) await Promise.all([...connection.rooms].map((roomId) => hub.unsubscribe(connection, roomId)))
    // The frame stays within maxReplyBytes: the most recently active rooms that fit, and `roomsHasMore`
    // when some did not (the client pages the rest with room.list). Every room is subscribed all the same.
    const budget = new ReplyBudget(app.chatConfig.maxReplyBytes, ENVELOPE_RESERVE + SESSION_RESERVE + utf8Bytes(JSON.stringify({ people, favorites })))
    const fitted = fitList(rooms, budget)
    // Over every room, those that did not fit too: the badge a client shows before it pages the rest.
    const unreadTotal = rooms.reduce((sum, room) => sum + room.unreadCount, 0)
    return fitted.length === rooms.length ? { rooms, unreadTotal, people, favorites } : { rooms: fitted, roomsHasMore: true, unreadTotal, people, favorites }
  })
}
