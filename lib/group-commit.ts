export interface GroupCommitOptions<T, R> {
  /**
   * Writes a batch in one transaction; returns one result (or Error) per item, in order. It may call
   * `release` once the database has answered: the batch's slot is then free, and the next batch is sent
   * before this one's results are turned into replies (the database need not wait for that work).
   */
  flush (items: T[], release: () => void): Promise<Array<R | Error>>
  maxBatch: number
  /**
   * How long the first item of a batch may wait for company while another batch is being written. With
   * none being written, a batch starts when the event loop's current turn ends: what arrived in that turn
   * goes with it, and nothing waits for a database that is idle. 0 still batches what arrives meanwhile.
   */
  maxWaitMs: number
  /**
   * Batches written at once (default 1). More than one overlaps one batch's round trips and commit with
   * the next one's; the writer must then be safe under concurrency (row locks taken in a fixed order).
   */
  maxInFlight?: number
  /**
   * Items of one key (a room) are written in the order they were submitted: a batch never takes an item
   * whose key is in a batch still in flight, because two batches in flight race for the database's locks
   * and the later one may win. Those items wait at the head of the queue, in order, for the next batch
   * after it; items of other keys go in the next batch at once, so a slow batch stalls only its own keys.
   */
  keyOf?: (item: T) => string
  /** Told about each flushed batch (metrics). */
  onBatch?: (size: number, ms: number) => void
}

interface Entry<T, R> {
  item: T
  resolve: (result: R) => void
  reject: (error: unknown) => void
}

/**
 * Group commit: concurrent writes are queued and flushed together, so a busy node pays one commit per
 * batch instead of one per write. Each caller still waits for its own row's commit (the ack contract).
 * At most `maxInFlight` batches are in flight; what arrives meanwhile forms the next batch, which starts
 * as soon as one finishes (or after `maxWaitMs` while fewer are in flight, or at the end of the event
 * loop's turn while none is). With `keyOf`, items of one key are written in submission order.
 */
export class GroupCommit<T, R> {
  private queue: Array<Entry<T, R>> = []
  /** The wait of the queue's first item for company: a timer, or the end of this turn when none is in flight. */
  private timer: NodeJS.Timeout | null = null
  private turnEnd: NodeJS.Immediate | null = null
  /** Batches holding a slot: sent to the database and not yet answered (or released). */
  private inFlight = 0
  /** Batches whose flush has not returned yet, released or not: what drain waits for. */
  private writing = 0
  private readonly maxInFlight: number
  private idleWaiters: Array<() => void> = []
  /** The keys of the batches holding a slot (keyOf only); no key is in two of them. */
  private readonly keysInFlight = new Set<string>()

  constructor (private readonly options: GroupCommitOptions<T, R>) {
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 1)
  }

  get queued (): number {
    return this.queue.length
  }

  submit (item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject })
      this.schedule()
    })
  }

  /** Resolves when everything submitted so far is written (graceful shutdown). */
  async drain (): Promise<void> {
    while (this.queue.length > 0 || this.writing > 0) {
      this.stopWaiting()
      if (this.queue.length > 0 && this.inFlight < this.maxInFlight && this.start()) continue
      await new Promise<void>((resolve) => { this.idleWaiters.push(resolve) })
    }
  }

  private schedule (): void {
    if (this.inFlight >= this.maxInFlight) return
    // A full queue goes at once, unless some of it waits behind a batch in flight: then the next batch
    // waits for company as usual instead of leaving at every send with the few that may go.
    if (this.queue.length >= this.options.maxBatch && this.keysInFlight.size === 0) {
      this.stopWaiting()
      this.start()
      return
    }
    if (this.timer !== null || this.turnEnd !== null) return
    // An idle database: the sends of this turn (every socket read in it) go together, at once.
    if (this.inFlight === 0) this.turnEnd = setImmediate(this.onWaited)
    else this.timer = setTimeout(this.onWaited, this.options.maxWaitMs)
  }

  private readonly onWaited = (): void => {
    this.stopWaiting()
    if (this.queue.length > 0 && this.inFlight < this.maxInFlight) this.start()
  }

  private stopWaiting (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    if (this.turnEnd !== null) clearImmediate(this.turnEnd)
    this.timer = null
    this.turnEnd = null
  }

  /** Starts a batch; false when every queued item waits behind a batch in flight (its release starts one). */
  private start (): boolean {
    const { batch, keys } = this.take()
    if (batch.length === 0) return false
    this.inFlight += 1
    this.writing += 1
    void this.write(batch, keys)
    return true
  }

  /** The next batch: the queue's first maxBatch items, less those whose key a batch in flight holds. */
  private take (): { batch: Array<Entry<T, R>>, keys: string[] } {
    const keyOf = this.options.keyOf
    if (keyOf === undefined || this.keysInFlight.size === 0) {
      const batch = this.queue.splice(0, this.options.maxBatch)
      return { batch, keys: keyOf === undefined ? [] : this.hold(batch, keyOf) }
    }
    const batch: Array<Entry<T, R>> = []
    const waiting: Array<Entry<T, R>> = []
    let index = 0
    for (; index < this.queue.length && batch.length < this.options.maxBatch; index += 1) {
      const entry = this.queue[index] as Entry<T, R>
      if (this.keysInFlight.has(keyOf(entry.item))) waiting.push(entry)
      else batch.push(entry)
    }
    if (batch.length > 0) this.queue = waiting.concat(this.queue.slice(index))
    return { batch, keys: this.hold(batch, keyOf) }
  }

  /** Marks a batch's keys as in flight; returns them for the release. */
  private hold (batch: Array<Entry<T, R>>, keyOf: (item: T) => string): string[] {
    const keys: string[] = []
    for (const entry of batch) {
      const key = keyOf(entry.item)
      if (this.keysInFlight.has(key)) continue
      this.keysInFlight.add(key)
      keys.push(key)
    }
    return keys
  }

  private async write (batch: Array<Entry<T, R>>, keys: string[]): Promise<void> {
    const started = performance.now()
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      this.inFlight -= 1
      for (const key of keys) this.keysInFlight.delete(key)
      // What queued while this batch was written goes at once: it has waited long enough.
      if (this.queue.length > 0) {
        this.stopWaiting()
        this.start()
      }
    }
    try {
      const results = await this.options.flush(batch.map((entry) => entry.item), release)
      for (let index = 0; index < batch.length; index += 1) {
        const entry = batch[index] as Entry<T, R>
        const result = results[index]
        if (result instanceof Error) entry.reject(result)
        else entry.resolve(result as R)
      }
    } catch (error) {
      for (const entry of batch) entry.reject(error)
    }
    this.options.onBatch?.(batch.length, performance.now() - started)
    this.writing -= 1
    release()
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const resolve of waiters) resolve()
  }
}
