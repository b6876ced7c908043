import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter } from 'prom-client'
import { indexQueuedMessages } from '../../db/queries/message-search.js'

/** Queue rows per statement: large enough that a burst is worked off in a few round trips, small enough to keep each transaction short. */
export const SEARCH_INDEX_BATCH = 1000
/** Pause between statements once the queue is empty: with the statement's own time, the bound on search lag under normal load. */
export const SEARCH_INDEX_IDLE_MS = 200

/**
 * The search indexer (docs/messaging.md#search): on every node, statements that move queued messages
 * into message_search, one after another while a full batch comes back, then a pause of
 * SEARCH_INDEX_IDLE_MS. No lease: nodes share the queue by SKIP LOCKED, so a node that stops (or dies
 * mid-batch, whose rows go back to the queue) leaves the work to the others with no takeover delay.
 */
export const searchIndexerPlugin = fp(async function searchIndexerPlugin (app: FastifyInstance) {
  const indexed = new Counter({ name: 'chat_search_indexed_total', help: 'queued message changes indexed for search (by this node)', registers: [app.chatMetrics.registry] })
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  let running: Promise<void> = Promise.resolve()

  async function work (): Promise<void> {
    let full = false
    try {
      const done = await indexQueuedMessages(app.chatDb, SEARCH_INDEX_BATCH)
      indexed.inc(done.taken)
      full = done.taken === SEARCH_INDEX_BATCH
    } catch (error) {
      app.log.warn({ err: error }, 'search indexer: a batch failed')
    } finally {
      if (!stopped) timer = setTimeout(() => { running = work() }, full ? 0 : SEARCH_INDEX_IDLE_MS)
    }
  }

  app.addHook('onReady', async () => { running = work() })
  app.addHook('onClose', async () => {
    stopped = true
    clearTimeout(timer)
    await running
  })
}, { name: 'chat-search-indexer', fastify: '5.x', dependencies: ['chat-config', 'chat-database', 'chat-metrics'] })
