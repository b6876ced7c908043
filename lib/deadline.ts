import { chatError } from '../plugins/core/errors.js'

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
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      deadline.expired = true
      reject(chatError('UNAVAILABLE', `${what} did not finish within ${ms} ms: the database does not answer`))
    }, ms)
  })
  const running = work(deadline)
  running.catch(() => {})
  try {
    return await Promise.race([running, timeout])
  } finally {
    clearTimeout(timer)
  }
}
