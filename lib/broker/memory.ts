import type { Broker, BrokerHandler } from './types.js'
import { HandlerCounts, type HandlerErrorSink } from './handler-counts.js'
import { refusals } from '../../plugins/core/errors.js'

export interface MemoryBrokerOptions {
  /** Receives what a handler throws; one bad handler must not stop delivery to the others. */
  onError?: (error: unknown, context: string) => void
}

/**
 * The single-node bus: no process boundary to cross, so a publish only reaches this broker's own
 * subscribers. Delivery is deferred to a microtask so that callers see the same contract as with Redis
 * (publish resolves before any handler runs, and publishes are delivered in publish order).
 */
export class MemoryBroker implements Broker {
  readonly kind = 'memory' as const
  readonly #channels = new Map<string, HandlerCounts>()
  readonly #onError: (error: unknown, context: string) => void
  #closed = false
  readonly #onHandlerError: HandlerErrorSink = (error, channel) => this.#onError(error, `broker handler of ${channel}`)

  constructor (options: MemoryBrokerOptions = {}) {
    this.#onError = options.onError ?? reportAsWarning
  }

  async publish (channel: string, payload: string): Promise<void> {
    if (this.#closed) throw refusals.brokerClosed()
    // Like Redis, a payload goes to whoever is subscribed when it is published; nobody listening, no work.
    if (!this.#channels.has(channel)) return
    queueMicrotask(() => this.#deliver(channel, payload))
  }

  async publishMany (messages: ReadonlyArray<readonly [channel: string, payload: string]>): Promise<void> {
    for (const [channel, payload] of messages) await this.publish(channel, payload)
  }

  async subscribe (channel: string, handler: BrokerHandler): Promise<void> {
    if (this.#closed) throw refusals.brokerClosed()
    let handlers = this.#channels.get(channel)
    if (handlers === undefined) {
      handlers = new HandlerCounts()
      this.#channels.set(channel, handlers)
    }
    handlers.add(handler)
  }

  async unsubscribe (channel: string, handler: BrokerHandler): Promise<void> {
    const handlers = this.#channels.get(channel)
    if (handlers === undefined || !handlers.remove(handler)) return
    if (handlers.size === 0) this.#channels.delete(channel)
  }

  subscribedChannels (): string[] {
    return [...this.#channels.keys()]
  }

  async ping (): Promise<void> {
    if (this.#closed) throw refusals.brokerClosed()
  }

  // An in-process bus never loses its connection, so there is nothing to announce either way.
  onReconnect (_listener: () => void): void {}

  onDisconnect (_listener: () => void): void {}

  async close (): Promise<void> {
    this.#closed = true
    this.#channels.clear()
  }

  #deliver (channel: string, payload: string): void {
    this.#channels.get(channel)?.deliver(payload, channel, this.#onHandlerError)
  }
}

export function reportAsWarning (error: unknown, context: string): void {
  const message = error instanceof Error ? error.message : String(error)
  process.emitWarning(`${context}: ${message}`, { code: 'CHAT_BROKER' })
}
