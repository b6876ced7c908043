import type { RedisConnection } from '../../lib/redis-connection.js'

/**
 * Slow mode's turns (protocol 11.3): one send per member and room per slowModeSec. With Redis a turn is
 * one `SET NX PX` shared by every node (one key per member and room: on a cluster the turns spread over its slots), so two sockets of one member on two nodes cannot both send; on
 * one node without Redis, a map of when each turn ends.
 */
export interface SlowModeTurns {
  /** Takes the turn of `key` for `ms`; null when taken, else the milliseconds until it can be. */
  take (key: string, ms: number): Promise<number | null>
  /** Hands a taken turn back: the send that took it wrote nothing (its batch failed, or it was a retry). */
  giveBack (key: string): Promise<void>
}

export function redisTurns (client: RedisConnection, prefix: string): SlowModeTurns {
  return {
    async take (key, ms) {
      const taken = await client.set(`${prefix}slow:${key}`, '1', 'PX', ms, 'NX')
      if (taken === 'OK') return null
      const left = await client.pttl(`${prefix}slow:${key}`)
      // The key expired between the two commands: the next send takes it.
      return Math.max(1, left)
    },
    async giveBack (key) {
      await client.del(`${prefix}slow:${key}`)
    },
  }
}

/** Turns ending more than this far apart are swept from the map in one pass, not per send. */
const SWEEP_EVERY = 1024

export function localTurns (now: () => number = Date.now): SlowModeTurns {
  const endsAt = new Map<string, number>()
  let takes = 0
  return {
    async take (key, ms) {
      const at = now()
      if (++takes % SWEEP_EVERY === 0) for (const [other, end] of endsAt) if (end <= at) endsAt.delete(other)
      const end = endsAt.get(key)
      if (end !== undefined && end > at) return end - at
      endsAt.set(key, at + ms)
      return null
    },
    async giveBack (key) {
      endsAt.delete(key)
    },
  }
}
