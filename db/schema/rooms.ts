import { sql } from 'drizzle-orm'
import { boolean, check, index, integer, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'
import { chatSchema } from './chat-schema.js'

export const ROOM_TYPES = ['DIRECT', 'GROUP', 'CHANNEL', 'SUPPORT'] as const
export const ROLES = ['OWNER', 'ADMIN', 'MODERATOR', 'MEMBER'] as const
export type RoomType = typeof ROOM_TYPES[number]
export type Role = typeof ROLES[number]
export const ROOM_STATUSES = ['open', 'closed'] as const
export type RoomStatus = typeof ROOM_STATUSES[number]
/** The end of a mute given without a duration: until unmuted. */
export const MUTED_FOREVER = new Date('9999-12-31T00:00:00.000Z')

export const rooms = chatSchema.table('rooms', {
  id: uuid('id').primaryKey().defaultRandom(),
  tenant: text('tenant').notNull().default(''),
  type: text('type').$type<RoomType>().notNull(),
  name: text('name').notNull(),
  description: text('description'),
  avatar: text('avatar'),
  isPrivate: boolean('is_private').notNull().default(false),
  maxMembers: integer('max_members'),
  // Moderation (protocol 11.3): a frozen room takes messages from ADMIN and above only; slow mode lets a
  // MEMBER send one message per slowModeSec seconds.
  frozen: boolean('frozen').notNull().default(false),
  slowModeSec: integer('slow_mode_sec').notNull().default(0),
  // Messages older than this many days lose their content (null: the retention option's maxAgeDays).
  retentionDays: integer('retention_days'),
  // Pinned messages, oldest pin first (at most MAX_PINS): the room row, so every summary carries them.
  // A SUPPORT room's state: open ones are in the tenant's support queue (other types stay open).
  status: text('status').$type<RoomStatus>().notNull().default('open'),
  pinnedMessageIds: uuid('pinned_message_ids').array().notNull().default(sql`'{}'::uuid[]`),
  // Kept in the row so that a conditional UPDATE enforces maxMembers under concurrent joins.
  memberCount: integer('member_count').notNull().default(0),
  // The room's one sequence: every durable event takes last_seq + 1 under this row's lock.
  lastSeq: integer('last_seq').notNull().default(0),
  // Counts removed memberships (a trigger on room_members); a send batch compares its snapshot's value with
  // the locked row's to know whether it must re-read the senders' rows (db/queries/send-batch.ts).
  memberRemovals: integer('member_removals').notNull().default(0),
  // "tenant:userA:userB" with the ids sorted: the unique index, not a read-then-write, makes dm.open race-safe.
  directKey: text('direct_key'),
  createdBy: text('created_by').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
}, (table) => [
  uniqueIndex('rooms_direct_key_idx').on(table.directKey),
  index('rooms_tenant_idx').on(table.tenant),
  check('rooms_type_check', sql`${table.type} in ('DIRECT', 'GROUP', 'CHANNEL', 'SUPPORT')`),
  check('rooms_status_check', sql`${table.status} in ('open', 'closed')`),
  // The support queue: a tenant's open SUPPORT rooms, oldest first.
  index('rooms_support_queue_idx').on(table.tenant, table.createdAt).where(sql`${table.type} = 'SUPPORT' and ${table.status} = 'open'`),
  // The directory (room.directory): a tenant's public rooms by lower(name), id (the page's keyset).
  index('rooms_directory_idx').on(table.tenant, sql`lower(${table.name})`, table.id).where(sql`not ${table.isPrivate}`),
  check('rooms_member_count_check', sql`${table.maxMembers} is null or ${table.memberCount} <= ${table.maxMembers}`),
])

export const roomMembers = chatSchema.table('room_members', {
  roomId: uuid('room_id').notNull().references(() => rooms.id, { onDelete: 'cascade' }),
  userId: text('user_id').notNull(),
  role: text('role').$type<Role>().notNull().default('MEMBER'),
  lastReadSeq: integer('last_read_seq').notNull().default(0),
  // A muted member reads but cannot send, react or type until then (MUTED_FOREVER for no end).
  mutedUntil: timestamp('muted_until', { withTimezone: true, mode: 'date' }),
  joinedAt: timestamp('joined_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
}, (table) => [
  primaryKey({ columns: [table.roomId, table.userId] }),
  index('room_members_user_idx').on(table.userId),
  check('room_members_role_check', sql`${table.role} in ('OWNER', 'ADMIN', 'MODERATOR', 'MEMBER')`),
])

/**
 * Bans (protocol 11.3): a banned user cannot join or be added until `until` passes (null: until lifted).
 * An ended ban is simply not read as one (`until > now()`); rows are replaced by the next ban or lifted.
 */
export const roomBans = chatSchema.table('room_bans', {
  roomId: uuid('room_id').notNull().references(() => rooms.id, { onDelete: 'cascade' }),
  userId: text('user_id').notNull(),
  bannedBy: text('banned_by').notNull(),
  reason: text('reason'),
  until: timestamp('until', { withTimezone: true, mode: 'date' }),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
}, (table) => [
  primaryKey({ columns: [table.roomId, table.userId] }),
])
