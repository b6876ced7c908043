import { Command, type Cluster } from 'ioredis'

/** Shard channels of one hash slot, with their payloads, in publish order. */
export interface SlotBatch {
  readonly slot: number
  readonly channels: string[]
  readonly payloads: string[]
}

/** The slot batches that one primary owns, as the client's slot table says right now. */
export interface ShardBatch {
  /** The primary's node key (host:port); `slot:<n>` while the table does not know the slot yet. */
  readonly node: string
  readonly slots: SlotBatch[]
}

/**
 * Groups shard channels by hash slot, then slots by the primary that owns them: one script per slot (a
 * script may touch one slot only) and one pipeline per primary (one write and one round trip per shard).
 * The slot is ioredis' own (Command#getSlot, the key prefix applied, as the command will be routed).
 */
export function shardBatches (cluster: Cluster, messages: ReadonlyArray<readonly [upstreamName: string, payload: string]>): ShardBatch[] {
  const bySlot = new Map<number, SlotBatch>()
  for (const [name, payload] of messages) {
    const slot = slotOf(cluster, name)
    let batch = bySlot.get(slot)
    if (batch === undefined) {
      batch = { slot, channels: [], payloads: [] }
      bySlot.set(slot, batch)
    }
    batch.channels.push(name)
    batch.payloads.push(payload)
  }
  const byNode = new Map<string, SlotBatch[]>()
  for (const batch of bySlot.values()) {
    const node = cluster.slots[batch.slot]?.[0] ?? `slot:${batch.slot}`
    const batches = byNode.get(node)
    if (batches === undefined) byNode.set(node, [batch])
    else batches.push(batch)
  }
  return [...byNode].map(([node, slots]) => ({ node, slots }))
}

/** The hash slot of a shard channel as ioredis routes its commands: the client's key prefix applied. */
export function slotOf (cluster: Cluster, upstreamName: string): number {
  const keyPrefix = cluster.options.keyPrefix
  return new Command('spublish', [upstreamName, ''], keyPrefix !== undefined ? { keyPrefix } : {}).getSlot()
}
