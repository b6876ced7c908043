import t, { type Test } from 'tap'
import { sql } from 'drizzle-orm'
import { rows } from '../db/client.js'
import { resolveConfig } from '../plugins/core/config.js'
import { routingKeyOf } from '../plugins/feed/sinks/rabbitmq-routing.js'
import type { FeedEntry } from '../plugins/feed/types.js'
import { connect, groupRoom, uid } from './fixtures/chat.js'
import { RABBITMQ_URL, bindQueue, brokerApp, brokerControlSkip, consume, rabbitMqSkip, testExchange, withChannel, type Received } from './fixtures/rabbitmq.js'
import { scopeOf } from './fixtures/rooms.js'
import { startNode, type TestNode } from './fixtures/server.js'
import { until } from './fixtures/timing.js'

// The feed's RabbitMQ sink (protocol 11.4, docs/feed.md "RabbitMQ") against the broker on this machine.
// Each test has an exchange of its own; outbox rows are inserted directly to choose tenants and types.

const skip = await rabbitMqSkip()
const controlSkip = skip === false ? await brokerControlSkip() : skip

async function query<T> (node: TestNode, statement: ReturnType<typeof sql>): Promise<T[]> {
  return rows<T>(await scopeOf(node).chatDb.execute(statement))
}

/** Stages the rows in one statement: they become visible together, so the relay moves them as one batch. */
async function stage (node: TestNode, staged: Array<{ tenant: string, type: string }>): Promise<void> {
  const values = staged.map(({ tenant, type }, index) => sql`(${type}, ${tenant}, ${index + 1}, ${JSON.stringify({ n: index })}::jsonb)`)
  await query(node, sql`insert into chat.feed_outbox (type, tenant, seq, data) values ${sql.join(values, sql`, `)}`)
}

async function position (node: TestNode): Promise<number> {
  return Number((await query<{ position: string | number }>(node, sql`select position from chat.feed_positions where sink = 'rabbitmq'`))[0]?.position ?? 0)
}

async function failures (node: TestNode): Promise<number> {
  const metric = await scopeOf(node).chatMetrics.registry.getSingleMetric('chat_feed_delivery_failures_total')?.get()
  return metric?.values.filter(({ labels }) => labels.sink === 'rabbitmq').reduce((sum, { value }) => sum + value, 0) ?? 0
}

/** What a consumer keeps after deduping by id the documented way: only ids above the highest handled. */
function handledIds (received: Array<Received<FeedEntry>>): number[] {
  const kept: number[] = []
  for (const { entry } of received) if (entry.id > (kept[kept.length - 1] ?? 0)) kept.push(entry.id)
  return kept
}

function oneTo (count: number): number[] {
  return Array.from({ length: count }, (_, index) => index + 1)
}

async function startRelaying (t: Test, exchange: string): Promise<TestNode> {
  return await startNode(t, { options: { feed: { leaseMs: 1000, batchSize: 4, rabbitmq: { url: RABBITMQ_URL, exchange } } } })
}

t.test('options: feed.rabbitmq takes an amqp(s) URL and an exchange, chat.feed by default', async (t) => {
  const config = resolveConfig({ feed: { rabbitmq: { url: 'amqps://user:pass@broker.example:5671/vhost' } } })
  t.same(config.feed !== false && config.feed.rabbitmq, { url: 'amqps://user:pass@broker.example:5671/vhost', exchange: 'chat.feed' })
  t.throws(() => resolveConfig({ feed: { rabbitmq: { url: 'http://broker.example' } } }), /invalid option "feed\.rabbitmq\.url"/)
  t.throws(() => resolveConfig({ feed: { rabbitmq: { url: RABBITMQ_URL, exchange: 'amq.topic' } } }), /invalid option "feed\.rabbitmq\.exchange"/)
})

t.test('routing keys: <tenant>.<type>, the default tenant as _default, a tenant\'s dots escaped', async (t) => {
  const key = (tenant: string): string => routingKeyOf({ tenant, type: 'message.created' })
  t.equal(key(''), '_default.message.created')
  t.equal(key('acme'), 'acme.message.created')
  t.equal(key('a.b'), 'a%2Eb.message.created', 'one word per tenant')
  t.equal(key('_default'), '%5Fdefault.message.created', 'no tenant reads as the default one')
  t.equal(key('50%'), '50%25.message.created')
  t.match(key('x'.repeat(128).replaceAll('x', '.')), /^_sha256-[0-9a-f]{64}\.message\.created$/, 'a key past 255 bytes would be refused: a digest instead')
})

t.test('every entry reaches the exchange in id order, routed by tenant and type, persistent', { skip }, async (t) => {
  const exchange = testExchange()
  const everything = await consume<FeedEntry>(t, await bindQueue(t, exchange, '#'))
  const acme = await consume<FeedEntry>(t, await bindQueue(t, exchange, 'acme.#'))
  const created = await consume<FeedEntry>(t, await bindQueue(t, exchange, '*.message.created'))
  const node = await startRelaying(t, exchange)
  await stage(node, [
    { tenant: 'acme', type: 'room.updated' }, { tenant: 'globex', type: 'member.joined' }, { tenant: 'acme', type: 'member.left' },
    { tenant: '', type: 'room.updated' }, { tenant: 'a.b', type: 'room.updated' }, { tenant: 'acme', type: 'room.updated' },
  ])
  // The real send path stages room.created and message.created (default tenant) after those six.
  const alice = await connect(node, uid('alice'))
  const bob = await connect(node, uid('bob'))
  const roomId = await groupRoom(alice, [bob.id])
  await alice.client.ack('message.send', { roomId, content: 'hello' })
  await until('all eight confirmed', async () => await position(node) === 8)
  await until('all eight consumed', () => handledIds(everything).length === 8)

  t.same(handledIds(everything), oneTo(8), 'ids 1..8 in order')
  t.same(everything.map(({ routingKey }) => routingKey), everything.map(({ entry }) => routingKeyOf(entry)), 'routing key <tenant>.<type>')
  t.same([...new Set(everything.map(({ routingKey }) => routingKey))].sort(), [
    '_default.message.created', '_default.room.created', '_default.room.updated', 'a%2Eb.room.updated',
    'acme.member.left', 'acme.room.updated', 'globex.member.joined',
  ])
  for (const { entry, properties } of everything) {
    t.same({ deliveryMode: properties.deliveryMode, contentType: properties.contentType, messageId: properties.messageId, type: properties.type, id: properties.headers?.['x-feed-id'] },
      { deliveryMode: 2, contentType: 'application/json', messageId: String(entry.id), type: entry.type, id: entry.id }, `entry ${entry.id}: persistent JSON, its id`)
  }

  await until('acme\'s three', () => new Set(acme.map(({ entry }) => entry.id)).size === 3)
  t.same([...new Set(acme.map(({ entry }) => entry.tenant))], ['acme'], 'acme.# gets acme\'s entries only')
  t.same(handledIds(acme), [1, 3, 6], 'in order')

  await until('the message', () => created.length > 0)
  const message = created[0] as Received<FeedEntry>
  t.equal(message.routingKey, '_default.message.created', '*.message.created: the message sent over the socket')
  t.equal((message.entry.data.message as { content: string }).content, 'hello')
  t.same(message.entry.data.recipients, [{ userId: bob.id, online: true }], 'with its recipients')
  t.same([...new Set(created.map(({ entry }) => entry.type))], ['message.created'], 'nothing else')
})

t.test('a nacked batch is retried without advancing the position; nothing is skipped', { skip }, async (t) => {
  const exchange = testExchange()
  const everything = await consume<FeedEntry>(t, await bindQueue(t, exchange, '#'))
  // A queue that refuses every message: the broker nacks each publish routed to it.
  const refusing = await bindQueue(t, exchange, 'refuse.#', { arguments: { 'x-max-length': 0, 'x-overflow': 'reject-publish' } })
  const node = await startRelaying(t, exchange)
  await stage(node, [{ tenant: '', type: 'room.updated' }, { tenant: 'refuse', type: 'room.updated' }, { tenant: '', type: 'room.updated' }])
  await until('a failed delivery is counted', async () => await failures(node) > 0)
  t.equal(await position(node), 0, 'the position did not move past the nacked batch')
  await withChannel((channel) => channel.deleteQueue(refusing))
  await until('confirmed after the refusing queue is gone', async () => await position(node) === 3, { timeoutMs: 40_000 })
  await until('consumed', () => handledIds(everything).length === 3)
  t.same(handledIds(everything), oneTo(3), 'every id, in order (deduped by id)')
})

t.test('a channel error (the exchange exists with another type) fails deliveries without crashing the node', { skip }, async (t) => {
  const exchange = testExchange()
  await withChannel((channel) => channel.assertExchange(exchange, 'fanout', { durable: false }))
  t.teardown(() => withChannel((channel) => channel.deleteExchange(exchange)).catch(() => {}))
  const node = await startRelaying(t, exchange)
  await stage(node, [{ tenant: '', type: 'room.updated' }])
  await until('two failed deliveries are counted (a reconnect after the first)', async () => await failures(node) >= 2, { timeoutMs: 10_000 })
  t.equal(await position(node), 0, 'nothing confirmed')
  t.ok(scopeOf(node).chatFeed?.relaying(), 'still relaying')
})

t.test('a RabbitMQ restart (rabbitmqctl stop_app / start_app): every id arrives, in order', { skip: controlSkip }, async (t) => {
  const exchange = testExchange()
  // Durable: what was confirmed before the restart is still in it after.
  const queue = await bindQueue(t, exchange, '#', { durable: true })
  const node = await startRelaying(t, exchange)
  await stage(node, Array.from({ length: 5 }, () => ({ tenant: 'acme', type: 'room.updated' })))
  await until('five confirmed before the restart', async () => await position(node) === 5)
  // Batches of four are still being published when the broker stops (or, on a fast run, all are confirmed).
  const total = 5 + 300
  await stage(node, Array.from({ length: total - 5 }, () => ({ tenant: 'acme', type: 'member.joined' })))

  t.teardown(() => brokerApp('start_app').then(() => {}, () => {}))
  const stopMs = await brokerApp('stop_app')
  t.comment(`stop_app took ${stopMs} ms; ${await position(node)} of ${total} confirmed then`)
  const held = await position(node)
  if (held < total) {
    await until('a failed delivery is counted', async () => await failures(node) > 0)
    const failed = await failures(node)
    await until('a retry fails too', async () => await failures(node) > failed)
    t.equal(await position(node), held, 'the position holds while the broker is down')
  }
  t.comment(`start_app took ${await brokerApp('start_app')} ms`)

  await until('the rest confirmed', async () => await position(node) === total, { timeoutMs: 40_000 })
  const received = await consume<FeedEntry>(t, queue)
  await until('all consumed', () => handledIds(received).length === total)
  t.same(handledIds(received), oneTo(total), `ids 1..${total} in order, those confirmed before the restart kept by the durable queue`)
  t.comment(`duplicates: ${received.length - total}, failed deliveries: ${await failures(node)}`)
})
