/**
 * What Redis did: calls per command from INFO commandstats (server-wide: another agent's benchmarks on
 * the same Redis are counted too, which is why the coordinator subtracts a quiet window's rate), and the
 * subscribers of the rooms' channels (PUBSUB NUMSUB): how many nodes Redis writes each room frame to.
 */
import { Redis } from 'ioredis'

export type CommandCalls = Map<string, number>

export async function commandCalls (redis: Redis): Promise<CommandCalls> {
  const text = await redis.info('commandstats')
  const calls: CommandCalls = new Map()
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1] as string, Number(match[2]))
  return calls
}

/** after − before, per command (commands absent before count from 0). */
export function callsBetween (before: CommandCalls, after: CommandCalls): CommandCalls {
  const delta: CommandCalls = new Map()
  for (const [name, calls] of after) {
    const difference = calls - (before.get(name) ?? 0)
    if (difference > 0) delta.set(name, difference)
  }
  return delta
}

export function total (calls: CommandCalls): number {
  let sum = 0
  for (const value of calls.values()) sum += value
  return sum
}

/** Mean subscribers per channel, asked 200 channels at a time. */
export async function meanSubscribers (redis: Redis, channels: string[]): Promise<number> {
  let sum = 0
  for (let index = 0; index < channels.length; index += 200) {
    const reply = await redis.call('PUBSUB', 'NUMSUB', ...channels.slice(index, index + 200)) as Array<string | number>
    for (let at = 1; at < reply.length; at += 2) sum += Number(reply[at])
  }
  return sum / Math.max(1, channels.length)
}
