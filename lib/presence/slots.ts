/**
 * On a Redis Cluster, presence is spread over this many hash tags ({presence:0} … {presence:15}), so over
 * as many slots and, with 3 or more shards, over every shard. Not one tag per user: a sweep would then
 * have to visit every user's slot. 16 keeps a node's periodic work (a heartbeat and a sweep script per
 * tag) small and still spreads the per-user writes (attach, detach, away) over the shards.
 * Changing it moves users to other tags: only with every node stopped, or presence restarts empty.
 */
export const CLUSTER_PRESENCE_SLOTS = 16

/** The hash tags of presence: one on a single Redis (the keys of earlier versions), several on a cluster. */
export function presenceTags (cluster: boolean): string[] {
  if (!cluster) return ['{presence}']
  return Array.from({ length: CLUSTER_PRESENCE_SLOTS }, (_, index) => `{presence:${index}}`)
}

/** Which tag a user's keys live under: FNV-1a of the user key, the same on every node. */
export function presenceSlotOf (userId: string, slots: number): number {
  if (slots === 1) return 0
  let hash = 0x811c9dc5
  for (let index = 0; index < userId.length; index++) {
    hash ^= userId.charCodeAt(index)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % slots
}
