import type { Connection } from './connection.js'

/** Missed pongs after which a socket is taken for dead and cut. */
const MAX_MISSED_PONGS = 2

/**
 * The state of one socket's session, from its upgrade to its close; `Sessions` (sessions.ts) drives it.
 *
 * A socket goes through: authenticating (no user yet; its frames wait in order behind the start that
 * the upgrade began, or come one after another until an `auth` frame starts it), starting (user set,
 * registered on the hub, pushes held), established (session.ready sent: frames are handled as they
 * come), closed. One timer at a time: the auth deadline while authenticating, then the token's expiry.
 */
export class Session {
  /** Heartbeat pings not answered yet. */
  private missedPongs = 0
  /** The auth deadline, then the token's expiry. */
  private timer: NodeJS.Timeout | undefined
  /**
   * The last frame (or the start) in the socket's queue while the session is not established, so that
   * session.ready is always the first frame after authentication; null once frames may run as they come.
   */
  private pending: Promise<void> | null = Promise.resolve()

  /** `address` is the client address counted against maxConnectionsPerIp; null when it was at its cap. */
  constructor (readonly connection: Connection, readonly address: string | null) {}

  /** Handles a frame: after what is pending while the session is being established, at once afterwards. */
  receive (handle: () => Promise<void>): void {
    if (this.pending === null) {
      void handle()
      return
    }
    this.enqueue(this.pending.then(() => handle()))
  }

  /** Frames that arrive meanwhile wait for the start the upgrade began (its token or the host's hook). */
  startWith (start: Promise<void>): void {
    this.enqueue(start)
  }

  private enqueue (step: Promise<void>): void {
    const tail: Promise<void> = step.then(() => {
      if (this.connection.user !== null && this.pending === tail) this.pending = null
    })
    this.pending = tail
  }

  /** Arms the one timer of the session (the auth deadline or the token's expiry), replacing the last. */
  setTimer (timer: NodeJS.Timeout): void {
    this.clearTimer()
    this.timer = timer
  }

  clearTimer (): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }

  /** One heartbeat: a socket that missed two pongs is cut, any other is pinged. */
  beat (): void {
    const connection = this.connection
    if (this.missedPongs >= MAX_MISSED_PONGS) {
      connection.log.info('missed two pongs, terminating')
      connection.terminate()
      return
    }
    this.missedPongs += 1
    try {
      connection.socket.ping()
    } catch {
      connection.terminate()
    }
  }

  pong (): void {
    this.missedPongs = 0
  }
}
