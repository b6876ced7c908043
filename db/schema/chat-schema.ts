import { pgSchema } from 'drizzle-orm/pg-core'

/** Every table lives in a Postgres schema of its own, so that a host's database stays clean. */
export const chatSchema = pgSchema('chat')
