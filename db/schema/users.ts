import { primaryKey, text, timestamp } from 'drizzle-orm/pg-core'
import { chatSchema } from './chat-schema.js'

/**
 * Users as the tokens describe them: cached from claims (or a host resolver), never the source of truth.
 * A user is the pair (tenant, sub): the same sub in two tenants is two rows (protocol 11.1).
 */
export const users = chatSchema.table('users', {
  tenant: text('tenant').notNull().default(''),
  id: text('id').notNull(),
  name: text('name'),
  avatar: text('avatar'),
  lastSeen: timestamp('last_seen', { withTimezone: true, mode: 'date' }),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
}, (table) => [
  primaryKey({ columns: [table.tenant, table.id] }),
])
