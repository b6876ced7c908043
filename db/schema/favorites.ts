import { sql } from 'drizzle-orm'
import { check, primaryKey, text, timestamp } from 'drizzle-orm/pg-core'
import { chatSchema } from './chat-schema.js'

export const FAVORITE_TYPES = ['ROOM', 'USER'] as const
export type FavoriteType = typeof FAVORITE_TYPES[number]

/** A user's favorites; the user is the pair (tenant, user_id). */
export const favorites = chatSchema.table('favorites', {
  tenant: text('tenant').notNull().default(''),
  userId: text('user_id').notNull(),
  type: text('type').$type<FavoriteType>().notNull(),
  targetId: text('target_id').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
}, (table) => [
  primaryKey({ columns: [table.tenant, table.userId, table.type, table.targetId] }),
  check('favorites_type_check', sql`${table.type} in ('ROOM', 'USER')`),
])
