import type { RedisConnection } from '../../../lib/redis-connection.js'
import type { FeedEntry, FeedSink } from '../types.js'

/**
 * XADD `<prefix>feed` MAXLEN ~ maxLen, fields `id` and `entry` (the JSON); one MULTI per batch. One key, so
 * on a Redis Cluster the MULTI goes to the one shard that owns it.
 */
export class RedisStreamSink implements FeedSink {
  readonly name = 'redis-stream'
  readonly key: string

  constructor (private readonly client: RedisConnection, prefix: string, private readonly maxLen: number) {
    this.key = `${prefix}feed`
  }

  async deliver (entries: FeedEntry[]): Promise<void> {
    const multi = this.client.multi()
    for (const entry of entries) {
      multi.xadd(this.key, 'MAXLEN', '~', String(this.maxLen), '*', 'id', String(entry.id), 'entry', JSON.stringify(entry))
    }
    const results = await multi.exec()
    if (results === null) throw new Error('redis-stream sink: transaction aborted')
    for (const [error] of results) if (error !== null) throw error
  }

  async close (): Promise<void> {}
}
