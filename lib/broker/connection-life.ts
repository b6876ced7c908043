import { withTimeout } from '../deadline.js'
import { isCluster, isSentinelClient, type RedisConnection } from '../redis-connection.js'

/*
 * The broker's connections from start to end: waiting until one is ready, closing one without waiting
 * for a Redis that does not answer, describing a host's client without its credentials.
 */

export async function waitForReady (connection: RedisConnection, timeoutMs: number, description: string): Promise<void> {
  if (connection.status === 'ready') return
  if (connection.status === 'end') throw new Error(`Redis at ${description}: connection closed`)
  await new Promise<void>((resolve, reject) => {
    let lastError: unknown
    const onError = (error: unknown): void => { lastError = error }
    const onReady = (): void => { done(); resolve() }
    const onEnd = (): void => { done(); reject(new Error(`Redis at ${description}: connection closed`)) }
    const timer = setTimeout(() => {
      done()
      const reason = lastError instanceof Error ? `: ${lastError.message}` : ''
      reject(new Error(`Redis at ${description} unreachable: not ready within ${Math.max(0, timeoutMs)} ms${reason}`, { cause: lastError }))
    }, Math.max(0, timeoutMs))
    function done (): void {
      clearTimeout(timer)
      connection.off('ready', onReady)
      connection.off('error', onError)
      connection.off('end', onEnd)
    }
    connection.on('ready', onReady)
    connection.on('error', onError)
    connection.on('end', onEnd)
  })
}

export async function quit (connection: RedisConnection, timeoutMs: number): Promise<void> {
  if (connection.status === 'end') return
  if (connection.status === 'reconnecting') {
    // No socket, only a timer to the next attempt: cancelling it is all, and no 'end' would follow.
    connection.disconnect()
    return
  }
  // Resolving on 'end' rather than on QUIT's reply: the socket is gone when close() returns.
  const ended = new Promise<void>((resolve) => { connection.once('end', () => { resolve() }) })
  if (connection.status === 'ready') {
    // QUIT lets Redis answer what is in flight; a server that does not answer within the bound is cut.
    connection.quit().catch(() => { connection.disconnect() })
  } else {
    connection.disconnect()
  }
  // `ended` never rejects: a rejection here is the bound passing.
  await withTimeout(ended, timeoutMs, () => new Error('Redis did not close in time')).catch(() => { connection.disconnect() })
}

export function describeClient (client: RedisConnection): string {
  if (isCluster(client)) return `a Redis Cluster (host client, ${client.nodes('master').length} primaries known)`
  if (isSentinelClient(client)) return `the primary "${client.options.name ?? ''}" behind ${client.options.sentinels?.length ?? 0} Sentinels (host client)`
  const { host, port, path, db } = client.options
  const where = path !== undefined && path !== null && path !== '' ? path : `${host ?? '127.0.0.1'}:${port ?? 6379}`
  return `redis://${where}${db !== undefined && db !== 0 ? `/${db}` : ''} (host client)`
}
