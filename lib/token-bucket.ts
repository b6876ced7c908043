/** A token bucket refilled lazily from the clock: no timer per socket. */
export class TokenBucket {
  private tokens: number
  private updatedAt: number

  constructor (private readonly rate: number, private readonly burst: number, now = Date.now()) {
    this.tokens = burst
    this.updatedAt = now
  }

  /** Takes one token; returns 0 when taken, else the milliseconds until one is available. */
  take (now = Date.now()): number {
    const wait = this.wait(now)
    if (wait === 0) this.tokens -= 1
    return wait
  }

  /**
   * The milliseconds until a token is available (0: one is), taking nothing: for a frame that must pass
   * two buckets, so that a refusal by the second spends nothing of the first.
   */
  wait (now = Date.now()): number {
    const elapsed = now - this.updatedAt
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + elapsed * this.rate / 1000)
      this.updatedAt = now
    }
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) * 1000 / this.rate)
  }
}
