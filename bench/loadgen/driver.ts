/**
 * What every scenario of the load generator uses: progress lines, tokens, message text, connecting
 * (with retries) and a bounded pool for opening many sockets at once.
 */
import { createSigner } from 'fast-jwt'
import { sleep } from '../lib.js'
import type { Peer, Protocol } from '../protocols.js'

export const log = (message: string): void => { process.stderr.write(`  [loadgen] ${message}\n`) }

/** Runs `task` over `items` with at most `limit` at once. */
export async function pool<T, R> (items: T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length)
  let next = 0
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await task(items[index] as T, index)
    }
  })
  await Promise.all(workers)
  return results
}

export function filler (length: number): string {
  const text = 'the quick brown fox jumps over the lazy dog and keeps on chatting about the weather today '
  return text.repeat(Math.ceil(length / text.length)).slice(0, Math.max(0, length))
}

export function tokenSigner (secret: string): (userId: string) => string {
  const sign = createSigner({ key: secret, expiresIn: 2 * 3600_000 })
  return (userId) => sign({ sub: userId, name: `Bench ${userId}` })
}

export async function connectWithRetry (protocol: Protocol, url: string, userId: string, token: string): Promise<Peer> {
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      return await protocol.connect(url, userId, token)
    } catch (error) {
      lastError = error
      await sleep(200 * (attempt + 1))
    }
  }
  throw lastError
}
