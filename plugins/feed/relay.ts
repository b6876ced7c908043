import { sql, type SQL } from 'drizzle-orm'
import { rows, type ChatDb } from '../../db/client.js'
import { inList } from '../../db/queries/sql-parts.js'
import type { PresenceInfo } from '../presence/presence-store.js'
import type { FeedEntry, FeedSink } from './types.js'

export interface RelayObserver {
  moved (count: number): void
  delivered (sink: string, count: number): void
  failed (sink: string): void
  parked (sink: string, count: number): void
}

export interface RelayOptions {
  db: ChatDb
  sinks: FeedSink[]
  batchSize: number
  keepHours: number
  statusOf (tenant: string, userIds: string[]): Promise<Map<string, PresenceInfo>>
  observer: RelayObserver
  onError (error: unknown, what: string): void
}

interface FeedRow {
  id: number | string
  type: string
  tenant: string
  room_id: string | null
  seq: number | null
  occurred_at: Date | string
  actor_id: string | null
  data: Record<string, unknown>
}

interface SinkState {
  sink: FeedSink
  /** The last confirmed (or parked) entry id; null until read from chat.feed_positions. */
  position: number | null
  failures: number
  retryAt: number
  /** The sink's delivery under way: one at a time per sink keeps its order. */
  inFlight: Promise<void> | null
  /** Whether the last delivery left more entries right behind it. */
  more: boolean
  /** The first entry of the batch the sink keeps refusing, and since when (for parking). */
  failing: { firstId: number, since: number } | null
}

const BACKOFF_BASE_MS = 200
const BACKOFF_CAP_MS = 30_000
const MAX_ERROR_LENGTH = 1000

/** Stores a sink's position (the upsert of chat.feed_positions), alone or after a CTE. */
function positionStatement (sink: string, position: number): SQL {
  return sql`
    insert into chat.feed_positions (sink, position, updated_at) values (${sink}, ${position}, now())
    on conflict (sink) do update set position = excluded.position, updated_at = now()`
}

/** Records entries a sink gave up on, each with the whole entry (chat.feed prunes its copy later). */
function parkStatement (sink: string, entries: FeedEntry[], error: unknown): SQL {
  const lastError = (error instanceof Error ? error.message : String(error)).slice(0, MAX_ERROR_LENGTH)
  return sql`
    insert into chat.feed_parked (sink, entry_id, entry, last_error)
    select ${sink}, (entry->>'id')::bigint, entry, ${lastError} from jsonb_array_elements(${JSON.stringify(entries)}::jsonb) as entry
    on conflict do nothing`
}

function entryOf (row: FeedRow): FeedEntry {
  const occurredAt = row.occurred_at instanceof Date ? row.occurred_at : new Date(row.occurred_at)
  return {
    id: Number(row.id),
    type: row.type,
    tenant: row.tenant,
    roomId: row.room_id,
    seq: row.seq,
    occurredAt: occurredAt.toISOString(),
    actorId: row.actor_id,
    data: row.data,
  }
}

/**
 * The relay's work, one step at a time, run only while this node holds the lease: move committed outbox
 * rows into the feed (numbering them), deliver to each sink from its position, prune what every sink has.
 */
export class FeedRelay {
  private readonly states: SinkState[]
  newestId = 0
  private closing = false

  constructor (private readonly options: RelayOptions) {
    this.states = options.sinks.map((sink) => ({ sink, position: null, failures: 0, retryAt: 0, inFlight: null, more: false, failing: null }))
  }

  /** Each sink's confirmed position (null until read), for the lag gauge. */
  positions (): Array<{ sink: string, position: number | null }> {
    return this.states.map(({ sink, position }) => ({ sink: sink.name, position }))
  }

  /** Moves up to batchSize committed outbox rows into the feed in staged order; returns how many. */
  async move (): Promise<number> {
    const moved = rows<{ id: number | string }>(await this.options.db.execute(sql`
      with moved as (
        delete from chat.feed_outbox where staged_id in (
          select staged_id from chat.feed_outbox order by staged_id limit ${this.options.batchSize}
        ) returning *
      )
      insert into chat.feed (id, type, tenant, room_id, seq, actor_id, data, occurred_at)
      select (select coalesce(max(id), 0) from chat.feed) + row_number() over (order by staged_id),
        type, tenant, room_id, seq, actor_id, data, occurred_at
      from moved
      returning id`))
    for (const { id } of moved) this.newestId = Math.max(this.newestId, Number(id))
    if (moved.length > 0) this.options.observer.moved(moved.length)
    return moved.length
  }

  /**
   * Starts a delivery for every sink that is idle and not waiting out a backoff, then waits until one
   * delivery (a new one or one still under way) ends. Each sink has one delivery at a time (its own order);
   * sinks run side by side, so a slow webhook does not hold the others back across steps. True when some
   * idle sink has more to deliver right away.
   */
  async deliver (): Promise<boolean> {
    for (const state of this.states) {
      if (state.inFlight === null && Date.now() >= state.retryAt) {
        state.inFlight = this.attempt(state).finally(() => { state.inFlight = null })
      }
    }
    const running = this.states.flatMap((state) => state.inFlight ?? [])
    if (running.length > 0) await Promise.race(running)
    return this.states.some((state) => state.inFlight === null && state.more)
  }

  /** One delivery to one sink; a failure is counted and backed off (exponentially, with jitter), never thrown. */
  private async attempt (state: SinkState): Promise<void> {
    try {
      state.more = await this.deliverTo(state)
      state.failures = 0
      state.failing = null
    } catch (error) {
      state.more = false
      state.failures += 1
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(state.failures, 20))
      state.retryAt = Date.now() + ceiling / 2 + Math.random() * ceiling / 2
      // A sink that parks gets its last try when its time is up, not up to a whole backoff later.
      const { parkAfterMs } = state.sink
      if (parkAfterMs !== undefined && state.failing !== null) state.retryAt = Math.min(state.retryAt, state.failing.since + parkAfterMs)
      this.options.observer.failed(state.sink.name)
      this.options.onError(error, `feed: delivery to ${state.sink.name} failed (retry ${state.failures})`)
    }
  }

  /** Delivers the batch after the sink's position and stores the new position; true when more follow. */
  private async deliverTo (state: SinkState): Promise<boolean> {
    const { db, batchSize } = this.options
    const { sink } = state
    if (state.position === null) {
      const stored = rows<{ position: number | string }>(await db.execute(sql`select position from chat.feed_positions where sink = ${sink.name}`))
      state.position = Number(stored[0]?.position ?? 0)
    }
    const batch = rows<FeedRow>(await db.execute(sql`
      select id, type, tenant, room_id, seq, occurred_at, actor_id, data from chat.feed
      where id > ${state.position} order by id limit ${batchSize}`)).map(entryOf)
    const last = batch[batch.length - 1]
    if (last === undefined) return false
    const wanted = sink.accepts === undefined ? batch : batch.filter((entry) => sink.accepts?.(entry) === true)
    const first = wanted[0]
    if (first !== undefined) {
      await this.withRecipients(wanted)
      try {
        await sink.deliver(wanted)
      } catch (error) {
        if (!this.parkingDue(state, first.id)) throw error
        this.options.observer.failed(sink.name)
        await db.execute(sql`with parked as (${parkStatement(sink.name, wanted, error)}) ${positionStatement(sink.name, last.id)}`)
        this.options.observer.parked(sink.name, wanted.length)
        this.options.onError(error, `feed: ${sink.name} failed past its maximum age, ${wanted.length} entries parked (ids ${first.id}..${wanted[wanted.length - 1]?.id ?? first.id})`)
        this.moved(state, last.id)
        return batch.length === batchSize
      }
    }
    await db.execute(positionStatement(sink.name, last.id))
    this.moved(state, last.id)
    this.options.observer.delivered(sink.name, wanted.length)
    return batch.length === batchSize
  }

  /** Whether a sink that parks has failed on a batch starting at `firstId` for longer than it allows. */
  private parkingDue (state: SinkState, firstId: number): boolean {
    const now = Date.now()
    if (state.failing?.firstId !== firstId) state.failing = { firstId, since: now }
    const { parkAfterMs } = state.sink
    return !this.closing && parkAfterMs !== undefined && now - state.failing.since >= parkAfterMs
  }

  private moved (state: SinkState, position: number): void {
    state.position = position
    this.newestId = Math.max(this.newestId, position)
  }

  /**
   * message.created gets `recipients`: the room's members other than the sender, with presence, as of
   * relaying (within the feed lag of the send). One membership query per batch, one presence read per tenant.
   */
  private async withRecipients (batch: FeedEntry[]): Promise<void> {
    const created = batch.filter((entry) => entry.type === 'message.created' && entry.roomId !== null)
    if (created.length === 0) return
    const roomIds = [...new Set(created.map((entry) => entry.roomId as string))]
    const members = rows<{ room_id: string, user_id: string }>(await this.options.db.execute(sql`
      select room_id, user_id from chat.room_members
      where room_id in (${inList(roomIds, 'uuid')})`))
    const byRoom = new Map<string, string[]>()
    for (const { room_id: roomId, user_id: userId } of members) {
      const list = byRoom.get(roomId) ?? []
      list.push(userId)
      byRoom.set(roomId, list)
    }
    const byTenant = new Map<string, Set<string>>()
    for (const entry of created) {
      const ids = byTenant.get(entry.tenant) ?? new Set<string>()
      for (const id of byRoom.get(entry.roomId as string) ?? []) ids.add(id)
      byTenant.set(entry.tenant, ids)
    }
    const statuses = new Map<string, Map<string, PresenceInfo>>()
    for (const [tenant, ids] of byTenant) statuses.set(tenant, await this.options.statusOf(tenant, [...ids]))
    for (const entry of created) {
      const status = statuses.get(entry.tenant)
      const recipients = (byRoom.get(entry.roomId as string) ?? [])
        .filter((userId) => userId !== entry.actorId)
        .map((userId) => ({ userId, online: (status?.get(userId)?.status ?? 'offline') !== 'offline' }))
      entry.data = { ...entry.data, recipients }
    }
  }

  /** Deletes up to batchSize feed rows older than keepHours that every sink has confirmed. */
  async prune (): Promise<number> {
    const positions = this.states.map((state) => state.position)
    if (positions.some((position) => position === null)) return 0
    const upTo = positions.length === 0 ? Number.MAX_SAFE_INTEGER : Math.min(...(positions as number[]))
    const deleted = rows<{ id: number }>(await this.options.db.execute(sql`
      delete from chat.feed where id in (
        select id from chat.feed
        where occurred_at < now() - make_interval(secs => ${this.options.keepHours * 3600}) and id <= ${upTo}
        order by id limit ${this.options.batchSize}
      ) returning id`))
    return deleted.length
  }

  /**
   * Closes the sinks, which may cut short what they are sending (a webhook waiting out its timeout), and
   * waits for the deliveries under way to end. A delivery cut short this way is not confirmed, and does
   * not park its batch: the next relay delivers it again.
   */
  async close (): Promise<void> {
    this.closing = true
    await Promise.all(this.states.map(async (state) => {
      await state.sink.close()
      await state.inFlight
    }))
  }
}
