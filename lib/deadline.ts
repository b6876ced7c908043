import { chatError } from '../plugins/core/errors.js'

/*
 * Bounding work in time: one timer primitive and the three ways the suite races work against it.
 * - withTimeout: one piece of work, one timer (a Redis command, a readiness ping).
 * - withDeadline: the same, and the work is told when its time is up (a transaction rolls back).
 * - SharedTimeout: many commands share a timer window (publishes on the hot path).
 * Each caller brings its own error, text and bound: this file decides only how the race is run.
 */

/** A promise that rejects with `timedOut()` after `ms`, unless cancelled first (then it never settles). */
function rejectAfter (ms: number, timedOut: () => Error): { expired: Promise<never>, cancel: () => void } {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(timedOut()) }, ms)
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

/** One window of a SharedTimeout: its races, and how many of them have not settled yet. */
interface TimeoutWindow {
  readonly expires: number
  pending: number
  /** Every race that joined the window; rejecting one that has settled does nothing. */
  readonly rejects: Array<(error: Error) => void>
}

/**
 * One timer for many commands: a command races the current window's timeout, and a window is shared by
 * every command that starts while it still has at least 90% of the bound left. A busy connection then
 * arms a timer every tenth of the bound instead of one per command, and each command still fails within
 * the bound (and not before 90% of it) when nothing answers.
 *
 * A window builds its error (an Error with a stack) only when it ends with a race still pending: on a
 * connection that answers, nearly every window ends with none, and its error would be built for nothing.
 */
export class SharedTimeout {
  #window: TimeoutWindow | null = null

  constructor (private readonly ms: number, private readonly error: () => Error) {}

  race<T> (command: Promise<T>): Promise<T> {
    const window = this.#current()
    window.pending += 1
    return new Promise<T>((resolve, reject) => {
      window.rejects.push(reject)
      // One reaction on the command both settles the race and counts it out of its window: it takes the
      // place of Promise.race's two (on the command and on a window promise), not one more beside them.
      command.then((value) => {
        window.pending -= 1
        resolve(value)
      }, (error: unknown) => {
        window.pending -= 1
        reject(error)
      })
    })
  }

  #current (): TimeoutWindow {
    const now = performance.now()
    const current = this.#window
    if (current !== null && current.expires - now >= this.ms * 0.9) return current
    const window: TimeoutWindow = { expires: now + this.ms, pending: 0, rejects: [] }
    // Unref'd: a window left over from the last command must not keep the process alive.
    setTimeout(() => { this.#end(window) }, this.ms).unref()
    this.#window = window
    return window
  }

  #end (window: TimeoutWindow): void {
    // An ended window takes no more races, even one begun before the clock says it is over.
    if (this.#window === window) this.#window = null
    if (window.pending === 0) return
    const error = this.error()
    for (const reject of window.rejects) reject(error)
  }
}
