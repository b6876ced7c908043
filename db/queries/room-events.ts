import { and, asc, eq, gt, lte } from 'drizzle-orm'
import { unionAll } from 'drizzle-orm/pg-core'
import { messages, roomEvents } from '../schema/index.js'
import type { ChatDb } from '../client.js'
import { hydrate, messageColumns, rowsAfter, type MessageRow } from './message-reader.js'
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

/**
 * The log after `seq` is two tables: a room's messages (each `message.new` is its messages row, so a send
 * is written once) and room_events (every other durable event). Their seqs are disjoint and together
 * gapless, so the next `limit` events are the first `limit` of both, merged by seq; only the messages
 * that make the cut are hydrated. A message replays as it is now (edited, deleted, with its reactions);
 * the events after it in the log bring a client that applies them in order to the same state.
 */
export async function eventsAfter (db: ChatDb, roomId: string, seq: number, limit: number, upTo?: number): Promise<RoomEvent[]> {
  const condition = upTo === undefined
    ? and(eq(roomEvents.roomId, roomId), gt(roomEvents.seq, seq))
    : and(eq(roomEvents.roomId, roomId), gt(roomEvents.seq, seq), lte(roomEvents.seq, upTo))
  const [logged, stored] = await Promise.all([
    db.select({ seq: roomEvents.seq, event: roomEvents.event, data: roomEvents.data })
      .from(roomEvents).where(condition).orderBy(asc(roomEvents.seq)).limit(limit),
    rowsAfter(db, roomId, seq, limit, upTo === undefined ? undefined : upTo + 1),
  ])
  const cut = cutOf(logged, stored, limit)
  return eventsOf(roomId, cut, await hydratedBySeq(db, cut))
}

/** One room's read of `eventsAfterMany`: the events after `seq`, up to `upTo`, at most `limit`. */
export interface LogRead {
  roomId: string
  seq: number
  upTo: number
  limit: number
}

/**
 * `eventsAfter` for several rooms at once, in three statements plus one hydration whatever the number of
 * rooms (each room's reads are a limited select of their own, joined by UNION ALL): a `sync` of many
 * rooms, which a whole reconnect storm sends, costs a few statements instead of five per room. Answers
 * each read in the order given, exactly as `eventsAfter` would.
 */
export async function eventsAfterMany (db: ChatDb, reads: readonly LogRead[]): Promise<RoomEvent[][]> {
  if (reads.length === 0) return []
  if (reads.length === 1) {
    const [only] = reads as [LogRead]
    return [await eventsAfter(db, only.roomId, only.seq, only.limit, only.upTo)]
  }
  const loggedOf = (read: LogRead) => db.select({ roomId: roomEvents.roomId, seq: roomEvents.seq, event: roomEvents.event, data: roomEvents.data })
    .from(roomEvents).where(and(eq(roomEvents.roomId, read.roomId), gt(roomEvents.seq, read.seq), lte(roomEvents.seq, read.upTo)))
    .orderBy(asc(roomEvents.seq)).limit(read.limit)
  const storedOf = (read: LogRead) => db.select(messageColumns).from(messages)
    .where(and(eq(messages.roomId, read.roomId), gt(messages.seq, read.seq), lte(messages.seq, read.upTo)))
    .orderBy(asc(messages.seq)).limit(read.limit)
  const [first, second, ...rest] = reads as [LogRead, LogRead, ...LogRead[]]
  const [logged, stored] = await Promise.all([
    unionAll(loggedOf(first), loggedOf(second), ...rest.map(loggedOf)),
    unionAll(storedOf(first), storedOf(second), ...rest.map(storedOf)),
  ])
  const cuts = reads.map((read) => cutOf(
    logged.filter((row) => row.roomId === read.roomId).sort((a, b) => a.seq - b.seq),
    stored.filter((row) => row.roomId === read.roomId).sort((a, b) => a.seq - b.seq),
    read.limit,
  ))
  // One hydration for the messages of every room (senders, replies, reactions and threads in four statements).
  const hydrated = await hydratedBySeq(db, cuts.flat())
  return reads.map((read, index) => eventsOf(read.roomId, cuts[index] as LoggedOrStored[], hydrated))
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

/** The messages among `entries`, hydrated, by id (ids are unique across rooms; seqs are not). */
async function hydratedBySeq (db: ChatDb, entries: readonly LoggedOrStored[]): Promise<Map<string, Message>> {
  const rows = entries.filter((entry): entry is MessageRow => 'senderId' in entry)
  return new Map((await hydrate(db, rows)).map((message) => [message.id, message]))
}

function eventsOf (roomId: string, cut: readonly LoggedOrStored[], hydrated: Map<string, Message>): RoomEvent[] {
  return cut.map((entry) => {
    if (!('senderId' in entry)) return { roomId, seq: entry.seq, event: entry.event, data: entry.data }
    return { roomId, seq: entry.seq, event: 'message.new', data: { roomId, seq: entry.seq, message: hydrated.get(entry.id) } }
  })
}
