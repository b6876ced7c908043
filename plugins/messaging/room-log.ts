import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { eq, sql } from 'drizzle-orm'
import { roomEvents, rooms } from '../../db/schema/index.js'
import type { ChatDb } from '../../db/client.js'
import { refusals } from '../core/errors.js'
import type { Connection } from '../realtime/connection.js'
import { eventsAfter, eventsAfterMany, frameOf, type LogRead, type NewRoomEvent, type RoomEvent } from '../../db/queries/room-events.js'
import { stageRoomEvents } from '../../db/queries/feed-outbox.js'

export type { RoomEvent, NewRoomEvent }

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
   * Pushes committed events to every socket of their rooms on every node (the hub: one serialization
   * per event, one broker command). Never rejects for the broker: other nodes recover from the database.
   */
  publish (events: RoomEvent[], except?: Connection): Promise<void>
  /** Events after `seq`, ascending, at most `limit`, and none past `upTo` when it is given. */
  eventsAfter (roomId: string, seq: number, limit: number, upTo?: number): Promise<RoomEvent[]>
  /** `eventsAfter` of several rooms in a few statements (a sync's first page of every room), in the order given. */
  eventsAfterMany (reads: readonly LogRead[]): Promise<RoomEvent[][]>
}

declare module 'fastify' {
  interface FastifyInstance {
    chatRoomLog: RoomLog
  }
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

/**
 * The durable per-room log of the events other than messages (a message's row is its own log entry):
 * seqs taken under the room's row lock, rows written in the caller's transaction, and what `sync` replays.
 */
export const roomLogPlugin = fp(async function roomLogPlugin (app: FastifyInstance) {
  const db = app.chatDb
  const hub = app.chatHub
  const feedOn = app.chatConfig.feed !== false

  async function reserve (tx: ChatDb, roomId: string, count: number): Promise<number> {
    const [row] = await tx.update(rooms)
      .set({ lastSeq: sql`${rooms.lastSeq} + ${count}`, updatedAt: new Date() })
      .where(eq(rooms.id, roomId))
      .returning({ lastSeq: rooms.lastSeq })
    if (row === undefined) throw refusals.roomNotFound()
    return row.lastSeq - count + 1
  }

  async function write (tx: ChatDb, events: RoomEvent[]): Promise<void> {
    if (events.length === 0) return
    // One statement for any number of events: the rows travel as one JSON parameter instead of four
    // bound parameters per row, and the text stays the same (postgres.js remembers the texts it ran).
    // With the feed on, the same statement stages their feed entries (no entry without its event).
    const rows = sql`select "roomId", seq, event, data from json_to_recordset(${eventRowsJson(events)}::text::json) as e("roomId" uuid, seq int, event text, data jsonb)`
    if (!feedOn) {
      await tx.execute(sql`insert into ${roomEvents} (room_id, seq, event, data) ${rows}`)
      return
    }
    await tx.execute(sql`with events as materialized (${rows}),
      logged as (insert into ${roomEvents} (room_id, seq, event, data) select * from events)
      ${stageRoomEvents()}`)
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
    publish: (events, except) => hub.publishRoomEvents(events.map((event) => ({ roomId: event.roomId, seq: event.seq, frame: frameOf(event), except: except ?? null }))),
    eventsAfter: (roomId, seq, limit, upTo) => eventsAfter(db, roomId, seq, limit, upTo),
    eventsAfterMany: (reads) => eventsAfterMany(db, reads),
  }
  app.decorate('chatRoomLog', log)
}, { name: 'chat-room-log', fastify: '5.x', dependencies: ['chat-config', 'chat-database', 'chat-hub'] })
