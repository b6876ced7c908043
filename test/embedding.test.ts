import t from 'tap'
import Fastify from 'fastify'
import postgres from 'postgres'
import { Redis } from 'ioredis'
import chat, { configPlugin, databasePlugin, brokerPlugin, hubPlugin, gatewayPlugin, metricsPlugin, usersPlugin, authPlugin, sessionsPlugin, roomLogPlugin, messagingPlugin, resolveConfig } from '../index.js'
import { buildExampleApp } from '../examples/existing-app/app.js'
import { createScratchDatabase, freshDatabaseUrl } from './fixtures/database.js'
import { randomPrefix, TEST_SECRET } from './fixtures/server.js'
import { TestClient } from './fixtures/ws-client.js'

const databaseServer = process.env.DATABASE_URL
const redisUrl = process.env.REDIS_URL
const needsPostgres = databaseServer === undefined || databaseServer === '' ? 'the example app brings its own postgres.js client: needs DATABASE_URL' : false
const needsBoth = needsPostgres !== false ? needsPostgres : redisUrl === undefined || redisUrl === '' ? 'needs REDIS_URL' : false
const SECRET = 'the-host-app-own-jwt-secret'

t.test('the example app keeps its routes, error handler and @fastify/jwt; the suite uses its clients and leaves them open', { skip: needsPostgres }, async (t) => {
  const databaseUrl = await createScratchDatabase(t, databaseServer as string)
  const sql = postgres(databaseUrl, { max: 3, onnotice: () => {} })
  const redis = redisUrl !== undefined && redisUrl !== '' ? new Redis(redisUrl) : undefined
  t.teardown(async () => {
    await sql.end()
    redis?.disconnect()
  })
  const { app } = await buildExampleApp({ databaseUrl, jwtSecret: SECRET, sql, ...(redis !== undefined ? { redis } : {}), redisPrefix: randomPrefix(), confirmedBookings: [{ guest: 'gina', host: 'hank' }] })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })

  t.same(await (await fetch(`${address}/hello`)).json(), { hello: 'world' }, 'a host route')
  const boom = await fetch(`${address}/boom`)
  t.equal(boom.status, 500)
  t.same(await boom.json(), { ok: false, problem: 'host failure' }, 'the host\'s error handler is still the host\'s')
  const { token } = await (await fetch(`${address}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"gina"}' })).json() as { token: string }
  const me = await fetch(`${address}/me`, { headers: { authorization: `Bearer ${token}` } })
  t.match(await me.json(), { me: { sub: 'gina' } }, 'the host\'s @fastify/jwt')
  t.equal((await fetch(`${address}/me`)).status, 401)

  const missing = await fetch(`${address}/chat/api/rooms`)
  t.equal(missing.status, 401)
  t.equal(((await missing.json()) as { code: string }).code, 'UNAUTHENTICATED', 'the suite answers its own errors in its own shape')
  const { client: gina, ready } = await TestClient.session(`${address.replace('http', 'ws')}/chat/ws`, token)
  t.equal((ready.data?.user as { name: string }).name, 'GINA', 'a host-issued token opens a chat session')
  const hankToken = ((await (await fetch(`${address}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"hank"}' })).json()) as { token: string }).token
  const { client: hank } = await TestClient.session(`${address.replace('http', 'ws')}/chat/ws`, hankToken)
  const dm = await gina.ack('dm.open', { userId: 'hank' })
  const roomId = (dm.room as { id: string }).id
  t.equal((await gina.request('dm.open', { userId: 'ivan' })).error?.code, 'FORBIDDEN', 'the authorize hook: no confirmed booking, no direct chat')

  const confirmed = await fetch(`${address}/bookings/${roomId}/confirm`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
  t.equal(confirmed.status, 200)
  const pushed = await hank.next((frame) => frame.event === 'message.new')
  t.match(pushed.data?.message, { type: 'SYSTEM', content: 'Booking confirmed 🎉', sender: { id: 'system', name: 'System' } }, 'a host route sends a SYSTEM message')
  const [row] = await sql<Array<{ n: number }>>`select count(*)::int as n from chat.messages where type = 'SYSTEM'`
  t.equal(row?.n, 1, 'tables live in the chat schema of the host\'s database')
  const [publicTables] = await sql<Array<{ n: number }>>`select count(*)::int as n from information_schema.tables where table_schema = 'public' and table_name in ('rooms', 'messages')`
  t.equal(publicTables?.n, 0, 'nothing in the host\'s public schema')

  gina.close()
  hank.close()
  await app.close()
  const [alive] = await sql<Array<{ one: number }>>`select 1 as one`
  t.equal(alive?.one, 1, 'the host\'s postgres.js client is still open')
  if (redis !== undefined) t.equal(await redis.ping(), 'PONG', 'the host\'s Redis connection is still open')
})

t.test('a host route sends a SYSTEM message that reaches sockets on another node', { skip: needsBoth }, async (t) => {
  const databaseUrl = await freshDatabaseUrl(t)
  const redisPrefix = randomPrefix()
  const one = await buildExampleApp({ databaseUrl, redisUrl: redisUrl as string, jwtSecret: SECRET, redisPrefix })
  const two = await buildExampleApp({ databaseUrl, redisUrl: redisUrl as string, jwtSecret: SECRET, redisPrefix })
  t.teardown(async () => { await one.app.close(); await two.app.close() })
  const addressOne = await one.app.listen({ port: 0, host: '127.0.0.1' })
  const addressTwo = await two.app.listen({ port: 0, host: '127.0.0.1' })
  const owner = await TestClient.session(`${addressOne.replace('http', 'ws')}/chat/ws`, one.app.jwt.sign({ sub: 'olga' }))
  const guest = await TestClient.session(`${addressTwo.replace('http', 'ws')}/chat/ws`, two.app.jwt.sign({ sub: 'pete' }))
  const created = await owner.client.ack('room.create', { name: 'stay', type: 'GROUP', memberIds: ['pete'] })
  const roomId = (created.room as { id: string }).id
  await guest.client.next((frame) => frame.event === 'room.added')
  const response = await fetch(`${addressOne}/bookings/${roomId}/confirm`, { method: 'POST', headers: { authorization: `Bearer ${one.app.jwt.sign({ sub: 'olga' })}` } })
  t.equal(response.status, 200)
  const pushed = await guest.client.next((frame) => frame.event === 'message.new')
  t.match(pushed.data?.message, { type: 'SYSTEM', sender: { id: 'system' } }, 'delivered on the other node')
  // The host's code skips the gateway's and REST's checks: what no batch could store is refused up front.
  await t.rejects(one.app.chat.sendSystemMessage(roomId, 'nul \u0000 inside'), { code: 'VALIDATION_FAILED' }, 'a NUL character is refused before the batch')
  await t.rejects(one.app.chat.sendSystemMessage('not-a-uuid', 'hello'), { code: 'VALIDATION_FAILED' }, 'so is a room id that is not a uuid')
  await t.rejects(one.app.chat.sendSystemMessage(roomId, 'lone \ud800 surrogate'), { code: 'VALIDATION_FAILED' }, 'and a lone surrogate')
  await one.app.chat.publishToUser('pete', 'booking.reminder', { roomId })
  t.match(await guest.client.next((frame) => frame.event === 'booking.reminder'), { data: { roomId } }, 'a custom event to a user, across nodes')
  await one.app.chat.addMembers(roomId, ['quinn'])
  t.match(await guest.client.next((frame) => frame.event === 'room.member_joined'), { data: { user: { id: 'quinn' } } }, 'server-side member add')
  await one.app.chat.removeMember(roomId, 'quinn')
  t.match(await guest.client.next((frame) => frame.event === 'room.member_left'), { data: { userId: 'quinn' } })
  const presence = await two.app.chat.presence(['pete', 'nobody'])
  t.equal(presence.get('pete')?.status, 'online')
  t.equal(presence.get('nobody')?.status, 'offline')
  owner.client.close()
  guest.client.close()
})

t.test('two suites with different prefixes in one process stay apart', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(chat, { prefix: '/a', database: await freshDatabaseUrl(t), jwt: { secret: TEST_SECRET }, redisPrefix: randomPrefix() })
  await app.register(chat, { prefix: '/b', decorator: 'chatB', database: await freshDatabaseUrl(t), jwt: { secret: `${TEST_SECRET}-b` }, redisPrefix: randomPrefix() })
  const address = (await app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws')
  const suiteB = (app as unknown as { chatB: typeof app.chat }).chatB
  const a = await TestClient.session(`${address}/a/ws`, app.chat.signToken({ sub: 'same' }))
  const b = await TestClient.session(`${address}/b/ws`, suiteB.signToken({ sub: 'same' }))
  const wrongSuite = await TestClient.connect(`${address}/b/ws`, { token: app.chat.signToken({ sub: 'same' }) })
  t.equal((await wrongSuite.closed).code, 4401, 'each suite verifies with its own key')
  await a.client.ack('room.create', { name: 'only in a', type: 'GROUP' })
  const reconnected = await TestClient.session(`${address}/b/ws`, suiteB.signToken({ sub: 'same' }))
  t.same(reconnected.ready.data?.rooms, [], 'suite b does not see suite a\'s rooms')
  t.same(await b.client.collect(200), [], 'nor its pushes')
  t.not(app.chat.scope, suiteB.scope, 'separate encapsulation contexts')
  t.equal(app.hasDecorator('chatHub'), false, 'no internal decorator leaks to the host')
  for (const client of [a.client, b.client, reconnected.client]) client.close()
})

t.test('resolveUser may answer undefined or null for a user it does not know: the claims stand', async (t) => {
  const profiles = new Map([['alice', { name: 'Alice', avatar: 'https://example.test/a.png' }]])
  const asked: string[] = []
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(chat, {
    database: await freshDatabaseUrl(t),
    jwt: { secret: TEST_SECRET },
    redisPrefix: randomPrefix(),
    // A Map's get, as the README shows it: undefined for anyone not in it; null for 'nobody'.
    resolveUser: (id) => {
      asked.push(id)
      return id === 'nobody' ? null : profiles.get(id)
    },
  })
  const address = (await app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws')
  const alice = await TestClient.session(`${address}/ws`, app.chat.signToken({ sub: 'alice' }))
  t.match(alice.ready.data?.user, { id: 'alice', name: 'Alice', avatar: 'https://example.test/a.png' }, 'a known user gets the host\'s profile')
  for (const sub of ['stranger', 'nobody']) {
    const { client, ready } = await TestClient.session(`${address}/ws`, app.chat.signToken({ sub }))
    t.match(ready.data?.user, { id: sub, name: null, avatar: null }, `${sub}: an unknown user keeps a session, without a profile`)
    client.close()
  }
  t.ok(asked.includes('stranger') && asked.includes('nobody'), 'the hook was asked about both')
  const { room } = await alice.client.ack('room.create', { name: 'r', type: 'GROUP' }) as { room: { id: string } }
  const sent = await app.chat.sendSystemMessage(room.id, 'hello from the host')
  t.match(sent, { type: 'SYSTEM', content: 'hello from the host' }, 'the host\'s send is not refused because the server user has no profile')
  alice.client.close()
})

t.test('concerns can be left out, and a missing dependency fails startup naming it', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(chat, { database: await freshDatabaseUrl(t), jwt: { secret: TEST_SECRET }, concerns: { messaging: false } })
  const address = (await app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws')
  const { client } = await TestClient.session(`${address}/ws`, app.chat.signToken({ sub: 'lean' }))
  const room = await client.ack('room.create', { name: 'no messages here', type: 'GROUP' })
  t.equal((await client.request('typing.start', { roomId: (room.room as { id: string }).id })).event, 'ack', 'typing works without messaging')
  t.equal((await client.request('message.send', { roomId: (room.room as { id: string }).id, content: 'x' })).error?.code, 'UNKNOWN_EVENT', 'messaging is simply not there')
  client.close()

  const partial = Fastify({ logger: false })
  t.teardown(() => partial.close())
  const config = resolveConfig({ database: await freshDatabaseUrl(t), jwt: { secret: TEST_SECRET } })
  await partial.register(configPlugin, { config, hooks: {} })
  for (const plugin of [databasePlugin, brokerPlugin, hubPlugin, gatewayPlugin, metricsPlugin, usersPlugin, authPlugin, sessionsPlugin, roomLogPlugin]) await partial.register(plugin)
  await t.rejects(async () => { await partial.register(messagingPlugin) }, /chat-rooms/, 'messaging without rooms names the missing plugin')
})
