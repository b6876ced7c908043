/**
 * Receives one published payload, exactly as it was published, and the channel it came on: one handler
 * can serve many channels (the hub's one for every user channel) instead of a closure per channel.
 */
export type BrokerHandler = (payload: string, channel: string) => void

/**
 * Moves bytes between nodes and nothing else (centrifuge's broker): no knowledge of sockets or rooms.
 * Channels are logical names ("room:<id>", "user:<id>"); an implementation adds its key prefix.
 * Subscriptions are reference counted per channel: the first handler subscribes upstream, removing the
 * last one unsubscribes, so a node listens to a room only while it has a local subscriber for it.
 */
export interface Broker {
  readonly kind: 'memory' | 'redis'
  publish (channel: string, payload: string): Promise<void>
  /** Publishes several payloads, each to its channel, in order; one command where the broker allows it. */
  publishMany (messages: ReadonlyArray<readonly [channel: string, payload: string]>): Promise<void>
  subscribe (channel: string, handler: BrokerHandler): Promise<void>
  unsubscribe (channel: string, handler: BrokerHandler): Promise<void>
  /** Channels subscribed upstream right now (logical names, without the prefix). */
  subscribedChannels (): string[]
  /** Resolves when the broker answers; rejects when it is down. Used by /ready. */
  ping (): Promise<void>
  /** Called after the broker reconnected and resubscribed: messages may have been missed meanwhile. */
  onReconnect (listener: () => void): void
  /**
   * Called when the connection that receives messages is lost: from then until onReconnect, messages
   * published by other nodes may be missed (a node that caches what they invalidate must not trust it).
   */
  onDisconnect (listener: () => void): void
  close (): Promise<void>
}
