/** A caller's place in line for one key: wait for `ready` (null: nobody is ahead), then call `done`. */
export interface Turn {
  ready: Promise<void> | null
  done (): void
}

interface Line {
  /** Resolves when the last turn taken so far is done. */
  tail: Promise<void>
  waiting: number
}

/**
 * Keeps async work of one key in the order it began: a turn is ready when every earlier turn of its key
 * is done. Sends await the membership cache and the host's authorize hook before they are queued, and
 * those can answer out of order; a sender's sends into a room take turns, so they reach the group
 * commit in the order they arrived.
 */
export class Turns {
  private readonly lines = new Map<string, Line>()

  take (key: string): Turn {
    let line = this.lines.get(key)
    const ready = line === undefined ? null : line.tail
    let finish!: () => void
    const own = new Promise<void>((resolve) => { finish = resolve })
    // Done early (a caller that never awaited its turn) still lets no later turn pass an earlier one.
    const mine = ready === null ? own : Promise.all([ready, own]).then(() => undefined)
    if (line === undefined) {
      line = { tail: mine, waiting: 0 }
      this.lines.set(key, line)
    } else line.tail = mine
    line.waiting += 1
    const held = line
    let finished = false
    return {
      ready,
      done: () => {
        if (finished) return
        finished = true
        finish()
        held.waiting -= 1
        if (held.waiting === 0 && this.lines.get(key) === held) this.lines.delete(key)
      },
    }
  }

  /** Keys with a turn not yet done (for tests and leak checks). */
  get size (): number {
    return this.lines.size
  }
}
