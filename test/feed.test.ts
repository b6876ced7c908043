import t, { type Test } from 'tap'
import { sql } from 'drizzle-orm'
import { Redis } from 'ioredis'
import postgres from 'postgres'
import { connect, groupRoom, uid } from './fixtures/chat.js'
import { freshDatabaseUrl } from './fixtures/database.js'
import { feedCounter, position, query, stage } from './fixtures/feed.js'
import { RedisServer, hasRedisServer } from './fixtures/redis-server.js'
import { sharedServicesSkip, startCluster, startNode, type TestNode } from './fixtures/server.js'
import { until } from './fixtures/timing.js'

// The event feed relay (protocol 11.4, docs/feed.md). Most outbox rows are inserted directly, to count
// and order them; test/feed-outbox.test.ts covers what the event writers stage.

const hasRedis = (process.env.REDIS_URL ?? '') !== ''
const hasPostgres = (process.env.DATABASE_URL ?? '') !== ''

interface Entry { id: number, type: string, tenant: string, roomId: string | null, actorId: string | null, data: Record<string, unknown> }

async function feedIds (node: TestNode): Promise<number[]> {
  return (await query<{ id: string | number }>(node, sql`select id from chat.feed order by id`)).map(({ id }) => Number(id))
}

async function outboxSize (node: TestNode): Promise<number> {
  return Number((await query<{ n: string | number }>(node, sql`select count(*) as n from chat.feed_outbox`))[0]?.n)
}

async function streamOf (redis: Redis, node: TestNode): Promise<Entry[]> {
  const items = await redis.xrange(`${node.app.chat.config.redisPrefix}feed`, '-', '+')
  return items.map(([, fields]) => JSON.parse(fields[fields.indexOf('entry') + 1] as string) as Entry)
}

function gapless (t: Test, ids: number[], from = 1): void {
  t.same(ids, ids.map((_, index) => index + from), 'ids increase by one, none skipped')
}

t.test('without a sink the relay moves the outbox into the feed, ids gapless', async (t) => {
  const node = await startNode(t, { redis: null, options: { feed: { leaseMs: 1000 } } })
  await stage(node, 7)
  await until('the outbox is moved', async () => (await outboxSize(node)) === 0 && (await feedIds(node)).length === 7)
  gapless(t, await feedIds(node))
  t.ok(node.app.chat.scope.chatFeed?.relaying(), 'the only node relays')
})

t.test('feed: false starts no relay', async (t) => {
  const node = await startNode(t, { redis: null, options: { feed: false } })
  await stage(node, 2)
  // The lease is taken at onReady; after a relay's idle period a running relay would have moved them.
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal((await query(node, sql`select * from chat.feed_lease where name = 'relay'`)).length, 0, 'no relay lease row (the retention job has a lease of its own)')
  t.equal(await outboxSize(node), 2, 'nothing moved')
  t.equal(node.app.chat.scope.chatFeed, null)
})

t.test('transactions committing out of staged order: the feed gets every row', { skip: hasPostgres ? false : 'needs DATABASE_URL (two connections to one Postgres)' }, async (t) => {
  const database = await freshDatabaseUrl(t)
  const node = await startNode(t, { database, redis: null, options: { feed: { leaseMs: 1000 } } })
  const first = postgres(database, { max: 1 })
  const second = postgres(database, { max: 1 })
  t.teardown(async () => { await first.end(); await second.end() })
  let releaseFirst = (): void => {}
  const firstGate = new Promise<void>((resolve) => { releaseFirst = resolve })
  let firstStaged = (): void => {}
  const staged = new Promise<void>((resolve) => { firstStaged = resolve })
  const firstTx = first.begin(async (tx) => {
    await tx`insert into chat.feed_outbox (type, tenant, data) values ('room.updated', '', '{"tx":"first"}'::jsonb)`
    firstStaged()
    await firstGate
  })
  await staged
  await second.begin(async (tx) => {
    await tx`insert into chat.feed_outbox (type, tenant, data) values ('room.updated', '', '{"tx":"second"}'::jsonb)`
  })
  await until('the later-staged, earlier-committed row is in the feed', async () => (await feedIds(node)).length === 1)
  releaseFirst()
  await firstTx
  await until('the earlier-staged row follows', async () => (await feedIds(node)).length === 2)
  const feed = await query<{ id: string | number, data: { tx: string } }>(node, sql`select id, data from chat.feed order by id`)
  t.same(feed.map(({ id, data }) => [Number(id), data.tx]), [[1, 'second'], [2, 'first']], 'numbered in the order they became visible')
})

t.test('the Redis Stream gets every entry once, in order, with recipients', { skip: hasRedis ? false : 'needs REDIS_URL' }, async (t) => {
  const node = await startNode(t, { options: { feed: { leaseMs: 1000, redisStream: true, batchSize: 4 } } })
  const redis = new Redis(process.env.REDIS_URL as string)
  t.teardown(() => redis.quit())
  const alice = await connect(node, uid('alice'))
  const bob = await connect(node, uid('bob'))
  const carol = uid('carol')
  const roomId = await groupRoom(alice, [bob.id, carol])
  await stage(node, 9)
  // The real send path stages it (with the room.created before it: 11 entries in all).
  await alice.client.ack('message.send', { roomId, content: 'hello' })
  await until('the stream has all', async () => (await streamOf(redis, node)).length === 11)
  const entries = await streamOf(redis, node)
  gapless(t, entries.map(({ id }) => id))
  t.equal(entries[0]?.type, 'room.created', 'the room first')
  await until('the position is stored', async () => (await position(node, 'redis-stream')) === 11)
  const created = entries.find(({ type }) => type === 'message.created')
  const recipients = (created?.data.recipients as Array<{ userId: string, online: boolean }>).sort((a, b) => a.userId.localeCompare(b.userId))
  t.same(recipients, [{ userId: bob.id, online: true }, { userId: carol, online: false }].sort((a, b) => a.userId.localeCompare(b.userId)), 'members but the sender, with presence')
})

t.test('the lease: one node relays, the other takes over when it stops', { skip: sharedServicesSkip() }, async (t) => {
  const nodes = await startCluster(t, 2, { options: { feed: { leaseMs: 1000, redisStream: true } } })
  const redis = new Redis(process.env.REDIS_URL as string)
  t.teardown(() => redis.quit())
  const relaying = (): TestNode[] => nodes.filter((node) => node.app.chat.scope.chatFeed?.relaying() === true)
  await until('one node relays', () => relaying().length === 1)
  const holder = relaying()[0] as TestNode
  const other = nodes.find((node) => node !== holder) as TestNode
  t.equal(relaying().length, 1, 'exactly one')
  await stage(other, 5)
  await until('delivered', async () => (await streamOf(redis, other)).length === 5)
  await holder.app.close()
  await until('the other takes over', () => relaying().length === 1 && relaying()[0] === other, { timeoutMs: 3000 })
  await stage(other, 5)
  await until('all delivered', async () => new Set((await streamOf(redis, other)).map(({ id }) => id)).size === 10)
  const ids = (await streamOf(redis, other)).map(({ id }) => id)
  t.same([...new Set(ids)], Array.from({ length: 10 }, (_, index) => index + 1), 'none lost, in order')
  t.comment(`duplicates across the takeover: ${ids.length - 10}`)
})

t.test('a Redis outage holds the position; after the restart all arrive in order', { skip: hasRedisServer() ? false : 'needs redis-server' }, async (t) => {
  const server = await RedisServer.start(t)
  const node = await startNode(t, { redis: server.url, options: { feed: { leaseMs: 1000, redisStream: true } } })
  await stage(node, 3)
  await until('delivered before the outage', async () => (await position(node, 'redis-stream')) === 3)
  await server.stop()
  await stage(node, 4)
  await until('moved into the feed', async () => (await feedIds(node)).length === 7)
  await until('a failed delivery is counted', async () => (await feedCounter(node, 'chat_feed_delivery_failures_total')) > 0)
  t.equal(await position(node, 'redis-stream'), 3, 'the position did not advance')
  await server.restart()
  const redis = new Redis(server.url)
  t.teardown(() => redis.quit())
  await until('the rest arrive', async () => (await position(node, 'redis-stream')) === 7, { timeoutMs: 40000 })
  t.same((await streamOf(redis, node)).map(({ id }) => id), [4, 5, 6, 7], 'the restarted (empty) Redis got 4..7 in order')
})
