import { withDeadline } from './deadline.js'

/**
 * Coalesces the loads asked for within one turn of the event loop into one call of `loadMany`: when many
 * sockets start their sessions together (a reconnect storm), their reads go to the database as one
 * statement instead of one each, which saves the round trips and, mostly, the per-statement cost on
 * both sides (drizzle's query build, PostgreSQL's parse and plan). A lone load waits only until the
 * turn ends (setImmediate), not for a timer.
 *
 * With `maxInFlight`, at most that many calls run at once and the loads that arrive meanwhile wait for
 * one to end, then go together (a group commit's shape): under a steady stream of loads, which arrive a
 * few per turn, the batches grow with the load instead of staying a few keys each, and a load waits at
 * most one call longer. An idle batch sends a lone load at the end of its turn, as before.
 */
export interface MicroBatchOptions {
  /** The most keys of one call (and so of one statement); a full batch goes at once if a call may start. */
  maxBatch?: number
  /**
   * The most calls running at once, and how long one may run (UNAVAILABLE after that, with `what` in the
   * message): later loads wait behind a running call, so a call that never settles (a query lost with its
   * connection, a database behind a partition) must not hold them for ever. Unset: no bound, every
   * turn's batch goes at the end of its turn.
   */
  inFlight?: { max: number, timeoutMs: number, what: string }
}

interface Waiter<K, V> { key: K, resolve: (value: V) => void, reject: (error: unknown) => void }

export class MicroBatch<K, V> {
  #pending: Array<Waiter<K, V>> = []
  #scheduled = false
  #inFlight = 0
  readonly #maxBatch: number
  readonly #maxInFlight: number
  readonly #call: (keys: K[]) => Promise<V[]>

  /** `loadMany` answers every key of a batch, in the order given (a key may appear more than once). */
  constructor (loadMany: (keys: K[]) => Promise<V[]>, options: MicroBatchOptions = {}) {
    this.#maxBatch = options.maxBatch ?? 100
    const bound = options.inFlight
    this.#maxInFlight = bound?.max ?? Infinity
    this.#call = bound === undefined ? loadMany : async (keys) => await withDeadline(bound.timeoutMs, bound.what, async () => await loadMany(keys))
  }

  load (key: K): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      this.#pending.push({ key, resolve, reject })
      if (this.#pending.length >= this.#maxBatch) {
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

  /** Starts calls for the pending loads, a full batch each, while the bound allows. */
  #flush (): void {
    while (this.#pending.length > 0 && this.#inFlight < this.#maxInFlight) {
      const batch = this.#pending.length <= this.#maxBatch ? this.#pending : this.#pending.slice(0, this.#maxBatch)
      this.#pending = batch === this.#pending ? [] : this.#pending.slice(this.#maxBatch)
      this.#run(batch)
    }
  }

  #run (batch: Array<Waiter<K, V>>): void {
    this.#inFlight += 1
    let loading: Promise<V[]>
    try {
      loading = this.#call(batch.map(({ key }) => key))
    } catch (error) {
      loading = Promise.reject(error)
    }
    loading.then((values) => {
      for (const [index, waiter] of batch.entries()) waiter.resolve(values[index] as V)
    }, (error: unknown) => {
      for (const waiter of batch) waiter.reject(error)
    }).finally(() => {
      this.#inFlight -= 1
      // What arrived while the bound held goes now, together.
      this.#flush()
    })
  }
}
