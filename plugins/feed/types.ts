/** Every feed entry type of protocol 11.4 (some are written only once their events exist). */
export const FEED_TYPES = [
  'message.created', 'message.updated', 'message.deleted', 'reaction.updated',
  'member.joined', 'member.left', 'member.updated', 'member.banned', 'member.muted',
  'room.created', 'room.updated', 'room.deleted', 'message.reported',
] as const

export type FeedType = typeof FEED_TYPES[number]

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
 * same batch (or one starting at the same id) is delivered again, unless the sink parks it (parkAfterMs).
 */
export interface FeedSink {
  /** The key of its row in chat.feed_positions. */
  readonly name: string
  /**
   * Which entries this sink wants (a webhook's `events`); without it, all. The relay hands `deliver` only
   * these, and a batch with none of them advances the position without calling `deliver`.
   */
  accepts? (entry: FeedEntry): boolean
  /**
   * After failing this long on a batch starting at the same entry, the relay parks the batch (chat.feed_parked)
   * and moves past it; without it, the sink is retried forever (the Redis Stream: nothing is ever skipped).
   */
  readonly parkAfterMs?: number
  deliver (entries: FeedEntry[]): Promise<void>
  close (): Promise<void>
}
