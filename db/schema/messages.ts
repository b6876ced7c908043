import { sql } from 'drizzle-orm'
import { bigint, bigserial, check, customType, index, integer, jsonb, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'
import { chatSchema } from './chat-schema.js'
import { rooms } from './rooms.js'
import type { Attachment } from '../../schemas/message.js'

export const MESSAGE_TYPES = ['TEXT', 'IMAGE', 'FILE', 'VOICE', 'VIDEO', 'SYSTEM'] as const
export type MessageType = typeof MESSAGE_TYPES[number]

export type { Attachment } from '../../schemas/message.js'

/** PostgreSQL's text-search document; only the database reads it (it is never selected). */
const tsvector = customType<{ data: string }>({ dataType: () => 'tsvector' })

/**
 * The text-search configuration of message search: `simple` lowercases words and keeps them as written,
 * without a language's stemming or stop words, because a room's messages are in any language and a
 * stemmer of one mangles the others. The indexer and the query side (db/queries/message-search.ts) use it.
 */
export const SEARCH_CONFIG = 'simple'

export const messages = chatSchema.table('messages', {
  id: uuid('id').primaryKey().defaultRandom(),
  roomId: uuid('room_id').notNull().references(() => rooms.id, { onDelete: 'cascade' }),
  seq: integer('seq').notNull(),
  senderId: text('sender_id').notNull(),
  type: text('type').$type<MessageType>().notNull().default('TEXT'),
  content: text('content').notNull(),
  replyToId: uuid('reply_to_id'),
  // A thread reply names its root, a top-level message of the same room (protocol 11.6).
  threadRootId: uuid('thread_root_id'),
  attachments: jsonb('attachments').$type<Attachment[]>().notNull().default([]),
  clientMsgId: text('client_msg_id'),
  /** Users the sender mentioned (members of the room when sent), or `*` for everyone. */
  mentions: text('mentions').array().notNull().default(sql`'{}'::text[]`),
  editedAt: timestamp('edited_at', { withTimezone: true, mode: 'date' }),
  deletedAt: timestamp('deleted_at', { withTimezone: true, mode: 'date' }),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
}, (table) => [
  uniqueIndex('messages_room_seq_idx').on(table.roomId, table.seq),
  // A retried send with the same clientMsgId finds the original instead of writing a second row.
  uniqueIndex('messages_client_msg_idx').on(table.roomId, table.senderId, table.clientMsgId),
  // A thread's page and its root's summary; only thread replies are in it.
  index('messages_thread_idx').on(table.threadRootId, table.seq).where(sql`${table.threadRootId} is not null`),
  check('messages_type_check', sql`${table.type} in ('TEXT', 'IMAGE', 'FILE', 'VOICE', 'VIDEO', 'SYSTEM')`),
])

/**
 * Messages written or changed and not yet (re)indexed for search. A trigger (migration 0015) adds a row for
 * every inserted message and for every change of content or deleted_at, in the writing transaction, so a
 * send pays one append to this table's btree (its key grows) instead of a GIN insert per word. The search
 * indexer (plugins/messaging/search-indexer.ts) takes rows FOR UPDATE SKIP LOCKED and deletes them in the
 * statement that writes message_search. No foreign key: a send would pay for its check, and a message
 * that is gone by the time its row is taken is simply passed over.
 */
export const messageSearchQueue = chatSchema.table('message_search_queue', {
  // Also the version of the index entry written from it: a message's later change takes a larger id.
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  messageId: uuid('message_id').notNull(),
})

/**
 * message.search's index, off the send path: one row per message indexed, written by the search indexer
 * from the message as it read then. `search` is null for a deleted or erased message (a tombstone, so that
 * a slower indexer holding an older version cannot bring its words back: `version` only goes up).
 * `edited_at` is the edit the words are of, so a query can tell an entry that an edit made stale.
 * No foreign key to messages: its check cost the indexer a lookup and a row lock of the message for every
 * entry (7 of 41 µs per entry, measured; the durable bench's database is most of its cost). A statement
 * trigger (migration 0016) deletes the entries of deleted messages (a room's deletion deletes its
 * messages); an entry written for a message deleted while the indexer read it is left behind, and search
 * passes it over as gone.
 */
export const messageSearch = chatSchema.table('message_search', {
  messageId: uuid('message_id').primaryKey(),
  roomId: uuid('room_id').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull(),
  editedAt: timestamp('edited_at', { withTimezone: true, mode: 'date' }),
  search: tsvector('search'),
  version: bigint('version', { mode: 'number' }).notNull(),
}, (table) => [
  // message.search's GIN plan: the words first; rooms, deletes and rank are filtered and sorted after.
  index('message_search_idx').using('gin', table.search),
])

export const reactions = chatSchema.table('reactions', {
  messageId: uuid('message_id').notNull().references(() => messages.id, { onDelete: 'cascade' }),
  userId: text('user_id').notNull(),
  emoji: text('emoji').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
}, (table) => [
  primaryKey({ columns: [table.messageId, table.userId, table.emoji] }),
  index('reactions_message_idx').on(table.messageId),
])

export const REPORT_STATUSES = ['open', 'dismissed', 'actioned'] as const
export type ReportStatus = typeof REPORT_STATUSES[number]

/** Reports of messages to a room's moderators (protocol 11.3); one per reporter and message. */
export const messageReports = chatSchema.table('message_reports', {
  id: uuid('id').primaryKey().defaultRandom(),
  roomId: uuid('room_id').notNull().references(() => rooms.id, { onDelete: 'cascade' }),
  messageId: uuid('message_id').notNull().references(() => messages.id, { onDelete: 'cascade' }),
  reporterId: text('reporter_id').notNull(),
  reason: text('reason').notNull(),
  status: text('status').$type<ReportStatus>().notNull().default('open'),
  resolvedBy: text('resolved_by'),
  resolvedAt: timestamp('resolved_at', { withTimezone: true, mode: 'date' }),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
}, (table) => [
  uniqueIndex('message_reports_reporter_idx').on(table.messageId, table.reporterId),
  index('message_reports_room_status_idx').on(table.roomId, table.status, table.createdAt),
  check('message_reports_status_check', sql`${table.status} in ('open', 'dismissed', 'actioned')`),
])
