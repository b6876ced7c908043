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
 * loop's turn while none is).
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
      if (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
        this.start()
        continue
      }
      await new Promise<void>((resolve) => { this.idleWaiters.push(resolve) })
    }
  }

  private schedule (): void {
    if (this.inFlight >= this.maxInFlight) return
    if (this.queue.length >= this.options.maxBatch) {
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

  private start (): void {
    const batch = this.queue.splice(0, this.options.maxBatch)
    this.inFlight += 1
    this.writing += 1
    void this.write(batch)
  }

  private async write (batch: Array<Entry<T, R>>): Promise<void> {
    const started = performance.now()
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      this.inFlight -= 1
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
