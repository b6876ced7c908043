import { chatError } from '../plugins/core/errors.js'

/*
 * Bounding work in time: one timer primitive and the three ways the suite races work against it.
 * - withTimeout: one piece of work, one timer (a Redis command, a readiness ping).
 * - withDeadline: the same, and the work is told when its time is up (a transaction rolls back).
 * - SharedTimeout: many commands share a timer window (publishes on the hot path).
 * Each caller brings its own error, text and bound: this file decides only how the race is run.
 */

/** A promise that rejects with `timedOut()` after `ms`, unless cancelled first (then it never settles). */
function rejectAfter (ms: number, timedOut: () => Error, options: { unref?: boolean } = {}): { expired: Promise<never>, cancel: () => void } {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(timedOut()) }, ms)
    if (options.unref === true) timer.unref()
  })
  return { expired, cancel: () => { clearTimeout(timer) } }
}

/**
 * Settles as `work` does, or rejects with `timedOut()` (called when the time is up) after `ms`. The work
 * is not cancelled; what it returns or throws after the timeout is dropped.
 */
export async function withTimeout<T> (work: Promise<T>, ms: number, timedOut: () => Error): Promise<T> {
  const timeout = rejectAfter(ms, timedOut)
  try {
    return await Promise.race([work, timeout.expired])
  } finally {
    timeout.cancel()
  }
}

/** Tells work that runs under a deadline whether it has passed (for example: roll back, do not commit). */
export interface Deadline {
  readonly expired: boolean
  /** When it expires (epoch ms): for work that must judge it elsewhere, like a statement in the database. */
  readonly at: number
}

/**
 * Runs `work` with a deadline: after `ms` the returned promise rejects with UNAVAILABLE and `deadline`
 * reads expired, so that work still running can give up at its next step (a transaction that checks it
 * before returning rolls back instead of committing). The work is not cancelled otherwise; what it
 * returns or throws after the deadline is dropped.
 *
 * Why: postgres.js can lose a query for good when a connection fails under it (the query is handed to a
 * connection between its socket's error and close events, and nothing ever settles it), and a database
 * behind a partition answers nothing at all. Work that others wait behind (a group-commit batch, a gap
 * fill) must not wait for ever.
 */
export async function withDeadline<T> (ms: number, what: string, work: (deadline: Deadline) => Promise<T>): Promise<T> {
  const deadline = { expired: false, at: Date.now() + ms }
  const running = work(deadline)
  running.catch(() => {})
  return await withTimeout(running, ms, () => {
    deadline.expired = true
    return chatError('UNAVAILABLE', `${what} did not finish within ${ms} ms: the database does not answer`)
  })
}

/**
 * One timer for many commands: a command races the current window's timeout, and a window is shared by
 * every command that starts while it still has at least 90% of the bound left. A busy connection then
 * arms a timer every tenth of the bound instead of one per command, and each command still fails within
 * the bound (and not before 90% of it) when nothing answers.
 */
export class SharedTimeout {
  #expires = 0
  #timeout: Promise<never> | null = null

  constructor (private readonly ms: number, private readonly error: () => Error) {}

  race<T> (command: Promise<T>): Promise<T> {
    return Promise.race([command, this.#current()])
  }

  #current (): Promise<never> {
    const now = performance.now()
    if (this.#timeout === null || this.#expires - now < this.ms * 0.9) {
      this.#expires = now + this.ms
      // Unref'd: a window left over from the last command must not keep the process alive.
      this.#timeout = rejectAfter(this.ms, this.error, { unref: true }).expired
      // Rejected when its window ends whether or not a command still races it.
      this.#timeout.catch(() => {})
    }
    return this.#timeout
  }
}
