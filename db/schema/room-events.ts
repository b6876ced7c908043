import { integer, jsonb, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core'
import { chatSchema } from './chat-schema.js'
import { rooms } from './rooms.js'

/**
 * The durable log of a room, with its messages: every event that took a seq except `message.new`, whose
 * entry is the messages row itself (a send is written once). Stored as the exact `{event, data}` that was
 * pushed, so that `sync` replays, merged with the messages by seq, what a connected client saw, in order.
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
