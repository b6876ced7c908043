import { sql } from 'drizzle-orm'
import { rows, type ChatDb } from '../client.js'
import type { Attachment } from '../schema/index.js'
import { extrasOf, messagesOf, type ExtrasRow, type MessageRow } from './message-reader.js'
import { iso } from './sql-parts.js'
import type { Message } from '../../schemas/message.js'

/** A durable room event as pushed and as replayed by sync: `data` carries `roomId` and `seq`. */
export interface RoomEvent {
  roomId: string
  seq: number
  event: string
  data: Record<string, unknown>
  /** `data` already serialized (JSON.stringify(data)): the push frame and the stored row reuse it. */
  dataJson?: string
  /** The push frame, kept once built (a batch's broadcast and each local delivery share it). */
  frame?: string
}

export interface NewRoomEvent {
  event: string
  /** The event's data without roomId and seq, which the log adds. */
  data: Record<string, unknown>
}

export function frameOf (event: RoomEvent): string {
  if (event.frame !== undefined) return event.frame
  event.frame = event.dataJson === undefined
    ? JSON.stringify({ event: event.event, data: event.data })
    : `{"event":${JSON.stringify(event.event)},"data":${event.dataJson}}`
  return event.frame
}

/** Above every seq (an integer column): the read of a log without an upper bound. */
const NO_UPPER_BOUND = 2 ** 31 - 1

/**
 * The log after `seq` is two tables: a room's messages (each `message.new` is its messages row, so a send
 * is written once) and room_events (every other durable event). Their seqs are disjoint and together
 * gapless, so the next `limit` events are the first `limit` of both, merged by seq; only the messages
 * that make the cut are hydrated. A message replays as it is now (edited, deleted, with its reactions);
 * the events after it in the log bring a client that applies them in order to the same state.
 */
export async function eventsAfter (db: ChatDb, roomId: string, seq: number, limit: number, upTo?: number): Promise<RoomEvent[]> {
  const [events] = await eventsAfterMany(db, [{ roomId, seq, limit, upTo: upTo ?? NO_UPPER_BOUND }])
  return events ?? []
}

/** One room's read of `eventsAfterMany`: the events after `seq`, up to `upTo`, at most `limit`. */
export interface LogRead {
  roomId: string
  seq: number
  upTo: number
  limit: number
}

/**
 * `eventsAfter` for several rooms at once, in one statement whatever the number of rooms: a `sync` of
 * many rooms, which a whole reconnect storm sends, costs one statement instead of five per room. Answers
 * each read in the order given.
 *
 * Written as SQL rather than built with drizzle's select builders: a sync's reads were a quarter of a
 * reconnect's CPU in drizzle's query building (a select, its conditions and a UNION ALL part per room
 * and table). Each room's read is a LATERAL select of its own (its own ORDER BY seq LIMIT, on the
 * (room_id, seq) index); the text depends only on the number of rooms, so postgres.js prepares it once
 * per connection and count. The events, the messages and what surrounds the messages (`extrasOf`: the
 * hydration) each come as one JSON array of one row (timestamps as ISO text), parsed here once: both
 * drivers return the same, and the three cost one round trip. The messages read past a room's cut (at
 * most `limit` of a room, where events took their place) are hydrated for nothing; a statement of its
 * own for the hydration cost a round trip on every sync.
 */
export async function eventsAfterMany (db: ChatDb, reads: readonly LogRead[]): Promise<RoomEvent[][]> {
  if (reads.length === 0) return []
  const bounds = sql.join(reads.map((read) => sql`(${read.roomId}::uuid, ${read.seq}::int, ${read.upTo}::int, ${read.limit}::int)`), sql`, `)
  // The reads are bound once, for all three; the messages are read once (a CTE named twice is
  // materialized), for themselves and for their hydration. jsonb columns are embedded as JSON, not as text.
  const result = await db.execute(sql`with r(room_id, after, up_to, lim) as (values ${bounds}),
  m as (select m.* from r
    cross join lateral (select * from chat.messages
      where room_id = r.room_id and seq > r.after and seq <= r.up_to order by seq limit r.lim) m)
  select
    (select coalesce(json_agg(e), '[]')::text from (
      select e.room_id::text as "roomId", e.seq, e.event, e.data
      from r
      cross join lateral (select room_id, seq, event, data from chat.room_events
        where room_id = r.room_id and seq > r.after and seq <= r.up_to order by seq limit r.lim) e) e) as logged,
    (select coalesce(json_agg(m), '[]')::text from (
      select m.id::text as id, m.room_id::text as "roomId", m.seq, m.sender_id as "senderId", m.type,
        m.content, m.reply_to_id::text as "replyToId", m.thread_root_id::text as "threadRootId",
        m.attachments, m.client_msg_id as "clientMsgId", m.mentions,
        ${sql.raw(iso('m.edited_at'))} as "editedAt", ${sql.raw(iso('m.deleted_at'))} as "deletedAt", ${sql.raw(iso('m.created_at'))} as "createdAt"
      from m) m) as stored,
    (select coalesce(json_agg(x), '[]')::text from (
      ${extrasOf(sql`(select id, room_id, sender_id, reply_to_id, thread_root_id is null from m)`)}) x) as extras`)
  const [all] = rows<{ logged: string, stored: string, extras: string }>(result)
  const loggedByRoom = byRoom(JSON.parse(all?.logged ?? '[]') as Array<Logged & { roomId: string }>)
  const storedByRoom = byRoom((JSON.parse(all?.stored ?? '[]') as StoredJson[]).map(messageRowOf))
  const cuts = reads.map((read) => cutOf(loggedByRoom.get(read.roomId) ?? [], storedByRoom.get(read.roomId) ?? [], read.limit))
  const hydrated = hydratedById(cuts.flat(), JSON.parse(all?.extras ?? '[]') as ExtrasRow[])
  return reads.map((read, index) => eventsOf(read.roomId, cuts[index] as LoggedOrStored[], hydrated))
}

/** A messages row as the statement's JSON gives it. */
interface StoredJson {
  id: string
  roomId: string
  seq: number
  senderId: string
  type: MessageRow['type']
  content: string
  replyToId: string | null
  threadRootId: string | null
  attachments: Attachment[]
  clientMsgId: string | null
  mentions: string[]
  editedAt: string | null
  deletedAt: string | null
  createdAt: string
}

function messageRowOf (row: StoredJson): MessageRow {
  return {
    ...row,
    editedAt: row.editedAt === null ? null : new Date(row.editedAt),
    deletedAt: row.deletedAt === null ? null : new Date(row.deletedAt),
    createdAt: new Date(row.createdAt),
  }
}

/** Rows by room, each room's in seq order (LATERAL keeps it, but a result's order is not a promise). */
function byRoom<T extends { roomId: string, seq: number }> (list: T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const row of list) {
    const group = groups.get(row.roomId)
    if (group === undefined) groups.set(row.roomId, [row])
    else group.push(row)
  }
  for (const group of groups.values()) group.sort((a, b) => a.seq - b.seq)
  return groups
}

type Logged = { seq: number, event: string, data: Record<string, unknown> }
type LoggedOrStored = Logged | MessageRow

/** The first `limit` entries of the two halves of a room's log, merged by seq. */
function cutOf (logged: readonly Logged[], stored: readonly MessageRow[], limit: number): LoggedOrStored[] {
  const cut: LoggedOrStored[] = []
  let l = 0
  let m = 0
  while (cut.length < limit && (l < logged.length || m < stored.length)) {
    const nextLogged = logged[l]
    const nextStored = stored[m]
    if (nextStored === undefined || (nextLogged !== undefined && nextLogged.seq < nextStored.seq)) {
      cut.push(nextLogged as Logged)
      l += 1
    } else {
      cut.push(nextStored)
      m += 1
    }
  }
  return cut
}

/** The messages among `entries`, made Messages with their extras, by id (ids are unique across rooms; seqs are not). */
function hydratedById (entries: readonly LoggedOrStored[], extras: readonly ExtrasRow[]): Map<string, Message> {
  const rows = entries.filter((entry): entry is MessageRow => 'senderId' in entry)
  return new Map(messagesOf(rows, extras).map((message) => [message.id, message]))
}

function eventsOf (roomId: string, cut: readonly LoggedOrStored[], hydrated: Map<string, Message>): RoomEvent[] {
  return cut.map((entry) => {
    if (!('senderId' in entry)) return { roomId, seq: entry.seq, event: entry.event, data: entry.data }
    return { roomId, seq: entry.seq, event: 'message.new', data: { roomId, seq: entry.seq, message: hydrated.get(entry.id) } }
  })
}
