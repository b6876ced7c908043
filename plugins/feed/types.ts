/** One feed entry as a consuming service gets it (protocol 11.4). */
export interface FeedEntry {
  /** Increasing, gapless in visibility order; consumers dedupe by it (delivery is at least once). */
  id: number
  type: string
  tenant: string
  roomId: string | null
  seq: number | null
  /** ISO 8601 */
  occurredAt: string
  actorId: string | null
  data: Record<string, unknown>
}

/**
 * Where the relay delivers the feed. `deliver` gets a batch in id order and resolves only when the sink
 * has confirmed every entry of it; a rejection means "retry later": the position is not advanced and the
 * same batch (or one starting at the same id) is delivered again. Webhooks and brokers fit the same shape.
 */
export interface FeedSink {
  /** The key of its row in chat.feed_positions. */
  readonly name: string
  deliver (entries: FeedEntry[]): Promise<void>
  close (): Promise<void>
}
