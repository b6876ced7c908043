export interface PeriodicJobOptions {
  /** One pass; resolves with the ms to wait before the next one (0: at once). */
  run: () => Promise<number>
  /** A pass that threw: reports it and says the ms to wait before the next one. */
  onError: (error: unknown) => number
  /**
   * How long a pass asked for by wake() waits for company (default 0): the wakes of a burst then start
   * one pass, not one each.
   */
  wakeDelayMs?: number
}

/**
 * A node's background job (the search indexer, retention, the feed relay): passes one at a time, each
 * followed by the pause it asks for, which wake() can cut short. A wake while a pass runs is kept, and
 * the pass that follows starts once that one ends (after the wake delay at most), so a change committed
 * while a pass was reading is never left for the pause. stop() waits for the pass under way; after it
 * nothing starts again.
 */
export class PeriodicJob {
  readonly #run: () => Promise<number>
  readonly #onError: (error: unknown) => number
  readonly #wakeDelayMs: number
  #timer: NodeJS.Timeout | undefined
  /** When the next pass is due (Date.now() ms); Infinity while none is scheduled. */
  #dueAt = Infinity
  #running: Promise<void> | null = null
  #woken = false
  #stopped = false

  constructor (options: PeriodicJobOptions) {
    this.#run = options.run
    this.#onError = options.onError
    this.#wakeDelayMs = options.wakeDelayMs ?? 0
  }

  /** Whether stop() was called: a pass that loops checks it to end early. */
  get stopped (): boolean {
    return this.#stopped
  }

  /** Starts the first pass at once. */
  start (): void {
    if (this.#stopped || this.#running !== null) return
    this.#schedule(0)
  }

  /**
   * Asks for a pass within the wake delay. Cheap enough for every commit: while a pass is due sooner or
   * one is running it only sets a flag.
   */
  wake (): void {
    if (this.#stopped) return
    if (this.#running !== null) {
      this.#woken = true
      return
    }
    if (this.#dueAt > Date.now() + this.#wakeDelayMs) this.#schedule(this.#wakeDelayMs)
  }

  /** No pass starts after this; resolves when the one under way (if any) has ended. */
  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#dueAt = Infinity
    await this.#running
  }

  #schedule (ms: number): void {
    clearTimeout(this.#timer)
    this.#dueAt = Date.now() + ms
    this.#timer = setTimeout(this.#pass, ms)
  }

  readonly #pass = (): void => {
    this.#timer = undefined
    this.#dueAt = Infinity
    this.#woken = false
    this.#running = this.#attempt().then((next) => {
      this.#running = null
      if (this.#stopped) return
      this.#schedule(this.#woken ? Math.min(next, this.#wakeDelayMs) : next)
    })
  }

  async #attempt (): Promise<number> {
    try {
      return await this.#run()
    } catch (error) {
      return this.#onError(error)
    }
  }
}
