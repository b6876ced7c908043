import { and, asc, eq, gt, lte } from 'drizzle-orm'
import { roomEvents } from '../schema/index.js'
import type { ChatDb } from '../client.js'
import { hydrate, rowsAfter, type MessageRow } from './message-reader.js'

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
  const cut: Array<{ seq: number, event: string, data: Record<string, unknown> } | MessageRow> = []
  let l = 0
  let m = 0
  while (cut.length < limit && (l < logged.length || m < stored.length)) {
    const nextLogged = logged[l]
    const nextStored = stored[m]
    if (nextStored === undefined || (nextLogged !== undefined && nextLogged.seq < nextStored.seq)) {
      cut.push(nextLogged as { seq: number, event: string, data: Record<string, unknown> })
      l += 1
    } else {
      cut.push(nextStored)
      m += 1
    }
  }
  const messagesInCut = cut.filter((entry): entry is MessageRow => 'senderId' in entry)
  const hydrated = new Map((await hydrate(db, messagesInCut)).map((message) => [message.seq, message]))
  return cut.map((entry) => {
    if (!('senderId' in entry)) return { roomId, seq: entry.seq, event: entry.event, data: entry.data }
    return { roomId, seq: entry.seq, event: 'message.new', data: { roomId, seq: entry.seq, message: hydrated.get(entry.seq) } }
  })
}
