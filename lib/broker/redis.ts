import { Command, type Cluster, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { Broker, BrokerHandler } from './types.js'
import { reportAsWarning } from './memory.js'
import { shardBatches } from './slot-batches.js'
import { clusterFromUrl, isCluster, isClusterUrl, isSentinelClient, redactRedisUrl, redisFromUrl, type RedisConnection } from '../redis-connection.js'
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

interface ChannelState {
  readonly channel: string
  readonly upstreamName: string
  // handler -> registrations: delivered once per payload, removed by as many unsubscribes.
  readonly handlers: Map<BrokerHandler, number>
  /** Whether Redis has this connection subscribed to the channel, as far as the last reply said. */
  upstream: boolean
  /** Upstream changes of one channel run one after another, so SUBSCRIBE and UNSUBSCRIBE never cross. */
  tail: Promise<void>
  pending: number
}

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
  readonly #channels = new Map<string, ChannelState>()
  readonly #byUpstreamName = new Map<string, ChannelState>()
  // ioredis reports sharded messages under the channel name with its keyPrefix applied (the shard
  // channel is a key to it), plain messages without.
  readonly #receivedPrefix: string
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
    this.#receivedPrefix = this.#sharded ? String(this.#subscriber.options.keyPrefix ?? '') : ''
    this.#reportFirstError(this.#subscriber, `Redis subscriber at ${this.#description}`)
    this.#subscriber.on(this.#sharded ? 'smessage' : 'message', (name: string, payload: string) => {
      this.#deliver(name, payload)
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

  async subscribe (channel: string, handler: BrokerHandler): Promise<void> {
    if (this.#closed) throw refusals.brokerClosed()
    const state = this.#state(channel)
    state.handlers.set(handler, (state.handlers.get(handler) ?? 0) + 1)
    try {
      await this.#bounded(this.#reconcile(state), 'subscribe')
    } catch (error) {
      // This subscriber is told it failed, so it must not stay registered and receive anything later.
      removeOne(state.handlers, handler)
      // A run still waiting for Redis sees the removal itself; one that just succeeded needs undoing.
      if (state.pending === 0 && state.upstream !== state.handlers.size > 0) this.#reconcileInBackground(state)
      else this.#forgetIfIdle(state)
      throw error
    }
  }

  async unsubscribe (channel: string, handler: BrokerHandler): Promise<void> {
    const state = this.#channels.get(channel)
    if (state === undefined || !removeOne(state.handlers, handler)) return
    try {
      await this.#bounded(this.#reconcile(state), 'unsubscribe')
    } catch (error) {
      // The handler is gone locally, which is all the caller asked for; the upstream subscription that
      // is left over is dropped by the reconciliation after the next reconnect.
      this.#onError(error, `unsubscribe ${channel}`)
    }
  }

  subscribedChannels (): string[] {
    const channels: string[] = []
    for (const state of this.#channels.values()) if (state.upstream) channels.push(state.channel)
    return channels
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
    await this.#bounded(Promise.all([...this.#channels.values()].map((state) => state.tail)), 'close').catch(() => {})
    this.#channels.clear()
    this.#byUpstreamName.clear()
    this.#reconnectListeners.length = 0
    this.#disconnectListeners.length = 0
    const closing = [quit(this.#subscriber, this.#timeoutMs)]
    if (this.#ownsClient) closing.push(quit(this.client, this.#timeoutMs))
    await Promise.all(closing)
  }

  #upstreamName (channel: string): string {
    return this.#sharded ? `${this.#prefix}{${channel}}` : `${this.#prefix}${channel}`
  }

  #state (channel: string): ChannelState {
    let state = this.#channels.get(channel)
    if (state === undefined) {
      const upstreamName = this.#upstreamName(channel)
      state = { channel, upstreamName, handlers: new Map(), upstream: false, tail: Promise.resolve(), pending: 0 }
      this.#channels.set(channel, state)
      this.#byUpstreamName.set(this.#receivedPrefix + upstreamName, state)
    }
    return state
  }

  /**
   * Brings the upstream subscription in line with the handlers, queued behind the channel's earlier
   * changes. Each caller gets its own attempt, so a failure is reported to the caller it concerns and a
   * later caller tries again. The command itself is not timed out here: `upstream` must only change on
   * Redis' answer, and a dropped connection rejects it anyway (maxRetriesPerRequest 0).
   */
  #reconcile (state: ChannelState): Promise<void> {
    state.pending++
    const run = state.tail.then(async () => {
      // Handlers may come and go while a command is on the wire; loop until the answer matches them.
      for (;;) {
        const wanted = state.handlers.size > 0
        if (wanted === state.upstream) return
        this.#assertUsable(this.#subscriber, wanted ? 'subscribe' : 'unsubscribe')
        const name = state.upstreamName
        if (wanted) await (this.#sharded ? this.#subscriber.ssubscribe(name) : this.#subscriber.subscribe(name))
        else await (this.#sharded ? this.#subscriber.sunsubscribe(name) : this.#subscriber.unsubscribe(name))
        state.upstream = wanted
      }
    })
    const settled = run.finally(() => {
      state.pending--
      this.#forgetIfIdle(state)
    })
    state.tail = settled.catch(() => {})
    return settled
  }

  #reconcileInBackground (state: ChannelState): void {
    this.#reconcile(state).catch((error: unknown) => this.#onError(error, `reconcile ${state.channel}`))
  }

  #forgetIfIdle (state: ChannelState): void {
    // A state with queued work must survive, or a new subscribe would start a second, unordered queue.
    if (state.pending > 0 || state.upstream || state.handlers.size > 0) return
    if (this.#channels.get(state.channel) === state) this.#channels.delete(state.channel)
    this.#byUpstreamName.delete(this.#receivedPrefix + state.upstreamName)
  }

  #deliver (receivedName: string, payload: string): void {
    const state = this.#byUpstreamName.get(receivedName)
    if (state === undefined) return
    for (const handler of state.handlers.keys()) {
      try {
        handler(payload)
      } catch (error) {
        this.#onError(error, `broker handler of ${state.channel}`)
      }
    }
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
      // Unsubscribes that failed while Redis was down were resubscribed by ioredis: drop them now.
      for (const state of this.#channels.values()) {
        if (state.upstream !== state.handlers.size > 0) this.#reconcileInBackground(state)
      }
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

function removeOne (handlers: Map<BrokerHandler, number>, handler: BrokerHandler): boolean {
  const count = handlers.get(handler)
  if (count === undefined) return false
  if (count > 1) handlers.set(handler, count - 1)
  else handlers.delete(handler)
  return true
}

async function waitForReady (connection: RedisConnection, timeoutMs: number, description: string): Promise<void> {
  if (connection.status === 'ready') return
  if (connection.status === 'end') throw new Error(`Redis at ${description}: connection closed`)
  await new Promise<void>((resolve, reject) => {
    let lastError: unknown
    const onError = (error: unknown): void => { lastError = error }
    const onReady = (): void => { done(); resolve() }
    const onEnd = (): void => { done(); reject(new Error(`Redis at ${description}: connection closed`)) }
    const timer = setTimeout(() => {
      done()
      const reason = lastError instanceof Error ? `: ${lastError.message}` : ''
      reject(new Error(`Redis at ${description} unreachable: not ready within ${Math.max(0, timeoutMs)} ms${reason}`, { cause: lastError }))
    }, Math.max(0, timeoutMs))
    function done (): void {
      clearTimeout(timer)
      connection.off('ready', onReady)
      connection.off('error', onError)
      connection.off('end', onEnd)
    }
    connection.on('ready', onReady)
    connection.on('error', onError)
    connection.on('end', onEnd)
  })
}

async function quit (connection: RedisConnection, timeoutMs: number): Promise<void> {
  if (connection.status === 'end') return
  if (connection.status === 'reconnecting') {
    // No socket, only a timer to the next attempt: cancelling it is all, and no 'end' would follow.
    connection.disconnect()
    return
  }
  // Resolving on 'end' rather than on QUIT's reply: the socket is gone when close() returns.
  const ended = new Promise<void>((resolve) => { connection.once('end', () => { resolve() }) })
  if (connection.status === 'ready') {
    // QUIT lets Redis answer what is in flight; a server that does not answer within the bound is cut.
    connection.quit().catch(() => { connection.disconnect() })
  } else {
    connection.disconnect()
  }
  // `ended` never rejects: a rejection here is the bound passing.
  await withTimeout(ended, timeoutMs, () => new Error('Redis did not close in time')).catch(() => { connection.disconnect() })
}

export { redactRedisUrl }

function describeClient (client: RedisConnection): string {
  if (isCluster(client)) return `a Redis Cluster (host client, ${client.nodes('master').length} primaries known)`
  if (isSentinelClient(client)) return `the primary "${client.options.name ?? ''}" behind ${client.options.sentinels?.length ?? 0} Sentinels (host client)`
  const { host, port, path, db } = client.options
  const where = path !== undefined && path !== null && path !== '' ? path : `${host ?? '127.0.0.1'}:${port ?? 6379}`
  return `redis://${where}${db !== undefined && db !== 0 ? `/${db}` : ''} (host client)`
}
