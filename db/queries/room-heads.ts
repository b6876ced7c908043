import { sql } from 'drizzle-orm'
import { rows, type ChatDb } from '../client.js'
import { inList } from './sql-parts.js'

export interface RoomHead {
  id: string
  tenant: string
  lastSeq: number
}

/**
 * The tenant and last seq of each named room that exists, by id, in one statement. Written as SQL: every
 * sync after a reconnect asks it, and drizzle's select builder was a visible cost in a reconnect storm's
 * profile. The text depends only on the number of rooms, so postgres.js prepares it once per count.
 */
export async function roomHeadsOf (db: ChatDb, roomIds: readonly string[]): Promise<Map<string, RoomHead>> {
  const heads = new Map<string, RoomHead>()
  if (roomIds.length === 0) return heads
  const found = rows<{ id: string, tenant: string, lastSeq: number | string }>(await db.execute(sql`select id::text as id, tenant, last_seq as "lastSeq"
    from chat.rooms where id in (${inList(roomIds, 'uuid')})`))
  for (const row of found) heads.set(row.id, { id: row.id, tenant: row.tenant, lastSeq: Number(row.lastSeq) })
  return heads
}
