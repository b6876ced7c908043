import type { Role } from '../../db/schema/index.js'
import type { CachedRoom } from './types.js'

/** What one node knows of a room: its settings and every member's role. */
export interface RoomEntry {
  room: CachedRoom
  members: Map<string, Role>
  /** Members muted when the entry was loaded, with the end of the mute (epoch ms). */
  muted: Map<string, number>
}

export interface MembershipCacheOptions {
  loadRoom (roomId: string): Promise<RoomEntry | null>
  loadUserRooms (userKey: string): Promise<string[]>
  maxRooms?: number
  maxUsers?: number
}

/** A Map that forgets its least recently used key beyond `max` entries. */
class BoundedMap<V> {
  private readonly map = new Map<string, V>()
  constructor (private readonly max: number) {}

  get size (): number {
    return this.map.size
  }

  get (key: string): V | undefined {
    const value = this.map.get(key)
    if (value !== undefined) {
      // Re-inserting moves the key to the end: the first key is always the least recently used.
      this.map.delete(key)
      this.map.set(key, value)
    }
    return value
  }

  set (key: string, value: V): void {
    this.map.delete(key)
    this.map.set(key, value)
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next().value as string
      this.map.delete(oldest)
    }
  }

  delete (key: string): void {
    this.map.delete(key)
  }

  clear (): void {
    this.map.clear()
  }
}

/** A load in flight; an invalidation that arrives meanwhile marks it stale so its result is not kept. */
interface Load<V> {
  promise: Promise<V | null>
  stale: boolean
}

/**
 * Entries loaded on a miss, kept until invalidated or evicted. Concurrent misses of one key share one
 * load; a load that an invalidation overtook answers its callers but is not stored, so a change that
 * commits while a node reads the old state never leaves the old state cached.
 */
class LoadingCache<V> {
  private readonly entries: BoundedMap<V>
  private readonly loads = new Map<string, Load<V>>()
  private readonly tickets = new Map<string, Set<{ stale: boolean }>>()
  /** False while invalidations may be missed: every get then reads through, and nothing is stored. */
  sure = true

  constructor (max: number, private readonly load: (key: string) => Promise<V | null>) {
    this.entries = new BoundedMap(max)
  }

  get size (): number {
    return this.entries.size
  }

  async get (key: string): Promise<V | null> {
    if (this.sure) {
      const cached = this.entries.get(key)
      if (cached !== undefined) return cached
    }
    const running = this.loads.get(key)
    if (running !== undefined) return await running.promise
    // A load made while unsure answers its callers (the database's word) but is never kept.
    const load: Load<V> = { promise: Promise.resolve(null), stale: !this.sure }
    load.promise = this.load(key).then((value) => {
      if (this.loads.get(key) === load) this.loads.delete(key)
      if (value !== null && !load.stale) this.entries.set(key, value)
      return value
    }, (error: unknown) => {
      if (this.loads.get(key) === load) this.loads.delete(key)
      throw error
    })
    this.loads.set(key, load)
    return await load.promise
  }

  /** Starts watching a key before reading it elsewhere (a session's query), for `prime`. */
  ticket (key: string): { stale: boolean } {
    const ticket = { stale: false }
    let set = this.tickets.get(key)
    if (set === undefined) {
      set = new Set()
      this.tickets.set(key, set)
    }
    set.add(ticket)
    return ticket
  }

  /** Stores a value read elsewhere unless the key was invalidated since its ticket was taken. */
  prime (key: string, value: V, ticket: { stale: boolean }): void {
    const set = this.tickets.get(key)
    set?.delete(ticket)
    if (set?.size === 0) this.tickets.delete(key)
    if (!ticket.stale && this.sure) this.entries.set(key, value)
  }

  invalidate (key: string): void {
    this.entries.delete(key)
    const load = this.loads.get(key)
    if (load !== undefined) {
      load.stale = true
      this.loads.delete(key)
    }
    const set = this.tickets.get(key)
    if (set !== undefined) {
      for (const ticket of set) ticket.stale = true
      this.tickets.delete(key)
    }
  }

  clear (): void {
    this.entries.clear()
    for (const load of this.loads.values()) load.stale = true
    this.loads.clear()
    for (const set of this.tickets.values()) for (const ticket of set) ticket.stale = true
    this.tickets.clear()
  }
}

/**
 * The per-node membership cache: rooms (settings and member roles) and each user's room ids (by user key), filled
 * from the database on a miss, bounded in size (least recently used entries go first), and invalidated
 * by the rooms plugin on this node when it commits a change and on every other node through the broker.
 */
export class MembershipCache {
  private readonly rooms: LoadingCache<RoomEntry>
  private readonly users: LoadingCache<string[]>

  constructor (options: MembershipCacheOptions) {
    this.rooms = new LoadingCache(options.maxRooms ?? 10_000, options.loadRoom)
    this.users = new LoadingCache(options.maxUsers ?? 50_000, options.loadUserRooms)
  }

  get roomCount (): number {
    return this.rooms.size
  }

  get userCount (): number {
    return this.users.size
  }

  room (roomId: string): Promise<RoomEntry | null> {
    return this.rooms.get(roomId)
  }

  async userRooms (userKey: string): Promise<string[]> {
    return await this.users.get(userKey) ?? []
  }

  userTicket (userKey: string): { stale: boolean } {
    return this.users.ticket(userKey)
  }

  primeUser (userKey: string, roomIds: string[], ticket: { stale: boolean }): void {
    this.users.prime(userKey, roomIds, ticket)
  }

  /** Whether the cache is answering from its entries (false: every lookup reads the database). */
  get trusted (): boolean {
    return this.rooms.sure
  }

  /**
   * Fails closed: invalidations from other nodes may be lost from now on (the broker's connection is
   * gone), so every entry is dropped and every lookup reads the database, storing nothing, until `trust`.
   */
  distrust (): void {
    this.rooms.sure = false
    this.users.sure = false
    this.clear()
  }

  /** Invalidations arrive again (resubscribed): start afresh from the database. */
  trust (): void {
    this.clear()
    this.rooms.sure = true
    this.users.sure = true
  }

  invalidate (change: { rooms?: Iterable<string>, users?: Iterable<string> }): void {
    for (const roomId of change.rooms ?? []) this.rooms.invalidate(roomId)
    for (const userKey of change.users ?? []) this.users.invalidate(userKey)
  }

  clear (): void {
    this.rooms.clear()
    this.users.clear()
  }
}
