/**
 * How long presence changes wait to be pushed together. While changes are few, a window lasts `baseMs`
 * (a change is pushed within it). While they come fast (a node's restart or a deploy brings thousands of
 * users back within seconds), each next window is twice as long, up to `maxMs`: every socket then gets
 * its roommates' changes in a few writes instead of one write every `baseMs`, and a user who flips within
 * a window is pushed once. One window slower than `busyPerSecond` brings it back to `baseMs`.
 */
export class FlushWindow {
  #ms: number

  constructor (private readonly baseMs: number, private readonly maxMs: number, private readonly busyPerSecond: number) {
    this.#ms = baseMs
  }

  /** The next window's length. */
  get ms (): number {
    return this.#ms
  }

  /** The window just closed (one is open at a time, `ms` long) pushed the changes of `users` users. */
  flushed (users: number): void {
    this.#ms = users * 1000 >= this.busyPerSecond * this.#ms ? Math.min(this.maxMs, this.#ms * 2) : this.baseMs
  }
}
