/**
 * Coalesces the loads asked for within one turn of the event loop into one call of `loadMany`: when many
 * sockets start their sessions together (a reconnect storm), their reads go to the database as one
 * statement instead of one each, which saves the round trips and, mostly, the per-statement cost on
 * both sides (drizzle's query build, PostgreSQL's parse and plan). A lone load waits only until the
 * turn ends (setImmediate), not for a timer.
 */
export class MicroBatch<K, V> {
  #pending: Array<{ key: K, resolve: (value: V) => void, reject: (error: unknown) => void }> = []
  #scheduled = false

  /**
   * `loadMany` answers every key of a batch, in the order given (a key may appear more than once);
   * `maxBatch` bounds a batch (and so a statement's size); a full batch goes at once.
   */
  constructor (private readonly loadMany: (keys: K[]) => Promise<V[]>, private readonly maxBatch = 100) {}

  load (key: K): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      this.#pending.push({ key, resolve, reject })
      if (this.#pending.length >= this.maxBatch) {
        this.#flush()
      } else if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => {
          this.#scheduled = false
          this.#flush()
        })
      }
    })
  }

  #flush (): void {
    const batch = this.#pending
    if (batch.length === 0) return
    this.#pending = []
    let loading: Promise<V[]>
    try {
      loading = this.loadMany(batch.map(({ key }) => key))
    } catch (error) {
      loading = Promise.reject(error)
    }
    loading.then((values) => {
      for (const [index, waiter] of batch.entries()) waiter.resolve(values[index] as V)
    }, (error: unknown) => {
      for (const waiter of batch) waiter.reject(error)
    })
  }
}
