import { text, timestamp } from 'drizzle-orm/pg-core'
import { chatSchema } from './chat-schema.js'

/** Users as the tokens describe them: cached from claims (or a host resolver), never the source of truth. */
export const users = chatSchema.table('users', {
  id: text('id').primaryKey(),
  tenant: text('tenant').notNull().default(''),
  name: text('name'),
  avatar: text('avatar'),
  lastSeen: timestamp('last_seen', { withTimezone: true, mode: 'date' }),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
})
