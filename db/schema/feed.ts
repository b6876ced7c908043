import { bigint, bigserial, index, integer, jsonb, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core'
import { chatSchema } from './chat-schema.js'

/**
 * The event feed for other services (protocol 11.4), in two steps:
 *
 * - `feed_outbox` is written in the same statement or transaction as the event it describes (a send
 *   batch, a room event, a room's creation or deletion): no entry without its event, no event without its
 *   entry. Its `staged_id` is only the order of staging: concurrent transactions take staged ids in one
 *   order and commit in another, so a reader that went by it could pass an id whose transaction had not
 *   committed yet and skip it forever.
 * - The relay (one node at a time, under the lease) moves what is committed from the outbox into `feed`,
 *   in staged order, and that move gives each entry its public `id`: one writer, so ids increase in the
 *   order entries become visible, and every sink reads `id > its position` without skipping. Events of
 *   one room keep their seq order (the room's row lock orders their transactions' commits).
 *
 * No foreign key to rooms: `room.deleted` outlives its room.
 */
const entryColumns = {
  type: text('type').notNull(),
  tenant: text('tenant').notNull(),
  roomId: uuid('room_id'),
  seq: integer('seq'),
  actorId: text('actor_id'),
  data: jsonb('data').$type<Record<string, unknown>>().notNull(),
  occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
}

export const feedOutbox = chatSchema.table('feed_outbox', {
  stagedId: bigserial('staged_id', { mode: 'number' }).primaryKey(),
  ...entryColumns,
})

export const feed = chatSchema.table('feed', {
  id: bigint('id', { mode: 'number' }).primaryKey(),
  ...entryColumns,
}, (table) => [
  index('feed_occurred_at_idx').on(table.occurredAt),
])

/** Each sink's position: the last feed id it confirmed. Advanced only after the sink confirmed. */
export const feedPositions = chatSchema.table('feed_positions', {
  sink: text('sink').primaryKey(),
  position: bigint('position', { mode: 'number' }).notNull().default(0),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
})

/** Who relays: one row per lease name, held until `expires_at` and renewed by its holder. */
export const feedLease = chatSchema.table('feed_lease', {
  name: text('name').primaryKey(),
  holder: text('holder').notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
})

/**
 * Entries a sink gave up on (a webhook failing past its maxAgeSec): the sink's position moved past them so
 * later entries flow. Each row keeps the whole entry, since chat.feed prunes it after keepHours, so an
 * operator can look at it and replay it.
 */
export const feedParked = chatSchema.table('feed_parked', {
  sink: text('sink').notNull(),
  entryId: bigint('entry_id', { mode: 'number' }).notNull(),
  entry: jsonb('entry').$type<Record<string, unknown>>().notNull(),
  parkedAt: timestamp('parked_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  lastError: text('last_error').notNull(),
}, (table) => [
  primaryKey({ columns: [table.sink, table.entryId] }),
])
