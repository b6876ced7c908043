/**
 * The simulated population, as docs/scaling.md assumes it: sockets spread evenly over the nodes (one
 * socket per user), users in group rooms of R members placed at random over the nodes. Seeded, so that
 * two runs of the same shape place the same users on the same nodes.
 */
export interface Placement {
  /** User ids by node. */
  usersByNode: string[][]
  /** Each room: its members (the first is the owner, who creates it). */
  rooms: string[][]
  nodeOf: Map<string, number>
}

/** A small deterministic generator (mulberry32): placement must not depend on Math.random's seed. */
export function seeded (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function shuffle<T> (items: T[], random: () => number): T[] {
  for (let index = items.length - 1; index > 0; index -= 1) {
    const other = Math.floor(random() * (index + 1))
    const kept = items[index] as T
    items[index] = items[other] as T
    items[other] = kept
  }
  return items
}

export function place (sockets: number, nodes: number, roomSize: number, tag: string, seed = 26): Placement {
  const random = seeded(seed)
  const users = Array.from({ length: sockets }, (_, index) => `${tag}-u${index}`)
  // Even spread (what least_conn gives): user i on node i mod N, users then grouped into rooms in a
  // shuffled order, so that a room's members land on nodes at random.
  const usersByNode: string[][] = Array.from({ length: nodes }, () => [])
  const nodeOf = new Map<string, number>()
  users.forEach((user, index) => {
    usersByNode[index % nodes]?.push(user)
    nodeOf.set(user, index % nodes)
  })
  const order = shuffle([...users], random)
  const rooms: string[][] = []
  for (let index = 0; index + roomSize <= order.length; index += roomSize) rooms.push(order.slice(index, index + roomSize))
  return { usersByNode, rooms, nodeOf }
}

/** The mean number of distinct nodes among a room's members: the channel's subscribers in Redis. */
export function meanNodesPerRoom (placement: Placement): number {
  let total = 0
  for (const members of placement.rooms) total += new Set(members.map((user) => placement.nodeOf.get(user))).size
  return total / Math.max(1, placement.rooms.length)
}
