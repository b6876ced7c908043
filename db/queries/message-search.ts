import { sql } from 'drizzle-orm'
import { rows, type ChatDb } from '../client.js'
import { SEARCH_CONFIG } from '../schema/index.js'
import { messagesByIds, type MessageRow } from './message-reader.js'
import type { TenantUser } from '../../lib/user-key.js'

/** Where a page of hits starts: after the hit (rank, created_at, id), in the order they are listed. */
export interface SearchKey {
  /** ts_rank as PostgreSQL prints its `real` (the shortest text that reads back as the same value). */
  rank: string
  /** created_at in UTC to the microsecond, so the next page compares with what is stored, not a rounded Date. */
  at: string
  id: string
}

export interface SearchHit {
  /** Null when the message went (deleted or its room removed) between the two statements. */
  row: MessageRow | null
  key: SearchKey
}

interface HitRow {
  id: string
  rank: string
  at: string
}

/**
 * Up to `limit` messages that match `words` (websearch_to_tsquery with SEARCH_CONFIG) in the rooms of
 * `user`'s tenant they are a member of (or in `roomId` alone, which the caller has checked), best rank
 * first, newest first among equals, after `after`. Deleted and retention-erased messages (deleted_at set,
 * content emptied) are never found. Two statements: the hits' keys, then their rows.
 */
export async function searchMessages (db: ChatDb, user: TenantUser, words: string, options: { roomId?: string, after: SearchKey | null, limit: number }): Promise<SearchHit[]> {
  const { roomId, after, limit } = options
  const inRooms = roomId === undefined
    ? sql`m.room_id in (select rm.room_id from chat.room_members rm join chat.rooms r on r.id = rm.room_id
        where rm.user_id = ${user.id} and r.tenant = ${user.tenant})`
    : sql`m.room_id = ${roomId}::uuid`
  const afterKey = after === null
    ? sql``
    : sql` where (h.rank, h.created_at, h.id) < (${after.rank}::real, ${after.at}::timestamptz, ${after.id}::uuid)`
  const found = rows<HitRow>(await db.execute(sql`
    with q as (select websearch_to_tsquery(${SEARCH_CONFIG}::regconfig, ${words}) as q),
    hits as (
      select m.id, ts_rank(m.search, q.q) as rank, m.created_at
      from chat.messages m, q
      where m.search @@ q.q and m.deleted_at is null and ${inRooms}
    )
    select h.id, h.rank::text as rank, to_char(h.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at
    from hits h${afterKey}
    order by h.rank desc, h.created_at desc, h.id desc
    limit ${limit}`))
  if (found.length === 0) return []
  const byId = new Map((await messagesByIds(db, found.map((hit) => hit.id))).map((row) => [row.id, row]))
  return found.map((hit) => {
    const row = byId.get(hit.id)
    return { row: row === undefined || row.deletedAt !== null ? null : row, key: { rank: hit.rank, at: hit.at, id: hit.id } }
  })
}
