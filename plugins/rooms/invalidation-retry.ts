/** Which cache entries a committed change makes stale, on every node. */
export interface Invalidation {
  rooms?: string[]
  /** Users by key (lib/user-key.ts): their room lists are dropped. */
  users?: string[]
  /** Rooms that no longer exist: every node also drops its sockets' subscriptions to them. */
  deleted?: string[]
  /** Every entry: sent instead of a retry that grew too large to name its ids. */
  all?: boolean
}

/** Ids a retry names before it turns into `all` (its memory is bounded whatever the outage's length). */
const MAX_IDS = 10_000
const FIRST_DELAY_MS = 250
const MAX_DELAY_MS = 5000

/**
 * Invalidations whose publish failed, merged into one and published again (at 0.25 s, then doubling up
 * to 5 s, and at once when the broker reconnects) until a publish succeeds. A node whose subscriber
 * stayed connected while this node's publish failed (a timeout, a command connection cut alone) hears
 * no reconnect and would otherwise keep the old state for good. Invalidations are idempotent and
 * order-free, so merging and repeating them is safe.
 */
export class InvalidationRetry {
  readonly #rooms = new Set<string>()
  readonly #users = new Set<string>()
  readonly #deleted = new Set<string>()
  #all = false
  #timer: NodeJS.Timeout | null = null
  #delayMs = FIRST_DELAY_MS
  #flushing = false
  #closed = false

  constructor (
    private readonly publish: (change: Invalidation) => Promise<void>,
    private readonly onFailure: (error: unknown) => void,
  ) {}

  get pending (): boolean {
    return this.#all || this.#rooms.size + this.#users.size + this.#deleted.size > 0
  }

  add (change: Invalidation): void {
    if (this.#closed) return
    for (const id of change.rooms ?? []) this.#rooms.add(id)
    for (const id of change.users ?? []) this.#users.add(id)
    for (const id of change.deleted ?? []) this.#deleted.add(id)
    if (change.all === true || this.#rooms.size + this.#users.size + this.#deleted.size > MAX_IDS) {
      this.#all = true
      this.#rooms.clear()
      this.#users.clear()
      // Deleted rooms are still named: receivers also drop their sockets' subscriptions to them.
      if (this.#deleted.size > MAX_IDS) this.#deleted.clear()
    }
    this.#schedule()
  }

  /** Publishes what is pending now (the broker is back). */
  flushNow (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    void this.#flush()
  }

  close (): void {
    this.#closed = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  #schedule (): void {
    if (this.#timer !== null || this.#flushing || this.#closed) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.#flush()
    }, this.#delayMs)
    this.#timer.unref()
    this.#delayMs = Math.min(this.#delayMs * 2, MAX_DELAY_MS)
  }

  async #flush (): Promise<void> {
    if (this.#flushing || this.#closed || !this.pending) return
    this.#flushing = true
    const change = this.#take()
    try {
      await this.publish(change)
      this.#delayMs = FIRST_DELAY_MS
    } catch (error) {
      this.onFailure(error)
      this.add(change)
    } finally {
      this.#flushing = false
    }
    // What was added while the publish was on the wire.
    if (this.pending) this.#schedule()
  }

  #take (): Invalidation {
    const change: Invalidation = {}
    if (this.#all) change.all = true
    if (this.#rooms.size > 0) change.rooms = [...this.#rooms]
    if (this.#users.size > 0) change.users = [...this.#users]
    if (this.#deleted.size > 0) change.deleted = [...this.#deleted]
    this.#all = false
    this.#rooms.clear()
    this.#users.clear()
    this.#deleted.clear()
    return change
  }
}
