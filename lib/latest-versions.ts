/** How long a key's latest version is remembered after it last changed. */
const DEFAULT_MEMORY_MS = 60_000
/** Below this many keys nothing is pruned: remembering is cheaper than looking. */
const PRUNE_ABOVE = 1024

/**
 * The latest version seen per key, for ephemeral frames that supersede each other (a user's presence):
 * a frame older than one already delivered for its key is out of date and is dropped. Two nodes' pushes
 * about one key race only for the time a broker hop takes, so a key is forgotten once it has been quiet
 * for `memoryMs`; what arrives after that is taken as new.
 *
 * With the latest version it keeps where that version was delivered (the rooms the hub wrote it to), so
 * that a frame sent to several rooms reaches a socket in more than one of them once.
 */
export class LatestVersions {
  // In order of last change (a changed key is moved to the end), so that pruning stops at the first
  // key that is still fresh.
  readonly #latest = new Map<string, { version: number, at: number, deliveredTo: string[] }>()
  readonly #memoryMs: number

  constructor (memoryMs = DEFAULT_MEMORY_MS) {
    this.#memoryMs = memoryMs
  }

  get size (): number {
    return this.#latest.size
  }

  /**
   * Null when `version` is older than the latest seen for `key`; else the places the caller has recorded
   * for that version (an equal version is the same change), empty for a newer one. The caller adds to it.
   */
  admit (key: string, version: number, now = Date.now()): string[] | null {
    const seen = this.#latest.get(key)
    if (seen !== undefined && version < seen.version) return null
    if (seen !== undefined && version === seen.version) return seen.deliveredTo
    const latest = { version, at: now, deliveredTo: [] }
    this.#latest.delete(key)
    this.#latest.set(key, latest)
    if (this.#latest.size > PRUNE_ABOVE) this.#prune(now)
    return latest.deliveredTo
  }

  #prune (now: number): void {
    for (const [key, seen] of this.#latest) {
      if (now - seen.at < this.#memoryMs) return
      this.#latest.delete(key)
    }
  }
}
