import type {
  AttachResult, ChosenStatus, ExpiredUser, PresenceStore, RestoredUser, SetChosenResult, StoredPresence,
} from './store.js'

interface Entry {
  sockets: number
  chosen: ChosenStatus | null
  /** When the grace of a user without sockets ends; null while a socket is open. */
  graceUntil: number | null
}

/** Presence of a single node, in this process. A restart forgets it (invisible included). */
export class MemoryPresenceStore implements PresenceStore {
  readonly kind = 'memory' as const
  readonly #users = new Map<string, Entry>()
  /** Users inside their grace period, so that a sweep does not walk every user. */
  readonly #inGrace = new Set<string>()
  /** One process: a counter orders every change. */
  #version = 0

  async attach (userId: string): Promise<AttachResult> {
    const entry = this.#entry(userId)
    const wasPresent = entry.sockets > 0 || entry.graceUntil !== null
    entry.sockets += 1
    entry.graceUntil = null
    this.#inGrace.delete(userId)
    return { wasPresent, chosen: entry.chosen, version: ++this.#version }
  }

  async detach (userId: string, graceDeadline: number): Promise<void> {
    const entry = this.#users.get(userId)
    if (entry === undefined || entry.sockets === 0) return
    entry.sockets -= 1
    if (entry.sockets === 0) {
      entry.graceUntil = graceDeadline
      this.#inGrace.add(userId)
    }
  }

  async setChosen (userId: string, chosen: ChosenStatus | null): Promise<SetChosenResult> {
    const entry = this.#entry(userId)
    const present = entry.sockets > 0 || entry.graceUntil !== null
    const previous = entry.chosen
    entry.chosen = chosen === 'away' && !present ? previous : chosen
    this.#forgetIfEmpty(userId, entry)
    return { present, previous, chosen: entry.chosen, version: ++this.#version }
  }

  async read (userIds: string[]): Promise<Map<string, StoredPresence>> {
    const result = new Map<string, StoredPresence>()
    for (const userId of userIds) {
      const entry = this.#users.get(userId)
      result.set(userId, {
        present: entry !== undefined && (entry.sockets > 0 || entry.graceUntil !== null),
        chosen: entry?.chosen ?? null,
      })
    }
    return result
  }

  async expireDue (now: number, limit: number): Promise<ExpiredUser[]> {
    const expired: ExpiredUser[] = []
    for (const userId of this.#inGrace) {
      if (expired.length >= limit) break
      const entry = this.#users.get(userId)
      if (entry === undefined || entry.graceUntil === null || entry.sockets > 0) {
        this.#inGrace.delete(userId)
        continue
      }
      if (entry.graceUntil > now) continue
      expired.push({ userId, chosen: entry.chosen, at: entry.graceUntil, version: ++this.#version })
      this.#inGrace.delete(userId)
      entry.graceUntil = null
      if (entry.chosen === 'away') entry.chosen = null
      this.#forgetIfEmpty(userId, entry)
    }
    return expired
  }

  // One node: nobody else can take it for dead, and there is nothing to write back.
  async heartbeat (): Promise<RestoredUser[]> {
    return []
  }

  async resync (): Promise<RestoredUser[]> {
    return []
  }

  async leave (): Promise<void> {
    this.#users.clear()
    this.#inGrace.clear()
  }

  #entry (userId: string): Entry {
    let entry = this.#users.get(userId)
    if (entry === undefined) {
      entry = { sockets: 0, chosen: null, graceUntil: null }
      this.#users.set(userId, entry)
    }
    return entry
  }

  #forgetIfEmpty (userId: string, entry: Entry): void {
    if (entry.sockets === 0 && entry.graceUntil === null && entry.chosen === null) this.#users.delete(userId)
  }
}
