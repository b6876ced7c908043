import { Command, type Cluster, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { Broker, BrokerHandler } from './types.js'
import { reportAsWarning } from './memory.js'
import { shardBatches } from './slot-batches.js'
import { ChannelSubscriptions } from './channel-subscriptions.js'
import { SubscribeTurns } from './subscribe-turns.js'
import { describeClient, quit, waitForReady } from './connection-life.js'
import { clusterFromUrl, isCluster, isClusterUrl, redactRedisUrl, redisFromUrl, type RedisConnection } from '../redis-connection.js'
import { SharedTimeout, withTimeout } from '../deadline.js'
import { chatError, isChatError, refusals } from '../../plugins/core/errors.js'

interface RedisBrokerCommonOptions {
  /** Prepended to every channel name; the suite's `redisPrefix`. */
  prefix?: string
  /**
   * Redis 7 sharded pub/sub (SPUBLISH / SSUBSCRIBE): a channel lives on one shard of a cluster instead of
   * being broadcast to every node of it. Channel names carry a hash tag so that a room stays on one shard.
   * Always on for a Redis Cluster: classic PUBLISH there is broadcast to every node of every shard.
   */
  sharded?: boolean
  /** Upper bound of a publish or ping, so that a caller learns UNAVAILABLE instead of waiting. */
  commandTimeoutMs?: number
  /** Receives handler exceptions, failed upstream unsubscribes and connection errors. */
  onError?: (error: unknown, context: string) => void
}

export type RedisBrokerOptions = RedisBrokerCommonOptions & (
  /** `redis://…`, `redis+cluster://host:port,host:port` for a Redis Cluster, `redis+sentinel://…/name` (lib/redis-connection.ts). */
  | { url: string, client?: undefined, redisOptions?: RedisOptions }
  | { client: RedisConnection, url?: undefined, redisOptions?: undefined }
)

// Commands must fail instead of waiting for a Redis that may never come back: no offline queue, and
// commands in flight when the connection drops are rejected at once rather than replayed later (a
// replayed SUBSCRIBE or UNSUBSCRIBE would undo what the reference count decided in between).
const FAIL_FAST: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  // Replaying the subscriptions after a reconnect is ioredis' job; onReconnect relies on it.
  autoResubscribe: true,
  lazyConnect: false,
}

// The same for a cluster: no offline queue (the cluster's own and each node's), no replay. MOVED, ASK
// and a primary lost in a failover are still retried by the cluster client, within maxRedirections ×
// retryDelayOnFailover; the callers bound every command anyway.
const CLUSTER_FAIL_FAST: ClusterOptions = {
  enableOfflineQueue: false,
  // Replaced primaries and moved slots are learnt without waiting for a MOVED: what the sharded
  // subscribers follow (they resubscribe where the slot went).
  slotsRefreshInterval: 1000,
  redisOptions: { maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false },
}

const DEFAULT_COMMAND_TIMEOUT_MS = 1000

/** ARGV: channel, payload, channel, payload, ... Redis caches the compiled script by its text's hash. */
const PUBLISH_MANY = "for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end return #ARGV / 2"

/**
 * KEYS: shard channels of one slot; ARGV: their payloads. Declared as keys, so that the cluster routes
 * the script to the slot's primary and Redis checks that it touches that one slot only.
 */
const SPUBLISH_SLOT = "for i = 1, #KEYS do redis.call('SPUBLISH', KEYS[i], ARGV[i]) end return #KEYS"

/**
 * The broker between nodes, over Redis pub/sub. One connection publishes (and is shared with the other
 * Redis users of the suite as `client`); a second one, a duplicate, is in subscriber mode, where Redis
 * accepts no other command.
 */
export class RedisBroker implements Broker {
  readonly kind = 'redis' as const
  /** The command connection: the host's client when one was given, else one of ours. */
  readonly client: RedisConnection
  /** A duplicate of the client: a Redis in subscriber mode, or a Cluster with one subscriber per primary. */
  readonly #subscriber: RedisConnection
  readonly #ownsClient: boolean
  readonly #prefix: string
  readonly #sharded: boolean
  readonly #timeoutMs: number
  readonly #onError: (error: unknown, context: string) => void
  readonly #description: string
  readonly #publishTimeout: SharedTimeout
  readonly #subscriptions: ChannelSubscriptions
  readonly #reconnectListeners: Array<() => void> = []
  readonly #disconnectListeners: Array<() => void> = []
  #subscriberWasReady = false
  /** Whether the subscriber connection is up, as far as its last 'ready' or 'close' said. */
  #subscriberUp = false
  #closed = false

  constructor (options: RedisBrokerOptions) {
    this.#prefix = options.prefix ?? 'chat:'
    const cluster = options.client !== undefined ? isCluster(options.client) : isClusterUrl(options.url)
    this.#sharded = cluster || (options.sharded ?? false)
    this.#timeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
    this.#onError = options.onError ?? reportAsWarning
    if (options.client !== undefined) {
      this.client = options.client
      this.#ownsClient = false
      this.#description = describeClient(options.client)
      // A lazy host client connects on its first command, but fail-fast publishes never send one.
      if (options.client.status === 'wait') options.client.connect().catch(() => {})
    } else {
      // Auto-pipelining for the other users of this connection (the presence store's scripts arrive in
      // bursts when many sockets connect at once); publishes bypass it (see #publishNow).
      this.client = cluster
        ? clusterFromUrl(options.url, { enableAutoPipelining: true, ...CLUSTER_FAIL_FAST })
        : redisFromUrl(options.url, { enableAutoPipelining: true, ...options.redisOptions, ...FAIL_FAST })
      this.#ownsClient = true
      this.#description = redactRedisUrl(options.url)
      this.#reportFirstError(this.client, `Redis at ${this.#description}`)
    }
    // keyPrefix must stay the client's: in sharded mode both sides prefix the shard channel with it.
    this.#subscriber = isCluster(this.client)
      // ioredis keeps one subscriber connection per primary, sends each SSUBSCRIBE to the primary that
      // owns its slot, and after a failover or a MOVED resubscribes the slot's channels where it went.
      ? this.client.duplicate(undefined, { shardedSubscribers: true, enableOfflineQueue: false, enableAutoPipelining: false, slotsRefreshInterval: 1000 })
      : this.client.duplicate({ ...FAIL_FAST, enableAutoPipelining: false })
    const turns = new SubscribeTurns(this.#subscriber, this.#sharded)
    this.#subscriptions = new ChannelSubscriptions({
      upstreamName: (channel) => this.#upstreamName(channel),
      // ioredis reports sharded messages under the channel name with its keyPrefix applied (the shard
      // channel is a key to it), plain messages without.
      receivedPrefix: this.#sharded ? String(this.#subscriber.options.keyPrefix ?? '') : '',
      change: async (name, subscribe) => {
        this.#assertUsable(this.#subscriber, subscribe ? 'subscribe' : 'unsubscribe')
        await turns.change(name, subscribe)
      },
      bounded: async (waiting, what) => { await this.#bounded(waiting, what) },
      onError: this.#onError,
    })
    this.#reportFirstError(this.#subscriber, `Redis subscriber at ${this.#description}`)
    const subscriptions = this.#subscriptions
    this.#subscriber.on(this.#sharded ? 'smessage' : 'message', (name: string, payload: string) => {
      subscriptions.deliver(name, payload)
    })
    this.#subscriber.on('ready', () => { this.#subscriberReady() })
    this.#subscriber.on('close', () => { this.#subscriberLost() })
    if (isCluster(this.#subscriber)) {
      // A shard's subscriber connection replaced (its primary died or lost the slots): that shard's
      // messages may be missed until the group has resubscribed on the new owner and says so.
      this.#subscriber.on('-subscriber', () => { this.#subscriberLost() })
      this.#subscriber.on('subscribersReady', () => { this.#subscriberReady() })
    }
    this.#publishTimeout = new SharedTimeout(this.#timeoutMs, () => this.#timedOut('publish'))
  }

  /** Where this broker connects, without credentials: for log lines and startup errors. */
  get description (): string {
    return this.#description
  }

  /** Resolves once both connections are ready; rejects after timeoutMs (Redis unreachable). */
  async ready (timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (const connection of [this.client, this.#subscriber]) {
      await waitForReady(connection, deadline - Date.now(), this.#description)
    }
  }

  /**
   * Rejects with UNAVAILABLE when Redis is not connected or does not answer in time. A publish that
   * timed out may still be delivered later; receivers order and deduplicate by the payload's seq.
   */
  async publish (channel: string, payload: string): Promise<void> {
    await this.#publishNow(this.#sharded ? 'spublish' : 'publish', [this.#upstreamName(channel), payload])
  }

  /**
   * A group-commit batch's frames in one command: a script that publishes each of them, instead of one
   * PUBLISH (a command object, a reply, a promise) per frame. On a cluster, one script per hash slot (a
   * script may touch one slot) and one pipeline per primary. Sharded publishes to one server go one by
   * one (they exist to test the channel names a cluster gets).
   */
  async publishMany (messages: ReadonlyArray<readonly [channel: string, payload: string]>): Promise<void> {
    if (messages.length === 0) return
    if (isCluster(this.client) && messages.length > 1) {
      await this.#publishPerShard(this.client, messages)
      return
    }
    if (this.#sharded || messages.length === 1) {
      await Promise.all(messages.map(([channel, payload]) => this.publish(channel, payload)))
      return
    }
    const args: Array<string | number> = [PUBLISH_MANY, 0]
    for (const [channel, payload] of messages) args.push(this.#upstreamName(channel), payload)
    await this.#publishNow('eval', args)
  }

  /**
   * One pipeline per primary, each with one command per slot: SPUBLISH for a lone frame, else the
   * SPUBLISH_SLOT script. Pipelines are not auto-pipelined: they are written at once. A slot that moved
   * since the client's table was read is retried by ioredis (MOVED), command by command.
   */
  async #publishPerShard (cluster: Cluster, messages: ReadonlyArray<readonly [channel: string, payload: string]>): Promise<void> {
    this.#assertUsable(cluster, 'publish')
    const named = messages.map(([channel, payload]) => [this.#upstreamName(channel), payload] as const)
    const runs = shardBatches(cluster, named).map(async ({ slots }) => {
      const pipeline = cluster.pipeline()
      for (const { channels, payloads } of slots) {
        if (channels.length === 1) pipeline.spublish(channels[0] as string, payloads[0] as string)
        else pipeline.eval(SPUBLISH_SLOT, channels.length, ...channels, ...payloads)
      }
      const replies = await pipeline.exec()
      for (const [error] of replies ?? []) if (error !== null) throw error
    })
    await this.#bounded(Promise.all(runs), 'publish', this.#publishTimeout)
  }

  /**
   * Writes a publish to the connection now, never auto-pipelined. An auto-pipelined command waits for
   * setImmediate: after the rest of the tick's I/O callbacks and the socket writes they made (1–5 ms
   * while a node fans out to hundreds of sockets, measured), a delay every other node would add to its
   * latency. Written at once, publishes also leave in the order they were made, whatever their kind (a
   * user control is not overtaken by a room frame published after it).
   */
  async #publishNow (name: string, args: Array<string | number>): Promise<void> {
    this.#assertUsable(this.client, 'publish')
    // The options the client's own command methods give (keyPrefix: a shard channel is a key).
    const command = new Command(name, args, { keyPrefix: this.client.options.keyPrefix, replyEncoding: 'utf8' })
    this.client.sendCommand(command)
    // Publishes are the hot path (one per room frame): they share timers instead of arming one each.
    await this.#bounded(command.promise, 'publish', this.#publishTimeout)
  }

  /**
   * The first handler of a channel subscribes it upstream; the SUBSCRIBEs of one turn go to Redis as one
   * command (lib/broker/subscribe-turns.ts).
   */
  async subscribe (channel: string, handler: BrokerHandler): Promise<void> {
    if (this.#closed) throw refusals.brokerClosed()
    await this.#subscriptions.subscribe(channel, handler)
  }

  async unsubscribe (channel: string, handler: BrokerHandler): Promise<void> {
    await this.#subscriptions.unsubscribe(channel, handler)
  }

  subscribedChannels (): string[] {
    return this.#subscriptions.subscribedChannels()
  }

  async ping (): Promise<void> {
    // A working command connection with a dead subscriber still loses every broadcast.
    this.#assertUsable(this.#subscriber, 'ping')
    this.#assertUsable(this.client, 'ping')
    await this.#bounded(this.client.ping(), 'ping')
  }

  onReconnect (listener: () => void): void {
    this.#reconnectListeners.push(listener)
  }

  onDisconnect (listener: () => void): void {
    this.#disconnectListeners.push(listener)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    // Let upstream changes already sent finish, so that quitting does not race their replies; a Redis
    // that does not answer is not waited for.
    await this.#bounded(this.#subscriptions.settled(), 'close').catch(() => {})
    this.#subscriptions.clear()
    this.#reconnectListeners.length = 0
    this.#disconnectListeners.length = 0
    const closing = [quit(this.#subscriber, this.#timeoutMs)]
    if (this.#ownsClient) closing.push(quit(this.client, this.#timeoutMs))
    await Promise.all(closing)
  }

  #upstreamName (channel: string): string {
    return this.#sharded ? `${this.#prefix}{${channel}}` : `${this.#prefix}${channel}`
  }

  #subscriberReady (): void {
    // A cluster says ready and subscribersReady for one start; a reconnect is only one after a loss.
    if (this.#subscriberUp) return
    this.#subscriberUp = true
    if (!this.#subscriberWasReady) {
      this.#subscriberWasReady = true
      return
    }
    // ioredis wrote the SUBSCRIBE commands of the previous connection before emitting 'ready'; a PING
    // queued behind them is answered only after all of them, so the listeners run once every old
    // subscription is live again. A cluster's PING would go to some node, not behind the SSUBSCRIBEs:
    // its group wrote them before 'subscribersReady', and the catch-up the listeners start reads the
    // database afterwards (a frame missed in between is a gap the next push of its room reveals).
    const settled = isCluster(this.#subscriber) ? Promise.resolve() : this.#subscriber.ping().then(() => {})
    settled.then(() => {
      if (this.#closed) return
      this.#subscriptions.reconcileAll()
      for (const listener of this.#reconnectListeners) {
        try {
          listener()
        } catch (error) {
          this.#onError(error, 'broker reconnect listener')
        }
      }
    }, (error: unknown) => this.#onError(error, `Redis subscriber at ${this.#description} after reconnect`))
  }

  /** Once per outage: ioredis emits 'close' again after each failed reconnection attempt. */
  #subscriberLost (): void {
    if (!this.#subscriberUp || this.#closed) return
    this.#subscriberUp = false
    for (const listener of this.#disconnectListeners) {
      try {
        listener()
      } catch (error) {
        this.#onError(error, 'broker disconnect listener')
      }
    }
  }

  // ioredis emits an error for every failed reconnection attempt; one report per outage is enough.
  #reportFirstError (connection: RedisConnection, context: string): void {
    let reported = false
    connection.on('ready', () => { reported = false })
    connection.on('error', (error: unknown) => {
      if (reported) return
      reported = true
      this.#onError(error, context)
    })
  }

  #assertUsable (connection: RedisConnection, what: string): void {
    if (this.#closed) throw chatError('UNAVAILABLE', `broker closed (${what})`)
    if (connection.status !== 'ready') {
      throw chatError('UNAVAILABLE', `Redis at ${this.#description} is not connected (${what}: ${connection.status})`)
    }
  }

  async #bounded<T> (command: Promise<T>, what: string, shared?: SharedTimeout): Promise<T> {
    try {
      return await (shared !== undefined ? shared.race(command) : withTimeout(command, this.#timeoutMs, () => this.#timedOut(what)))
    } catch (error) {
      if (isChatError(error)) throw error
      const wrapped = chatError('UNAVAILABLE', `Redis at ${this.#description} ${what} failed: ${error instanceof Error ? error.message : String(error)}`)
      wrapped.cause = error
      throw wrapped
    }
  }

  #timedOut (what: string): Error {
    return chatError('UNAVAILABLE', `Redis at ${this.#description} did not answer ${what} within ${this.#timeoutMs} ms`)
  }
}

export { redactRedisUrl }
