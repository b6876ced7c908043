import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { Counter } from 'prom-client'
import { rows, type ChatDb } from '../../db/client.js'
import { releaseLease, takeLease } from '../../db/queries/leases.js'
import { PeriodicJob } from '../../lib/periodic-job.js'

const LEASE_NAME = 'retention'
/** Statements of one sweep at most: a backlog is worked off over several sweeps, never in one long burst. */
const MAX_BATCHES_PER_SWEEP = 100

/**
 * Erases up to `batchSize` messages past their room's retention (the room's retentionDays, else
 * `maxAgeDays`; 0 keeps for ever): content, attachments and mentions go, the row keeps its id and seq and
 * reads as deleted; its reactions go too. One statement. Returns how many it erased.
 */
export async function eraseExpired (db: ChatDb, maxAgeDays: number, batchSize: number): Promise<number> {
  // With no server-wide retention only rooms that set their own are looked at.
  const rooms = maxAgeDays > 0 ? sql`` : sql` and r.retention_days is not null`
  const [row] = rows<{ n: number }>(await db.execute(sql`
    with expired as (
      select m.id from chat.rooms r
        join chat.messages m on m.room_id = r.id
      where m.deleted_at is null${rooms}
        and coalesce(r.retention_days, ${maxAgeDays}::int) > 0
        and m.created_at < now() - make_interval(days => coalesce(r.retention_days, ${maxAgeDays}::int))
      limit ${batchSize}
    ), erased as (
      update chat.messages m set content = '', attachments = '[]'::jsonb, mentions = '{}', deleted_at = now()
      from expired e where m.id = e.id
      returning m.id
    ), unreacted as (
      delete from chat.reactions x using erased e where x.message_id = e.id
    )
    select count(*)::int as n from erased`))
  return Number(row?.n ?? 0)
}

/**
 * Retention that deletes (protocol 11.6): on the node that holds the `retention` lease, every `sweepMs`,
 * expired messages are erased in bounded batches. Always running: a room may set retentionDays at any
 * time, and a sweep with nothing to do is one statement (without maxAgeDays, over the rooms that set
 * their own). No room event is written per erased message: clients see them deleted in history and sync.
 */
export const retentionPlugin = fp(async function retentionPlugin (app: FastifyInstance) {
  const { maxAgeDays, sweepMs, batchSize } = app.chatConfig.retention
  const holder = app.chatHub.nodeId
  const leaseMs = Math.max(1000, sweepMs * 3)
  const erasedTotal = new Counter({ name: 'chat_retention_erased_total', help: 'messages erased by retention', registers: [app.chatMetrics.registry] })
  let held = false

  const job = new PeriodicJob({
    run: async () => {
      held = await takeLease(app.chatDb, LEASE_NAME, holder, leaseMs)
      if (!held) return sweepMs
      let sweepErased = 0
      for (let batch = 0; batch < MAX_BATCHES_PER_SWEEP && !job.stopped; batch += 1) {
        const erased = await eraseExpired(app.chatDb, maxAgeDays, batchSize)
        erasedTotal.inc(erased)
        sweepErased += erased
        if (erased < batchSize) break
      }
      // Each erasure queued its message for search: its entry loses its words now, not at the next poll.
      if (sweepErased > 0) app.chatSearchIndexer.wake()
      return sweepMs
    },
    onError: (error) => {
      app.log.warn({ err: error }, 'retention: a sweep failed')
      return sweepMs
    },
  })

  app.addHook('onReady', async () => { job.start() })
  app.addHook('onClose', async () => {
    await job.stop()
    if (held) await releaseLease(app.chatDb, LEASE_NAME, holder).catch((error: unknown) => app.log.warn({ err: error }, 'retention: lease release failed'))
  })
}, { name: 'chat-retention', fastify: '5.x', dependencies: ['chat-config', 'chat-database', 'chat-hub', 'chat-metrics', 'chat-search-indexer'] })
