import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { RedisConnection } from '../../lib/redis-connection.js'
import type { Broker } from '../../lib/broker/types.js'
import { MemoryBroker } from '../../lib/broker/memory.js'
import { RedisBroker } from '../../lib/broker/redis.js'

export type { Broker, BrokerHandler } from '../../lib/broker/types.js'
export { MemoryBroker } from '../../lib/broker/memory.js'
export { RedisBroker, redactRedisUrl } from '../../lib/broker/redis.js'
export type { RedisConnection } from '../../lib/redis-connection.js'

declare module 'fastify' {
  interface FastifyInstance {
    chatBroker: Broker
    /**
     * The broker's command connection, for the other Redis users (presence, rate limits, slow mode,
     * typing, the feed's stream); a Cluster on a Redis Cluster; null without Redis.
     */
    chatRedis: RedisConnection | null
  }
}

export interface BrokerPluginOptions {
  /** How long startup waits for Redis before failing; the `connectTimeoutMs` option (5 s) by default. */
  readyTimeoutMs?: number
  /** Redis 7 sharded pub/sub (SPUBLISH / SSUBSCRIBE); the `redisSharded` option by default, always on for a Redis Cluster. */
  sharded?: boolean
}

/**
 * Chooses the bus between nodes: Redis when the host gave a URL or a client, otherwise the in-process
 * one, which is correct for exactly one node.
 */
export const brokerPlugin = fp(async function brokerPlugin (app: FastifyInstance, opts: BrokerPluginOptions) {
  const { redis: url, redisPrefix } = app.chatConfig
  const client = app.chatHooks.redisClient
  const onError = (error: unknown, context: string): void => { app.log.warn({ err: error }, context) }

  // A host's client wins over a URL: the host chose that connection (TLS, auth, sentinel) itself.
  const common = { prefix: redisPrefix, sharded: opts.sharded ?? app.chatConfig.redisSharded ?? false, onError }
  const redisBroker = client !== undefined
    ? new RedisBroker({ ...common, client })
    : url !== undefined ? new RedisBroker({ ...common, url }) : null

  let broker: Broker
  if (redisBroker !== null) {
    try {
      await redisBroker.ready(opts.readyTimeoutMs ?? app.chatConfig.connectTimeoutMs)
    } catch (error) {
      // Without this the reconnecting sockets would keep the failed process alive.
      await redisBroker.close()
      throw new Error(`chat: cannot start, ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
    app.log.debug({ redis: redisBroker.description, sharded: common.sharded }, 'chat broker: redis')
    broker = redisBroker
  } else {
    broker = new MemoryBroker({ onError })
  }

  app.decorate('chatBroker', broker)
  // Type arguments spelt out: inferred, fastify's decorate narrows the Redis | Cluster union to Redis.
  const chatRedis: RedisConnection | null = redisBroker?.client ?? null
  app.decorate<RedisConnection | null, 'chatRedis'>('chatRedis', chatRedis)
  app.addHook('onClose', async () => { await broker.close() })
}, { name: 'chat-broker', fastify: '5.x', dependencies: ['chat-config'] })
