import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { and, asc, eq, gt, lte, sql } from 'drizzle-orm'
import { roomEvents, rooms } from '../../db/schema/index.js'
import type { ChatDb } from '../../db/client.js'
import { chatError } from '../core/errors.js'
import type { Connection } from '../realtime/connection.js'
import { RoomSequencer } from '../../lib/room-sequencer.js'
import { jsonLiteral } from '../../db/json-literal.js'
import { withDeadline } from '../../lib/deadline.js'
import { hydrate, rowsAfter, type MessageRow } from '../../db/queries/message-reader.js'

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

export interface RoomLog {
  /**
   * Takes the next seqs of a room and writes the events, inside the caller's transaction: the row lock
   * of the UPDATE serializes writers of one room, so seqs are gapless and commit in order.
   */
  append (tx: ChatDb, roomId: string, events: NewRoomEvent[]): Promise<RoomEvent[]>
  /** Reserves `count` seqs of a room in the caller's transaction; returns the first one. */
  reserve (tx: ChatDb, roomId: string, count: number): Promise<number>
  /** Writes events whose seqs were reserved. */
  write (tx: ChatDb, events: RoomEvent[]): Promise<void>
  /**
   * Pushes committed events to every socket of the room on every node; one serialization per event.
   * Never rejects for the broker: a failed publish is logged, and other nodes recover from the database.
   */
  publish (events: RoomEvent[], except?: Connection): Promise<void>
  /**
   * publish's two halves, apart for a group-commit batch: `broadcast` hands committed events to the
   * broker in one command (never rejects, like publish), and `deliverLocal` writes one of them to this
   * node's sockets, without the sender's.
   */
  broadcast (events: RoomEvent[]): Promise<void>
  deliverLocal (event: RoomEvent, except?: Connection): void
  /** Events after `seq`, ascending, at most `limit`. */
  eventsAfter (roomId: string, seq: number, limit: number): Promise<RoomEvent[]>
  /** Tells the sequencer which seq a node has delivered up to when it starts listening to a room. */
  baseline (roomId: string, lastSeq: number): void
}

declare module 'fastify' {
  interface FastifyInstance {
    chatRoomLog: RoomLog
  }
}

export function frameOf (event: RoomEvent): string {
  if (event.frame !== undefined) return event.frame
  event.frame = event.dataJson === undefined
    ? JSON.stringify({ event: event.event, data: event.data })
    : `{"event":${JSON.stringify(event.event)},"data":${event.dataJson}}`
  return event.frame
}

/** The rows of room_events as one JSON array, reusing each event's serialized data when it has it. */
function eventRowsJson (events: RoomEvent[]): string {
  let json = '['
  for (let index = 0; index < events.length; index += 1) {
    const event = events[index] as RoomEvent
    if (index > 0) json += ','
    json += `{"roomId":${JSON.stringify(event.roomId)},"seq":${event.seq},"event":${JSON.stringify(event.event)},"data":${event.dataJson ?? JSON.stringify(event.data)}}`
  }
  return json + ']'
}

export const roomLogPlugin = fp(async function roomLogPlugin (app: FastifyInstance) {
  const db = app.chatDb
  const hub = app.chatHub

  /**
   * The log after `seq` is two tables: a room's messages (each `message.new` is its messages row, so a send
   * is written once) and room_events (every other durable event). Their seqs are disjoint and together
   * gapless, so the next `limit` events are the first `limit` of both, merged by seq; only the messages
   * that make the cut are hydrated. A message replays as it is now (edited, deleted, with its reactions);
   * the events after it in the log bring a client that applies them in order to the same state.
   */
  async function eventsAfter (roomId: string, seq: number, limit: number, upTo?: number): Promise<RoomEvent[]> {
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

  const sequencer = new RoomSequencer({
    deliver: (roomId, frame, except) => hub.deliverRoomLocal(roomId, frame, except),
    // Bounded: a fill that never settles would leave the room's gap open for good (the sequencer retries).
    fetch: async (roomId, after, upTo) => (await withDeadline(app.chatConfig.databaseTimeoutMs, 'a gap fill', () => eventsAfter(roomId, after, 1000, upTo)))
      .map((event) => ({ seq: event.seq, frame: frameOf(event) })),
    log: app.log,
  })
  hub.setRoomSink((roomId, seq, frame, except) => sequencer.accept(roomId, seq, frame, except))
  hub.onRoomIdle((roomId) => sequencer.forget(roomId))
  // After a broker outage every room this node listens to may have missed pushes: read them back.
  app.chatBroker.onReconnect(() => sequencer.catchUpAll())
  app.addHook('onClose', async () => sequencer.close())

  async function reserve (tx: ChatDb, roomId: string, count: number): Promise<number> {
    const [row] = await tx.update(rooms)
      .set({ lastSeq: sql`${rooms.lastSeq} + ${count}`, updatedAt: new Date() })
      .where(eq(rooms.id, roomId))
      .returning({ lastSeq: rooms.lastSeq })
    if (row === undefined) throw chatError('NOT_FOUND', 'room not found')
    return row.lastSeq - count + 1
  }

  async function write (tx: ChatDb, events: RoomEvent[]): Promise<void> {
    if (events.length === 0) return
    // One statement for any number of events: the rows travel as one JSON literal instead of four bound
    // parameters per row (see json-literal.ts).
    await tx.execute(sql`insert into ${roomEvents} (room_id, seq, event, data)
      select "roomId", seq, event, data from json_to_recordset(${jsonLiteral(eventRowsJson(events))}) as e("roomId" uuid, seq int, event text, data jsonb)`)
  }

  // The events are committed before they are published, so a broker that fails now (Redis down) must
  // not fail the write's ack: this node's sockets were served before the broker was asked, and other
  // nodes read the events back from the database (gap fill on their next frame, catch-up after their
  // broker reconnects); clients resume with sync. One warning per outage second, not one per event.
  let publishFailures = 0
  let lastWarning = 0
  function publishFailed (error: unknown): void {
    publishFailures += 1
    const now = Date.now()
    if (now - lastWarning < 1000) return
    lastWarning = now
    app.log.warn({ err: error, failures: publishFailures }, 'room log: publishing committed events to the broker failed; other nodes will read them from the database')
    publishFailures = 0
  }

  async function broadcast (events: RoomEvent[]): Promise<void> {
    if (events.length === 0) return
    await hub.publishRoomFrames(events.map((event) => ({ roomId: event.roomId, seq: event.seq, frame: frameOf(event) })))
      .catch(publishFailed)
  }

  function deliverLocal (event: RoomEvent, except?: Connection): void {
    hub.deliverRoomFrame(event.roomId, event.seq, frameOf(event), except ?? null)
  }

  const log: RoomLog = {
    reserve,
    write,
    async append (tx, roomId, events) {
      if (events.length === 0) return []
      const first = await reserve(tx, roomId, events.length)
      const written = events.map((event, index) => {
        const seq = first + index
        return { roomId, seq, event: event.event, data: { roomId, seq, ...event.data } }
      })
      await write(tx, written)
      return written
    },
    async publish (events, except) {
      // Handed to the broker first, so that the frames leave for the other nodes before this node's own
      // socket writes (which go out when the tick ends).
      const broadcasting = broadcast(events)
      for (const event of events) deliverLocal(event, except)
      await broadcasting
    },
    broadcast,
    deliverLocal,
    eventsAfter: (roomId, seq, limit) => eventsAfter(roomId, seq, limit),
    baseline: (roomId, lastSeq) => sequencer.baseline(roomId, lastSeq),
  }
  app.decorate('chatRoomLog', log)
}, { name: 'chat-room-log', fastify: '5.x', dependencies: ['chat-database', 'chat-hub', 'chat-broker'] })
