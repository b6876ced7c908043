import t from 'tap'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { createSigner } from 'fast-jwt'
import chatSuite from '../index.js'
import { randomPrefix, startCluster, startNode, TEST_SECRET, type TestNode } from './fixtures/server.js'
import { freshDatabaseUrl } from './fixtures/database.js'
import { TestClient, type Frame } from './fixtures/ws-client.js'
import { sleep } from './fixtures/timing.js'

interface Reply {
  status: number
  headers: Headers
  body: any
}

async function call (baseUrl: string, path: string, token?: string | null): Promise<Reply> {
  const headers: Record<string, string> = {}
  if (token != null) headers.authorization = `Bearer ${token}`
  const response = await fetch(`${baseUrl}${path}`, { headers })
  const text = await response.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { status: response.status, headers: response.headers, body }
}

async function statuses (baseUrl: string, path: string, token: string | null, count: number): Promise<number[]> {
  const seen: number[] = []
  for (let index = 0; index < count; index += 1) seen.push((await call(baseUrl, path, token)).status)
  return seen
}

/** Sends every frame at once (one write each, no waiting) and resolves with the reply to each, by id. */
async function burst (client: TestClient, frames: Array<{ event: string, data?: unknown }>): Promise<Frame[]> {
  const ids = frames.map((_, index) => `b${Date.now().toString(36)}-${index}`)
  frames.forEach((frame, index) => client.send({ ...frame, id: ids[index] }))
  return await Promise.all(ids.map((id) => client.next((frame) => frame.id === id && (frame.event === 'ack' || frame.event === 'error' || frame.event === 'pong'))))
}

function codes (replies: Frame[]): string[] {
  return replies.map((reply) => reply.error?.code ?? reply.event)
}

function count (values: string[], value: string): number {
  return values.filter((item) => item === value).length
}

const api = '/api/rooms'

t.test('REST: per caller budgets, the 429 shape, Retry-After, exemptions', async (t) => {
  const node = await startNode(t, { options: { restRateLimit: { max: 5, timeWindowMs: 60_000 } } })
  const alice = node.token('alice')

  const first = await call(node.httpUrl, api, alice)
  t.equal(first.status, 200)
  t.equal(first.headers.get('x-ratelimit-limit'), '5', 'the limit is announced')
  t.equal(first.headers.get('x-ratelimit-remaining'), '4')
  t.same(await statuses(node.httpUrl, api, alice, 4), [200, 200, 200, 200])
  const refused = await call(node.httpUrl, api, alice)
  t.equal(refused.status, 429)
  t.same(Object.keys(refused.body).sort(), ['code', 'error', 'message', 'statusCode'], 'Fastify\'s error shape')
  t.match(refused.body, { statusCode: 429, code: 'RATE_LIMITED', error: 'Too Many Requests', message: /rate limit exceeded/ })
  const retryAfter = Number(refused.headers.get('retry-after'))
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After in seconds: ${String(retryAfter)}`)

  t.equal((await call(node.httpUrl, api, node.token('alice', {}, '2h'))).status, 429, 'another token of the same sub shares the budget')
  t.equal((await call(node.httpUrl, api, node.token('bob'))).status, 200, 'another user from the same address has a budget of their own')

  // Forged tokens naming carol (bad signature) are counted against the address, never against carol.
  const forged = createSigner({ key: 'not-the-secret-of-this-server' })({ sub: 'carol' })
  t.same(await statuses(node.httpUrl, api, forged, 6), [401, 401, 401, 401, 401, 429], 'bad tokens are limited by address')
  t.equal((await call(node.httpUrl, api, null)).status, 429, 'so are requests without a token, from the same address')
  t.equal((await call(node.httpUrl, api, node.token('carol'))).status, 200, 'carol\'s own budget is untouched')

  for (const path of ['/health', '/ready', '/metrics', '/docs/json', '/docs/asyncapi.json']) {
    const replies = await Promise.all([0, 1, 2, 3, 4, 5, 6].map(() => call(node.httpUrl, path)))
    t.same(replies.map((reply) => reply.status), [200, 200, 200, 200, 200, 200, 200], `${path} is not limited`)
    t.equal(replies[0]?.headers.get('x-ratelimit-limit'), null, `${path} carries no rate limit headers`)
  }
  const socket = await TestClient.session(node.wsUrl, node.token('alice'))
  t.equal(socket.ready.event, 'session.ready', 'the socket endpoint is not limited by the REST budget')
  socket.client.close()
})

t.test('REST: the limit applies to the suite\'s routes only, never to the host\'s', async (t) => {
  const host = Fastify({ logger: false })
  host.get('/api/host-before', async () => ({ ok: true }))
  await host.register(chatSuite, {
    prefix: '/chat',
    database: await freshDatabaseUrl(t),
    jwt: { secret: TEST_SECRET },
    redisPrefix: randomPrefix(),
    ...(process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? { redis: process.env.REDIS_URL } : {}),
    restRateLimit: { max: 2 },
  })
  host.get('/api/host-after', async () => ({ ok: true }))
  const url = await host.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => host.close())
  const token = host.chat.signToken({ sub: 'dora' })
  t.same(await statuses(url, `/chat${api}`, token, 3), [200, 200, 429], 'the suite\'s route (under its prefix) is limited')
  t.same(await statuses(url, '/chat/health', null, 4), [200, 200, 200, 200], 'its health route is not')
  for (const path of ['/api/host-before', '/api/host-after']) {
    t.same(await statuses(url, path, token, 5), [200, 200, 200, 200, 200], `${path} (the host's) is not`)
    t.equal((await call(url, path, token)).headers.get('x-ratelimit-limit'), null)
  }
})

t.test('REST: false or max 0 turns the limit off', async (t) => {
  for (const restRateLimit of [false, { max: 0 }] as const) {
    const node = await startNode(t, { options: { restRateLimit } })
    const token = node.token('erin')
    const replies = await Promise.all(Array.from({ length: 12 }, () => call(node.httpUrl, api, token)))
    t.same(replies.map((reply) => reply.status), Array(12).fill(200), `${JSON.stringify(restRateLimit)}: never 429`)
    t.equal(replies[0]?.headers.get('x-ratelimit-limit'), null)
    await node.close()
  }
})

t.test('REST: with Redis the budget is shared by every node, under redisPrefix', { skip: process.env.REDIS_URL === undefined || process.env.REDIS_URL === '' ? 'needs REDIS_URL' : false }, async (t) => {
  const redisPrefix = randomPrefix()
  const nodes = await startCluster(t, 2, { redisPrefix, options: { restRateLimit: { max: 4, timeWindowMs: 60_000 } } })
  const [a, b] = nodes as [TestNode, TestNode]
  const token = a.token('frank')
  const seen: number[] = []
  for (let index = 0; index < 6; index += 1) seen.push((await call((index % 2 === 0 ? a : b).httpUrl, api, token)).status)
  t.same(seen, [200, 200, 200, 200, 429, 429], 'four calls in all, whichever node answers')
  const redis = new Redis(process.env.REDIS_URL as string)
  t.teardown(() => redis.quit())
  const keys = await redis.keys(`${redisPrefix}ratelimit:*`)
  t.same(keys, [`${redisPrefix}ratelimit:u:frank`], 'one key per caller, under the suite\'s prefix')
})

t.test('sockets: the per-socket buckets have the protocol\'s defaults', async (t) => {
  const node = await startNode(t, { redis: null })
  const { client } = await TestClient.session(node.wsUrl, node.token('gina'))

  // Invalid data still takes a token (the bucket comes before the schema): no database work at all.
  const sends = codes(await burst(client, Array.from({ length: 30 }, () => ({ event: 'message.send', data: {} }))))
  t.same(sends.slice(0, 20), Array(20).fill('VALIDATION_FAILED'), 'message.send: a burst of 20')
  const sendRefusals = count(sends, 'RATE_LIMITED')
  t.ok(sendRefusals >= 8 && sendRefusals <= 10, `then RATE_LIMITED (${sendRefusals} of the last 10)`)

  const typing = codes(await burst(client, Array.from({ length: 10 }, () => ({ event: 'typing.start', data: {} }))))
  t.same(typing.slice(0, 5), Array(5).fill('VALIDATION_FAILED'), 'typing.*: a burst of 5, not spent by the sends')
  t.ok(count(typing, 'RATE_LIMITED') >= 4, 'then RATE_LIMITED')

  const otherReplies = await burst(client, Array.from({ length: 40 }, () => ({ event: 'room.members', data: {} })))
  const other = codes(otherReplies)
  t.same(other.slice(0, 30), Array(30).fill('VALIDATION_FAILED'), 'everything else: a burst of 30')
  t.ok(count(other, 'RATE_LIMITED') >= 8, 'then RATE_LIMITED')

  const refusal = otherReplies.find((reply) => reply.error?.code === 'RATE_LIMITED') as Frame
  const retryAfterMs = (refusal.error?.details as { retryAfterMs?: unknown }).retryAfterMs
  t.ok(typeof retryAfterMs === 'number' && Number.isInteger(retryAfterMs) && retryAfterMs > 0 && retryAfterMs <= 34,
    `details.retryAfterMs says when the next token comes (${String(retryAfterMs)} ms at 30/s)`)
  client.close()
})

t.test('sockets: frames the gateway answers itself take tokens too', async (t) => {
  const node = await startNode(t, { redis: null })
  const { client } = await TestClient.session(node.wsUrl, node.token('hugo'))
  for (let index = 0; index < 40; index += 1) client.send('{not json')
  const badFrames = await Promise.all(Array.from({ length: 40 }, () => client.next((frame) => frame.event === 'error')))
  const seen = badFrames.map((frame) => frame.error?.code as string)
  t.same(seen.slice(0, 30), Array(30).fill('BAD_FRAME'))
  t.ok(count(seen, 'RATE_LIMITED') >= 8, 'malformed frames are limited like any other')
  await sleep(1100)
  const unknown = codes(await burst(client, Array.from({ length: 40 }, () => ({ event: 'no.such.event' }))))
  t.equal(count(unknown, 'UNKNOWN_EVENT') <= 32 && count(unknown, 'UNKNOWN_EVENT') >= 30, true, 'unknown events: 30, then refused')
  t.ok(count(unknown, 'RATE_LIMITED') >= 8)
  client.close()

  const anonymous = await TestClient.connect(node.wsUrl)
  const before = codes(await burst(anonymous, Array.from({ length: 40 }, () => ({ event: 'room.members', data: {} }))))
  t.ok(count(before, 'UNAUTHENTICATED') >= 30 && count(before, 'RATE_LIMITED') >= 8, 'so are events before authentication')
  anonymous.close()
})

t.test('sockets: a socket over its limit is not read until its next token is due', async (t) => {
  const node = await startNode(t, { redis: null, options: { rateLimits: { other: { rate: 0.5, burst: 2 }, floodRefusals: 1000 } } })
  const { client } = await TestClient.session(node.wsUrl, node.token('otto'))
  const connection = [...node.app.chat.scope.chatHub.connectionsOf('otto')][0]
  t.equal(connection?.socket.isPaused, false, 'read as usual')
  t.same(codes(await burst(client, [{ event: 'ping' }, { event: 'ping' }, { event: 'ping' }])), ['pong', 'pong', 'RATE_LIMITED'])
  t.equal(connection?.socket.isPaused, true, 'after a refusal its reading pauses (here 1 s, the longest hold-off)')
  client.send({ event: 'ping', id: 'during' })
  const late = await client.next((frame) => frame.id === 'during')
  t.ok(late.event === 'pong' || late.error?.code === 'RATE_LIMITED', 'a frame sent meanwhile is answered once reading resumes, not lost')
  client.close()
})

t.test('sockets: 100 refusals within 10 s close the socket with 4429', async (t) => {
  const node = await startNode(t, { redis: null })
  const { client } = await TestClient.session(node.wsUrl, node.token('ivan'))
  for (let index = 0; index < 300; index += 1) client.send({ event: 'ping', id: `p${index}` })
  const closed = await client.closed
  t.equal(closed.code, 4429)
  t.equal(closed.reason, 'flooding')
  t.equal(client.frames.filter((frame) => frame.error?.code === 'RATE_LIMITED').length, 100, 'exactly floodRefusals refusals were answered')
  t.ok(client.frames.filter((frame) => frame.event === 'pong').length >= 30, 'after the burst of pongs')

  const calm = await startNode(t, { redis: null, options: { rateLimits: { floodRefusals: 1000 } } })
  const patient = await TestClient.session(calm.wsUrl, calm.token('ivan'))
  for (let index = 0; index < 300; index += 1) patient.client.send({ event: 'ping', id: `q${index}` })
  await patient.client.next((frame) => frame.id === 'q299')
  patient.client.send({ event: 'ping', id: 'after' })
  await sleep(1100)
  patient.client.send({ event: 'ping', id: 'later' })
  t.same(await patient.client.next((frame) => frame.id === 'later'), { event: 'pong', id: 'later' }, 'below floodRefusals the socket stays open')
  patient.client.close()
})

t.test('sockets: the per-user send budget is shared by the user\'s sockets on a node', async (t) => {
  const node = await startNode(t, {
    redis: null,
    options: { rateLimits: { send: { rate: 1000, burst: 1000 }, userSend: { rate: 0.001, burst: 10 } } },
  })
  const token = node.token('judy')
  const sockets = await Promise.all([0, 1, 2].map(async () => (await TestClient.session(node.wsUrl, token)).client))
  const replies = (await Promise.all(sockets.map((client) => burst(client, Array.from({ length: 6 }, () => ({ event: 'message.send', data: {} })))))).flat()
  t.equal(count(codes(replies), 'VALIDATION_FAILED'), 10, 'ten sends in all, whatever socket they came from')
  t.equal(count(codes(replies), 'RATE_LIMITED'), 8)

  const other = (await TestClient.session(node.wsUrl, node.token('karl'))).client
  t.equal(count(codes(await burst(other, Array.from({ length: 12 }, () => ({ event: 'message.send', data: {} })))), 'VALIDATION_FAILED'), 10,
    'another user has a budget of their own')
  other.close()

  for (const client of sockets) client.close()
  await Promise.all(sockets.map((client) => client.closed))
  const hub = node.app.chat.scope.chatHub
  for (let waited = 0; hub.connectionsOf('judy').size > 0 && waited < 5000; waited += 20) await sleep(20)
  await sleep(50)
  const again = (await TestClient.session(node.wsUrl, token)).client
  t.equal(count(codes(await burst(again, Array.from({ length: 5 }, () => ({ event: 'message.send', data: {} })))), 'RATE_LIMITED'), 5,
    'closing every socket and reconnecting does not refill the budget')
  again.close()
})

t.test('sockets: a user\'s send budget is forgotten once it would be full again', async (t) => {
  const node = await startNode(t, {
    redis: null,
    // Refilled in 500 ms: slow enough that a loaded machine still sees the burst run out, quick to wait for.
    options: { rateLimits: { send: { rate: 1000, burst: 1000 }, userSend: { rate: 20, burst: 10 } } },
  })
  const gateway = node.app.chat.scope.chatGateway
  const hub = node.app.chat.scope.chatHub
  t.equal(gateway.sendBudgets, 0, 'no budget before anyone sends')
  const first = (await TestClient.session(node.wsUrl, node.token('lars'))).client
  t.ok(count(codes(await burst(first, Array.from({ length: 30 }, () => ({ event: 'message.send', data: {} })))), 'RATE_LIMITED') >= 1, 'the burst runs out')
  t.equal(gateway.sendBudgets, 1, 'one budget while the user is connected')
  first.close()
  await first.closed
  for (let waited = 0; hub.connectionsOf('lars').size > 0 && waited < 5000; waited += 20) await sleep(20)
  await sleep(700)
  const other = (await TestClient.session(node.wsUrl, node.token('maja'))).client
  await burst(other, [{ event: 'message.send', data: {} }])
  t.equal(gateway.sendBudgets, 1, 'the idle budget went once it had refilled (500 ms); only the new user\'s is kept')
  other.close()
})

t.test('sockets: maxConnectionsPerIp caps sockets per address, authenticated or not', async (t) => {
  const node = await startNode(t, { redis: null, options: { maxConnectionsPerIp: 3, authTimeoutMs: 10_000 } })
  const anonymous = await TestClient.connect(node.wsUrl)
  const first = await TestClient.session(node.wsUrl, node.token('lena'))
  const second = await TestClient.session(node.wsUrl, node.token('mona'))
  const refused = await TestClient.connect(node.wsUrl, { token: node.token('nina') })
  const closed = await refused.closed
  t.equal(closed.code, 4409)
  t.equal(closed.reason, 'too many connections from this address')
  t.equal(refused.frames.length, 0, 'no session was started')

  anonymous.close()
  await anonymous.closed
  let admitted: TestClient | null = null
  for (let attempt = 0; attempt < 50 && admitted === null; attempt += 1) {
    const candidate = await TestClient.connect(node.wsUrl, { token: node.token('nina') })
    const outcome = await Promise.race([candidate.next((frame) => frame.event === 'session.ready').then(() => 'ready'), candidate.closed.then(() => 'closed')])
    if (outcome === 'ready') admitted = candidate
    else await sleep(20)
  }
  t.ok(admitted !== null, 'a slot frees when a socket of the address closes')
  admitted?.close()
  first.client.close()
  second.client.close()

  const open = await startNode(t, { redis: null })
  const many = await Promise.all(Array.from({ length: 8 }, (_, index) => TestClient.session(open.wsUrl, open.token(`user${index}`))))
  t.equal(many.length, 8, 'off by default (0): eight sockets from one address')
  for (const { client } of many) client.close()
})
