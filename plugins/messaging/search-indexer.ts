import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter } from 'prom-client'
import { indexQueuedMessages } from '../../db/queries/message-search.js'
import { PeriodicJob } from '../../lib/periodic-job.js'

/** Queue rows per statement: large enough that a burst is worked off in a few round trips, small enough to keep each transaction short. */
export const SEARCH_INDEX_BATCH = 1000
/**
 * From a wake to the statement: under load the commits of many send batches share one statement (at
 * most one per this and a statement's time, as the 200 ms poll this replaced allowed) instead of one each.
 */
export const SEARCH_INDEX_WAKE_MS = 100
/** After a failed statement (its rows are back in the queue): soon, but not in a tight loop while the database is away. */
export const SEARCH_INDEX_RETRY_MS = 1000

/** What the writers of messages tell the indexer. */
export interface SearchIndexer {
  /** This node committed changes that queued rows: index them within SEARCH_INDEX_WAKE_MS. */
  wake (): void
}

declare module 'fastify' {
  interface FastifyInstance {
    chatSearchIndexer: SearchIndexer
  }
}

/**
 * The search indexer (docs/messaging.md#search): on every node, statements that move queued messages
 * into message_search, one after another while a full batch comes back. Woken by this node's own
 * commits (sends, edits, deletes, retention), so an idle node runs no statement but the safety-net poll
 * every searchIndexPollMs, which picks up what others queued: a node that died before its rows were
 * indexed, SQL written outside the suite. No lease: nodes share the queue by SKIP LOCKED, so a node
 * that stops (or dies mid-batch, whose rows go back to the queue) leaves the work to the others.
 */
export const searchIndexerPlugin = fp(async function searchIndexerPlugin (app: FastifyInstance) {
  const indexed = new Counter({ name: 'chat_search_indexed_total', help: 'queued message changes indexed for search (by this node)', registers: [app.chatMetrics.registry] })
  const pollMs = app.chatConfig.searchIndexPollMs
  const job = new PeriodicJob({
    run: async () => {
      const done = await indexQueuedMessages(app.chatDb, SEARCH_INDEX_BATCH)
      indexed.inc(done.taken)
      return done.taken === SEARCH_INDEX_BATCH ? 0 : pollMs
    },
    onError: (error) => {
      app.log.warn({ err: error }, 'search indexer: a batch failed')
      return Math.min(SEARCH_INDEX_RETRY_MS, pollMs)
    },
    wakeDelayMs: SEARCH_INDEX_WAKE_MS,
  })
  app.decorate('chatSearchIndexer', { wake: () => { job.wake() } })
  app.addHook('onReady', async () => { job.start() })
  app.addHook('onClose', async () => { await job.stop() })
}, { name: 'chat-search-indexer', fastify: '5.x', dependencies: ['chat-config', 'chat-database', 'chat-metrics'] })
