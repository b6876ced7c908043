import { createHmac, timingSafeEqual } from 'node:crypto'
import t, { type Test } from 'tap'
import { sql } from 'drizzle-orm'
import { Redis } from 'ioredis'
import { resolveConfig } from '../plugins/core/config.js'
import type { FeedType } from '../plugins/feed/types.js'
import { feedCounter, position, query, stage } from './fixtures/feed.js'
import { startNode, type TestNode } from './fixtures/server.js'
import { until } from './fixtures/timing.js'
import { WebhookReceiver, type WebhookRequest } from './fixtures/webhook-receiver.js'

// The webhook sink of the event feed (protocol 11.4, docs/feed.md "Webhooks"), against real receivers on
// loopback. Outbox rows are staged directly, as in test/feed.test.ts.

const SECRET = 'a-webhook-secret-long-enough'
const FAILURES = 'chat_feed_delivery_failures_total'

function webhookNode (t: Test, webhooks: Array<{ url: string, secret?: string, events?: FeedType[], timeoutMs?: number, maxAgeSec?: number }>, extra: { batchSize?: number, redisStream?: boolean } = {}): Promise<TestNode> {
  return startNode(t, {
    redis: extra.redisStream === true ? 'env' : null,
    options: {
      feed: {
        leaseMs: 1000,
        batchSize: extra.batchSize ?? 500,
        redisStream: extra.redisStream ?? false,
        webhooks: webhooks.map(({ secret, events, ...rest }) => ({ secret: secret ?? SECRET, ...(events !== undefined ? { events } : {}), ...rest })),
      },
    },
  })
}

const sinkOf = (receiver: WebhookReceiver): string => `webhook:${receiver.url}`

function range (from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, index) => index + from)
}

/** Recomputes the signature the way a receiver would: HMAC-SHA256 of "t.body", compared in constant time. */
function signatureVerifies (request: WebhookRequest, secret: string): boolean {
  const header = request.headers['x-chat-signature']
  if (typeof header !== 'string') return false
  const parts = new Map(header.split(',').map((part) => part.split('=', 2) as [string, string]))
  const time = parts.get('t')
  const given = Buffer.from(parts.get('v1') ?? '', 'hex')
  const expected = createHmac('sha256', secret).update(`${time ?? ''}.${request.body}`).digest()
  return time !== undefined && /^\d+$/.test(time) && given.length === expected.length && timingSafeEqual(given, expected)
}

t.test('every entry reaches the webhook at least once, in order, in signed JSON batches', async (t) => {
  const receiver = await WebhookReceiver.start(t)
  const node = await webhookNode(t, [{ url: receiver.url }], { batchSize: 4 })
  await stage(node, 6)
  await until('the first entries arrive', () => receiver.accepted().length === 6)
  await stage(node, 5)
  await until('all arrive', () => receiver.accepted().length === 11)
  t.same(receiver.accepted().map(({ id }) => id), range(1, 11), 'ids 1..11, in order, none lost')
  t.ok(receiver.requests.every((request) => signatureVerifies(request, SECRET)), 'every request is signed with the secret')
  t.notOk(signatureVerifies(receiver.requests[0] as WebhookRequest, 'another-secret-long-enough'), 'another secret does not verify')
  t.ok(receiver.requests.every(({ headers }) => headers['content-type'] === 'application/json'), 'JSON')
  t.ok(receiver.requests.every(({ entries }) => entries.length >= 1 && entries.length <= 4), 'batches of at most batchSize')
  await until('the position is stored', async () => (await position(node, sinkOf(receiver))) === 11)
})

t.test('a receiver answering 500 for about 10 s, then 200: nothing lost, in order, failures counted', async (t) => {
  const receiver = await WebhookReceiver.start(t)
  // A window of ~10 s stands for the minute (docs/feed.md says so); the relay backs off within it.
  let failUntil = 0
  receiver.answer = () => {
    if (failUntil === 0) failUntil = Date.now() + 10_000
    return Date.now() < failUntil ? 500 : 200
  }
  const node = await webhookNode(t, [{ url: receiver.url }], { batchSize: 3 })
  await stage(node, 4)
  await until('a failure is counted', async () => (await feedCounter(node, FAILURES, sinkOf(receiver))) > 0)
  t.equal(await position(node, sinkOf(receiver)), 0, 'the position does not move while the receiver refuses')
  await stage(node, 4)
  await until('all arrive once the receiver answers 200', () => receiver.accepted().length === 8, { timeoutMs: 60_000 })
  t.same(receiver.accepted().map(({ id }) => id), range(1, 8), 'ids 1..8, in order, none lost')
  t.ok(receiver.requests.some(({ status }) => status === 500), 'some requests were refused')
  t.ok(await feedCounter(node, FAILURES, sinkOf(receiver)) >= 2, 'the failures are counted (each one retried)')
  t.equal(await feedCounter(node, 'chat_feed_parked_total', sinkOf(receiver)), 0, 'nothing parked within maxAgeSec')
  await until('the position is stored', async () => (await position(node, sinkOf(receiver))) === 8)
})

t.test('a batch refused past maxAgeSec is parked and counted; later entries flow', async (t) => {
  const receiver = await WebhookReceiver.start(t)
  // Entries 1..3 (the first batch) are refused for good; anything after them is taken.
  receiver.answer = ({ entries }) => entries.some(({ id }) => id <= 3) ? 500 : 200
  const node = await webhookNode(t, [{ url: receiver.url, maxAgeSec: 1 }], { batchSize: 3 })
  await stage(node, 5)
  await until('4 and 5 arrive after the parked batch', () => receiver.accepted().length === 2, { timeoutMs: 20_000 })
  t.same(receiver.accepted().map(({ id }) => id), [4, 5])
  const parked = await query<{ entry_id: string | number, entry: { id: number, type: string }, last_error: string }>(node, sql`
    select entry_id, entry, last_error from chat.feed_parked where sink = ${sinkOf(receiver)} order by entry_id`)
  t.same(parked.map(({ entry_id: id }) => Number(id)), [1, 2, 3], 'the refused batch is in chat.feed_parked')
  t.same(parked.map(({ entry }) => entry.type), ['room.updated', 'room.updated', 'room.updated'], 'with the whole entry')
  t.match(parked[0]?.last_error, /HTTP 500/, 'and the last error')
  t.equal(await feedCounter(node, 'chat_feed_parked_total', sinkOf(receiver)), 3, 'chat_feed_parked_total counts the entries')
  await until('the position is past them', async () => (await position(node, sinkOf(receiver))) === 5)
})

t.test('a redirect is not followed: the target gets nothing, the position holds, the failure is counted', async (t) => {
  const target = await WebhookReceiver.start(t, '/elsewhere')
  const receiver = await WebhookReceiver.start(t)
  receiver.answer = () => ({ status: 302, headers: { location: target.url } })
  const node = await webhookNode(t, [{ url: receiver.url }])
  await stage(node, 2)
  await until('two refused attempts', async () => (await feedCounter(node, FAILURES, sinkOf(receiver))) >= 2 && receiver.requests.length >= 2)
  t.equal(target.requests.length, 0, 'nothing reached the redirect target')
  t.equal(await position(node, sinkOf(receiver)), 0, 'the position did not move')
  t.equal(receiver.accepted().length, 0)
})

t.test('events: the webhook gets only its types; batches of none still move its position', async (t) => {
  const receiver = await WebhookReceiver.start(t)
  const everything = await WebhookReceiver.start(t, '/all')
  const node = await webhookNode(t, [{ url: receiver.url, events: ['room.deleted'] }, { url: everything.url }], { batchSize: 2 })
  await stage(node, 3)
  await stage(node, 2, { type: 'room.deleted' })
  await stage(node, 3)
  await until('the other webhook has all', () => everything.accepted().length === 8)
  await until('the filtered webhook has moved past everything', async () => (await position(node, sinkOf(receiver))) === 8)
  t.same(receiver.accepted().map(({ id, type }) => [id, type]), [[4, 'room.deleted'], [5, 'room.deleted']], 'only room.deleted')
  t.ok(receiver.requests.every(({ entries }) => entries.length > 0), 'no empty POST')
  t.same(everything.accepted().map(({ id }) => id), range(1, 8), 'a webhook without events gets all')
})

t.test('a call past timeoutMs fails and is retried', async (t) => {
  const receiver = await WebhookReceiver.start(t)
  receiver.answer = () => receiver.requests.length === 1 ? 'hold' : 200
  const node = await webhookNode(t, [{ url: receiver.url, timeoutMs: 200 }])
  await stage(node, 3)
  await until('the held call times out and is counted', async () => (await feedCounter(node, FAILURES, sinkOf(receiver))) >= 1)
  await until('the retry delivers', () => receiver.accepted().length === 3)
  t.same(receiver.accepted().map(({ id }) => id), [1, 2, 3])
  receiver.release()
})

t.test('a held webhook does not hold the Redis Stream back', { skip: (process.env.REDIS_URL ?? '') !== '' ? false : 'needs REDIS_URL' }, async (t) => {
  const receiver = await WebhookReceiver.start(t)
  receiver.answer = () => 'hold'
  const node = await webhookNode(t, [{ url: receiver.url, timeoutMs: 60_000 }], { batchSize: 2, redisStream: true })
  const redis = new Redis(process.env.REDIS_URL as string)
  t.teardown(() => redis.quit())
  await stage(node, 6)
  await until('the webhook holds its first call', () => receiver.requests.length === 1)
  await until('the stream gets every entry meanwhile', async () => (await position(node, 'redis-stream')) === 6)
  t.equal(receiver.requests.length, 1, 'the webhook is still on its first batch')
  const stream = await redis.xrange(`${node.app.chat.config.redisPrefix}feed`, '-', '+')
  t.equal(stream.length, 6)
  receiver.answer = () => 200
  receiver.release()
  await until('the webhook catches up', () => receiver.accepted().length === 6)
  t.same(receiver.accepted().map(({ id }) => id), range(1, 6), 'in order')
})

t.test('webhook options are checked at registration', async (t) => {
  const feed = (webhook: Record<string, unknown>): void => { resolveConfig({ feed: { webhooks: [webhook as never] } }) }
  t.throws(() => feed({ url: 'http://127.0.0.1:1/hook', secret: 'short' }), /feed\.webhooks\.0\.secret/, 'a short secret')
  t.throws(() => feed({ url: 'ftp://127.0.0.1/hook', secret: SECRET }), /feed\.webhooks\.0\.url/, 'not http(s)')
  t.throws(() => feed({ url: 'http://user:pw@127.0.0.1/hook', secret: SECRET }), /credentials/, 'credentials in the URL')
  t.throws(() => feed({ url: 'http://127.0.0.1/hook', secret: SECRET, events: ['message.sent'] }), /feed\.webhooks\.0\.events/, 'an unknown type')
  t.throws(() => resolveConfig({ feed: { webhooks: [{ url: 'http://127.0.0.1/hook', secret: SECRET }, { url: 'http://127.0.0.1/hook?v=2', secret: SECRET }] } }), /same address/, 'two webhooks on one position')
  const config = resolveConfig({ feed: { webhooks: [{ url: 'https://example.test/hook', secret: SECRET }] } })
  t.match(config.feed, { webhooks: [{ timeoutMs: 5000, maxAgeSec: 86400 }] }, 'defaults')
})
