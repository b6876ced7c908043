export interface GroupCommitOptions<T, R> {
  /** Writes a batch in one transaction; returns one result (or Error) per item, in order. */
  flush (items: T[]): Promise<Array<R | Error>>
  maxBatch: number
  /** How long the first item of a batch may wait for company. 0 still batches what arrives meanwhile. */
  maxWaitMs: number
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
 * One batch is in flight at a time; what arrives meanwhile forms the next batch.
 */
export class GroupCommit<T, R> {
  private queue: Array<Entry<T, R>> = []
  private timer: NodeJS.Timeout | null = null
  private running: Promise<void> | null = null

  constructor (private readonly options: GroupCommitOptions<T, R>) {}

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
    while (this.queue.length > 0 || this.running !== null) {
      if (this.timer !== null) {
        clearTimeout(this.timer)
        this.timer = null
      }
      if (this.running === null) this.running = this.run()
      await this.running
    }
  }

  private schedule (): void {
    if (this.running !== null) return
    if (this.queue.length >= this.options.maxBatch) {
      if (this.timer !== null) clearTimeout(this.timer)
      this.timer = null
      this.running = this.run()
      return
    }
    if (this.timer !== null) return
    this.timer = setTimeout(() => {
      this.timer = null
      if (this.running === null) this.running = this.run()
    }, this.options.maxWaitMs)
  }

  private async run (): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.options.maxBatch)
        const started = performance.now()
        try {
          const results = await this.options.flush(batch.map((entry) => entry.item))
          batch.forEach((entry, index) => {
            const result = results[index]
            if (result instanceof Error) entry.reject(result)
            else entry.resolve(result as R)
          })
        } catch (error) {
          for (const entry of batch) entry.reject(error)
        }
        this.options.onBatch?.(batch.length, performance.now() - started)
      }
    } finally {
      this.running = null
    }
  }
}
