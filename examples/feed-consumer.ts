/**
 * A service reading the chat feed (docs/feed.md) from the Redis Stream with a consumer group, and
 * "pushing" to each offline or mentioned recipient of a new message. Delivery is at least once: dedupe by entry id.
 *
 *   REDIS_URL=redis://… CHAT_REDIS_PREFIX=chat: npx tsx examples/feed-consumer.ts
 */
import { Redis } from 'ioredis'
import type { FeedEntry } from '../plugins/feed/types.js'

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
const key = `${process.env.CHAT_REDIS_PREFIX ?? 'chat:'}feed`
const group = 'push-notifications'
const consumer = `consumer-${process.pid}`

try {
  await redis.xgroup('CREATE', key, group, '$', 'MKSTREAM')
} catch (error) {
  if (!String(error).includes('BUSYGROUP')) throw error // the group exists already
}

let lastId = 0 // ids only increase: anything at or below the last handled one is a redelivery
for (;;) {
  const reply = await redis.xreadgroup('GROUP', group, consumer, 'COUNT', 100, 'BLOCK', 5000, 'STREAMS', key, '>') as
    Array<[string, Array<[string, string[]]>]> | null
  for (const [, items] of reply ?? []) {
    for (const [streamId, fields] of items) {
      const entry = JSON.parse(fields[fields.indexOf('entry') + 1] ?? '{}') as FeedEntry
      if (entry.id > lastId) {
        lastId = entry.id
        const recipients = entry.type === 'message.created' ? entry.data.recipients as Array<{ userId: string, online: boolean }> : []
        // The offline get a push; so does whoever was mentioned ("*": everyone), online or not.
        const mentions = new Set(entry.type === 'message.created' ? entry.data.mentions as string[] : [])
        for (const { userId, online } of recipients) {
          if (!online || mentions.has(userId) || mentions.has('*')) console.log(`push to ${userId}`)
        }
      }
      await redis.xack(key, group, streamId)
    }
  }
}
