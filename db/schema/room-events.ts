import { integer, jsonb, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core'
import { chatSchema } from './chat-schema.js'
import { rooms } from './rooms.js'

/**
 * The durable log of a room: every event that took a seq, stored as the exact `{event, data}` that was
 * pushed, so that `sync` replays what a connected client would have seen, in order, from one index scan.
 */
export const roomEvents = chatSchema.table('room_events', {
  roomId: uuid('room_id').notNull().references(() => rooms.id, { onDelete: 'cascade' }),
  seq: integer('seq').notNull(),
  event: text('event').notNull(),
  data: jsonb('data').$type<Record<string, unknown>>().notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
}, (table) => [
  primaryKey({ columns: [table.roomId, table.seq] }),
])
