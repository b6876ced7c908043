import type { BrokerHandler } from './types.js'
import { HandlerCounts, type HandlerErrorSink } from './handler-counts.js'

interface ChannelState {
  readonly channel: string
  readonly upstreamName: string
  readonly handlers: HandlerCounts
  /** Whether Redis has this connection subscribed to the channel, as far as the last reply said. */
  upstream: boolean
  /** Upstream changes of one channel run one after another, so SUBSCRIBE and UNSUBSCRIBE never cross. */
  tail: Promise<void>
  pending: number
}

export interface ChannelSubscriptionsOptions {
  /** The channel's name on Redis (the prefix, and a hash tag when sharded). */
  upstreamName: (channel: string) => string
  /** What Redis prefixes to the names of the messages it delivers (a sharded channel's keyPrefix). */
  receivedPrefix: string
  /** Sends SUBSCRIBE (true) or UNSUBSCRIBE of one upstream name; resolves on Redis' answer. */
  change: (upstreamName: string, subscribe: boolean) => Promise<void>
  /** Bounds a caller's wait (not the change itself: `upstream` must only change on Redis' answer). */
  bounded: (waiting: Promise<void>, what: string) => Promise<void>
  onError: (error: unknown, context: string) => void
}

/**
 * The reference counts of the broker's channels and their upstream subscriptions: the first handler of a
 * channel subscribes it, removing the last one unsubscribes it, and the changes of one channel are sent
 * one after another, each on Redis' answer to the one before, whatever the handlers did meanwhile.
 */
export class ChannelSubscriptions {
  readonly #channels = new Map<string, ChannelState>()
  readonly #byReceivedName = new Map<string, ChannelState>()
  readonly #onHandlerError: HandlerErrorSink = (error, channel) => this.options.onError(error, `broker handler of ${channel}`)

  constructor (private readonly options: ChannelSubscriptionsOptions) {}

  async subscribe (channel: string, handler: BrokerHandler): Promise<void> {
    const state = this.#state(channel)
    state.handlers.add(handler)
    try {
      await this.options.bounded(this.#reconcile(state), 'subscribe')
    } catch (error) {
      // This subscriber is told it failed, so it must not stay registered and receive anything later.
      state.handlers.remove(handler)
      // A run still waiting for Redis sees the removal itself; one that just succeeded needs undoing.
      if (state.pending === 0 && state.upstream !== state.handlers.size > 0) this.#reconcileInBackground(state)
      else this.#forgetIfIdle(state)
      throw error
    }
  }

  async unsubscribe (channel: string, handler: BrokerHandler): Promise<void> {
    const state = this.#channels.get(channel)
    if (state === undefined || !state.handlers.remove(handler)) return
    try {
      await this.options.bounded(this.#reconcile(state), 'unsubscribe')
    } catch (error) {
      // The handler is gone locally, which is all the caller asked for; the upstream subscription that
      // is left over is dropped by the reconciliation after the next reconnect.
      this.options.onError(error, `unsubscribe ${channel}`)
    }
  }

  subscribedChannels (): string[] {
    const channels: string[] = []
    for (const state of this.#channels.values()) if (state.upstream) channels.push(state.channel)
    return channels
  }

  /** Runs every handler of the channel a message arrived on (by its name as Redis delivered it). */
  deliver (receivedName: string, payload: string): void {
    const state = this.#byReceivedName.get(receivedName)
    if (state === undefined) return
    state.handlers.deliver(payload, state.channel, this.#onHandlerError)
  }

  /** After a reconnect: unsubscribes that failed while Redis was down were resubscribed; drop them now. */
  reconcileAll (): void {
    for (const state of this.#channels.values()) {
      if (state.upstream !== state.handlers.size > 0) this.#reconcileInBackground(state)
    }
  }

  /** Settles once every upstream change already asked for has its answer (or failed). */
  async settled (): Promise<void> {
    await Promise.all([...this.#channels.values()].map((state) => state.tail))
  }

  clear (): void {
    this.#channels.clear()
    this.#byReceivedName.clear()
  }

  #state (channel: string): ChannelState {
    let state = this.#channels.get(channel)
    if (state === undefined) {
      const upstreamName = this.options.upstreamName(channel)
      state = { channel, upstreamName, handlers: new HandlerCounts(), upstream: false, tail: Promise.resolve(), pending: 0 }
      this.#channels.set(channel, state)
      this.#byReceivedName.set(this.options.receivedPrefix + upstreamName, state)
    }
    return state
  }

  /**
   * Brings the upstream subscription in line with the handlers, queued behind the channel's earlier
   * changes. Each caller gets its own attempt, so a failure is reported to the caller it concerns and a
   * later caller tries again. A dropped connection rejects the command (maxRetriesPerRequest 0).
   */
  #reconcile (state: ChannelState): Promise<void> {
    state.pending++
    const run = state.tail.then(async () => {
      // Handlers may come and go while a command is on the wire; loop until the answer matches them.
      for (;;) {
        const wanted = state.handlers.size > 0
        if (wanted === state.upstream) return
        await this.options.change(state.upstreamName, wanted)
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
    this.#reconcile(state).catch((error: unknown) => this.options.onError(error, `reconcile ${state.channel}`))
  }

  #forgetIfIdle (state: ChannelState): void {
    // A state with queued work must survive, or a new subscribe would start a second, unordered queue.
    if (state.pending > 0 || state.upstream || state.handlers.size > 0) return
    if (this.#channels.get(state.channel) === state) this.#channels.delete(state.channel)
    this.#byReceivedName.delete(this.options.receivedPrefix + state.upstreamName)
  }
}
