import { sql, type SQL } from 'drizzle-orm'
import { rows, type ChatDb } from '../client.js'
import { SEARCH_CONFIG } from '../schema/index.js'
import { messagesByIds, type MessageRow } from './message-reader.js'
import { inList } from './sql-parts.js'
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
 * Up to this many events in the rooms searched, the rooms' messages are read and each tested against the
 * query; above it, the GIN index finds the query's words first. Reading a user's rooms costs the same for
 * any word (about 10 ms for 12,500 messages at 1 million stored); the index is quicker for a rare word
 * but slow for one in half the messages (its posting list is read whole), and PostgreSQL's cost model
 * does not see that. Measured in docs/benchmarks.md (bench/search.ts).
 */
export const ROOM_SCAN_MAX_EVENTS = 40_000

interface Scope {
  ids: string[] | null
  events: number
}

/** The rooms searched (the caller's, in their tenant, or `roomId` among them) and their events, from the rooms' last_seq. */
async function scopeOf (db: ChatDb, user: TenantUser, roomId: string | undefined): Promise<Scope> {
  const one = roomId === undefined ? sql`` : sql` and rm.room_id = ${roomId}::uuid`
  const [scope] = rows<Scope>(await db.execute(sql`
    select array_agg(rm.room_id) as ids, coalesce(sum(r.last_seq), 0)::int as events
    from chat.room_members rm join chat.rooms r on r.id = rm.room_id
    where rm.user_id = ${user.id} and r.tenant = ${user.tenant}${one}`))
  return scope ?? { ids: null, events: 0 }
}

/**
 * Up to `limit` messages that match `words` (websearch_to_tsquery with SEARCH_CONFIG) in the rooms of
 * `user`'s tenant they are a member of (or in `roomId` alone), best rank first, newest first among equals,
 * after `after`. Deleted and retention-erased messages (deleted_at set, content emptied) are never found.
 * Above ROOM_SCAN_MAX_EVENTS a message is found once the search indexer has indexed it (search-indexer.ts).
 * Three statements: the rooms, the hits' keys, then their rows.
 */
export async function searchMessages (db: ChatDb, user: TenantUser, words: string, options: { roomId?: string, after: SearchKey | null, limit: number }): Promise<SearchHit[]> {
  const { after, limit } = options
  const scope = await scopeOf(db, user, options.roomId)
  const ids = scope.ids
  if (ids === null || ids.length === 0) return []
  const inRooms = (column: SQL): SQL => sql`${column} in (${inList(ids, 'uuid')})`
  // The room scan reads the messages as they are now (no indexer lag): a message's indexed words where its
  // entry is of its current edit (one primary-key probe: a join hashed the whole side table, and computing
  // to_tsvector for every row cost about 15% more, measured on the 1-million-message seed), else its
  // words computed as read. `offset 0` keeps the rooms' rows a subquery of their own, so the planner
  // cannot go to the index first. The GIN plan reads message_search alone (a common word's hits are many:
  // a probe of the message for each cost more than the rest of the plan); only the page's hits are then
  // checked against their messages, below.
  const candidates = scope.events <= ROOM_SCAN_MAX_EVENTS
    ? sql`(select m.id, coalesce(
          (select s.search from chat.message_search s where s.message_id = m.id and s.edited_at is not distinct from m.edited_at),
          to_tsvector(${SEARCH_CONFIG}::regconfig, m.content)) as search, m.created_at, m.edited_at
        from chat.messages m where ${inRooms(sql`m.room_id`)} and m.deleted_at is null offset 0) c`
    : sql`(select s.message_id as id, s.search, s.created_at, s.edited_at
        from chat.message_search s, q
        where s.search @@ q.q and ${inRooms(sql`s.room_id`)}) c`
  const afterKey = after === null
    ? sql``
    : sql` where (h.rank, h.created_at, h.id) < (${after.rank}::real, ${after.at}::timestamptz, ${after.id}::uuid)`
  // `gone`: a hit whose message is deleted, or was edited since its entry was written (its words may be
  // its old ones), both possible within the indexer's lag. It is passed over like a message that went
  // between the statements, so an edit is never found by its old words, nor a deleted message at all.
  const found = rows<HitRow & { gone: boolean }>(await db.execute(sql`
    with q as (select websearch_to_tsquery(${SEARCH_CONFIG}::regconfig, ${words}) as q),
    hits as (
      select c.id, ts_rank(c.search, q.q) as rank, c.created_at, c.edited_at
      from ${candidates}, q
      where c.search @@ q.q
    ),
    page as (
      select h.id, h.rank, h.created_at, h.edited_at
      from hits h${afterKey}
      order by h.rank desc, h.created_at desc, h.id desc
      limit ${limit}
    )
    select p.id, p.rank::text as rank, to_char(p.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at,
      not exists (select 1 from chat.messages m where m.id = p.id and m.deleted_at is null and m.edited_at is not distinct from p.edited_at) as gone
    from page p
    order by p.rank desc, p.created_at desc, p.id desc`))
  if (found.length === 0) return []
  const byId = new Map((await messagesByIds(db, found.map((hit) => hit.id))).map((row) => [row.id, row]))
  return found.map((hit) => {
    const row = byId.get(hit.id)
    return { row: row === undefined || row.deletedAt !== null || hit.gone ? null : row, key: { rank: hit.rank, at: hit.at, id: hit.id } }
  })
}

/** What one indexer statement did: queue rows taken, and index entries written (a tombstone counts). */
export interface IndexedBatch {
  taken: number
  written: number
}

/**
 * Indexes up to `batchSize` queued changes in one statement, so in one transaction: it takes the oldest
 * queue rows FOR UPDATE SKIP LOCKED (another node's indexer takes others, never the same), deletes them,
 * and writes each message's entry as the message reads now, a tombstone (null) when it is deleted. A
 * node that dies mid-statement takes its rows back to the queue with its rollback. Two indexers can still
 * hold two changes of one message at once (an insert and an edit); the entry keeps the larger queue id
 * (`version`), whose reader saw at least the change that queued it, so a slower reader of an older
 * version never overwrites a newer one.
 */
export async function indexQueuedMessages (db: ChatDb, batchSize: number): Promise<IndexedBatch> {
  const [done] = rows<IndexedBatch>(await db.execute(sql`
    with taken as (
      delete from chat.message_search_queue
      where id in (select id from chat.message_search_queue order by id limit ${batchSize} for update skip locked)
      returning id, message_id
    ), latest as (
      select message_id, max(id) as version from taken group by message_id
    ), written as (
      insert into chat.message_search (message_id, room_id, created_at, edited_at, search, version)
      select m.id, m.room_id, m.created_at, m.edited_at,
        case when m.deleted_at is null then to_tsvector(${SEARCH_CONFIG}::regconfig, m.content) end, l.version
      from latest l join chat.messages m on m.id = l.message_id
      on conflict (message_id) do update
        set edited_at = excluded.edited_at, search = excluded.search, version = excluded.version
        where chat.message_search.version < excluded.version
      returning 1
    )
    select (select count(*) from taken)::int as taken, (select count(*) from written)::int as written`))
  return { taken: Number(done?.taken ?? 0), written: Number(done?.written ?? 0) }
}
