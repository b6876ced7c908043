import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge } from 'prom-client'
import { FEED_RABBITMQ_EXCHANGE } from '../core/config.js'
import { releaseLease, takeLease } from '../../db/queries/leases.js'
import { PeriodicJob } from '../../lib/periodic-job.js'
import { FeedRelay } from './relay.js'
import { RabbitMqSink } from './sinks/rabbitmq.js'
import { RedisStreamSink } from './sinks/redis-stream.js'
import { WebhookSink } from './sinks/webhook.js'
import type { FeedSink } from './types.js'

export type { FeedEntry, FeedSink } from './types.js'

const LEASE_NAME = 'relay'
const IDLE_MS = 100
const PRUNE_EVERY_MS = 60_000

/** What the feed relay shows of itself (tests and health). */
export interface FeedRelayState {
  /** Whether this node holds the lease and relays now. */
  relaying (): boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    chatFeed: FeedRelayState | null
  }
}

/**
 * The feed relay (protocol 11.4, docs/feed.md): under the lease, moves the outbox into the feed, delivers
 * to the sinks from their positions and prunes. With `feed: false` nothing starts.
 */
export const feedPlugin = fp(async function feedPlugin (app: FastifyInstance) {
  const configured = app.chatConfig.feed
  if (configured === false) {
    app.decorate('chatFeed', null)
    return
  }
  const options = configured
  const log = app.log.child({ concern: 'feed' })
  const holder = app.chatHub.nodeId
  const sinks: FeedSink[] = []
  if (options.redisStream !== false) {
    if (app.chatRedis === null) throw new Error('feed.redisStream needs redis')
    const maxLen = options.redisStream === true ? 1_000_000 : options.redisStream.maxLen
    sinks.push(new RedisStreamSink(app.chatRedis, app.chatConfig.redisPrefix, maxLen))
  }
  if (options.rabbitmq !== undefined) {
    sinks.push(await RabbitMqSink.create({ url: options.rabbitmq.url, exchange: options.rabbitmq.exchange ?? FEED_RABBITMQ_EXCHANGE }))
  }
  for (const webhook of options.webhooks) sinks.push(new WebhookSink(webhook))

  const registry = app.chatMetrics.registry
  const movedCounter = new Counter({ name: 'chat_feed_moved_total', help: 'outbox rows moved into the feed', registers: [registry] })
  const deliveredCounter = new Counter({ name: 'chat_feed_delivered_total', help: 'feed entries confirmed by a sink', labelNames: ['sink'], registers: [registry] })
  // Every failure is retried after a backoff, or parks its batch: this counts the retries too.
  const failedCounter = new Counter({ name: 'chat_feed_delivery_failures_total', help: 'failed feed deliveries (each retried, or parked)', labelNames: ['sink'], registers: [registry] })
  const parkedCounter = new Counter({ name: 'chat_feed_parked_total', help: 'feed entries a sink gave up on after its maximum age (chat.feed_parked)', labelNames: ['sink'], registers: [registry] })
  const relay = new FeedRelay({
    db: app.chatDb,
    sinks,
    batchSize: options.batchSize,
    keepHours: options.keepHours,
    statusOf: app.chatPresenceStore.statusOf,
    observer: {
      moved: (count) => movedCounter.inc(count),
      delivered: (sink, count) => deliveredCounter.inc({ sink }, count),
      failed: (sink) => failedCounter.inc({ sink }),
      parked: (sink, count) => parkedCounter.inc({ sink }, count),
    },
    onError: (error, what) => log.warn({ err: error }, what),
  })
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'chat_feed_lag',
    help: 'newest feed id minus the sink position (on the relaying node)',
    labelNames: ['sink'],
    registers: [registry],
    collect () {
      for (const { sink, position } of relay.positions()) if (position !== null) this.set({ sink }, Math.max(0, relay.newestId - position))
    },
  })

  // The lease is held until heldUntil by this node's clock, counted from before the statement that took
  // it: a node that cannot renew stops relaying before its lease could have expired on the database.
  let heldUntil = 0
  let lastPrune = 0
  const holding = (): boolean => !lease.stopped && Date.now() < heldUntil

  const lease = new PeriodicJob({
    run: async () => {
      const started = Date.now()
      const had = heldUntil > 0
      heldUntil = await takeLease(app.chatDb, LEASE_NAME, holder, options.leaseMs) ? started + options.leaseMs : 0
      // Taken now (at start, or from a node that stopped renewing): relay at once, not after a pause.
      if (!had && heldUntil > 0) relaying.wake()
      return Math.floor(options.leaseMs / 3)
    },
    onError: (error) => {
      heldUntil = 0
      log.warn({ err: error }, 'feed: lease renewal failed, not relaying')
      return Math.floor(options.leaseMs / 3)
    },
  })

  const relaying = new PeriodicJob({
    run: async () => {
      if (!holding()) return IDLE_MS
      const moved = await relay.move()
      const more = holding() && await relay.deliver()
      if (holding() && Date.now() - lastPrune > PRUNE_EVERY_MS) {
        lastPrune = Date.now()
        await relay.prune()
      }
      return moved === options.batchSize || more ? 0 : IDLE_MS
    },
    onError: (error) => {
      log.warn({ err: error }, 'feed: relay step failed')
      return IDLE_MS
    },
  })

  app.addHook('onReady', async () => {
    lease.start()
    relaying.start()
  })
  app.addHook('onClose', async () => {
    const stepping = relaying.stop()
    await lease.stop()
    // Closing the sinks first ends a delivery waiting on a slow webhook, which the step in flight awaits.
    await relay.close()
    await stepping
    const held = heldUntil > 0
    heldUntil = 0
    if (held) await releaseLease(app.chatDb, LEASE_NAME, holder).catch((error: unknown) => log.warn({ err: error }, 'feed: lease release failed'))
  })

  app.decorate('chatFeed', { relaying: holding })
}, { name: 'chat-feed', fastify: '5.x', dependencies: ['chat-config', 'chat-database', 'chat-broker', 'chat-hub', 'chat-metrics', 'chat-presence-store'] })
