export interface BackoffOptions {
  /** The first delay's ceiling in ms (500). */
  initialDelayMs?: number
  /** The ceiling never grows past this, in ms (30 000). */
  maxDelayMs?: number
  /** How much the ceiling grows per failed attempt (2). */
  factor?: number
}

/**
 * Exponential backoff with full jitter: a uniformly random delay in [0, min(max, initial * factor^attempt)).
 * Spreads the reconnects of many clients cut at once (a server restart) instead of bunching them.
 * `attempt` counts from 0; `random` returns a number in [0, 1).
 */
export function backoffDelay (attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialDelayMs ?? 500
  const max = options.maxDelayMs ?? 30000
  const factor = options.factor ?? 2
  const ceiling = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt)))
  return Math.floor(random() * ceiling)
}
