/**
 * A service receiving the chat feed (docs/feed.md, Webhooks) as signed POSTs, and "pushing" to each
 * offline recipient of a new message. It checks the signature on the raw body before parsing, refuses an
 * old timestamp (a replay), and dedupes by entry id (delivery is at least once). Only a 2xx confirms.
 *
 *   FEED_WEBHOOK_SECRET=… PORT=8787 npx tsx examples/feed-webhook-receiver.ts
 *   (with the chat's option feed: {webhooks: [{url: 'http://127.0.0.1:8787/chat-feed', secret: …}]})
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer } from 'node:http'
import type { FeedEntry } from '../plugins/feed/types.js'

const secret = process.env.FEED_WEBHOOK_SECRET ?? ''
if (secret.length < 16) throw new Error('set FEED_WEBHOOK_SECRET (16 characters or more)')
const TOLERANCE_SEC = 300

function verified (header: string, rawBody: string): boolean {
  const { t, v1 } = Object.fromEntries(header.split(',').map((part) => part.split('=', 2))) as { t?: string, v1?: string }
  const expected = createHmac('sha256', secret).update(`${t ?? ''}.${rawBody}`).digest()
  const given = Buffer.from(v1 ?? '', 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected) && Math.abs(Date.now() / 1000 - Number(t)) <= TOLERANCE_SEC
}

let lastId = 0 // ids only increase: anything at or below the last handled one is a redelivery

createServer((request, response) => {
  const chunks: Buffer[] = []
  request.on('data', (chunk: Buffer) => chunks.push(chunk))
  request.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8')
    const signature = request.headers['x-chat-signature']
    if (request.method !== 'POST' || typeof signature !== 'string' || !verified(signature, body)) {
      response.writeHead(401).end()
      return
    }
    const { entries } = JSON.parse(body) as { entries: FeedEntry[] }
    for (const entry of entries) {
      if (entry.id <= lastId) continue
      lastId = entry.id
      const recipients = entry.type === 'message.created' ? entry.data.recipients as Array<{ userId: string, online: boolean }> : []
      for (const { userId, online } of recipients) if (!online) console.log(`push to ${userId}`)
    }
    response.writeHead(204).end()
  })
}).listen(Number(process.env.PORT ?? 8787), '127.0.0.1')
