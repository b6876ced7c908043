import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { createSigner } from 'fast-jwt'
import { Type } from 'typebox'
import { TestClient } from './fixtures/ws-client.js'
import { startNode, TEST_SECRET } from './fixtures/server.js'
import { sleep } from './fixtures/timing.js'

const node = await startNode(t, {
  redis: null,
  options: { maxConnectionsPerUser: 2, authTimeoutMs: 400, maxPayload: 2048 },
})
node.app.chat.scope.chatGateway.on('test.echo', {
  schema: Type.Object({ text: Type.String({ maxLength: 10 }), count: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false }),
  handler: (ctx, data) => ({ text: data.text, userId: ctx.user.id }),
})

function unsigned (claims: Record<string, unknown>): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode(claims)}.`
}

t.test('session.ready after each of the three ways to authenticate', async (t) => {
  const token = node.token('alice', { name: 'Alice' })
  for (const via of ['header', 'query'] as const) {
    const { client, ready } = await TestClient.session(node.wsUrl, token, via)
    t.equal(ready.data?.user && (ready.data.user as { id: string }).id, 'alice', `via ${via}`)
    t.type(ready.data?.connectionId, 'string')
    t.same(ready.data?.rooms, [])
    client.close()
    await client.closed
  }
  const client = await TestClient.connect(node.wsUrl)
  client.send({ event: 'auth', data: { token } })
  const ready = await client.next()
  t.equal(ready.event, 'session.ready', 'session.ready is the first frame after an auth frame')
  t.equal((ready.data?.user as { name: string }).name, 'Alice')
  t.equal(ready.id, undefined, 'session.ready is not an ack')
  client.close()
})

t.test('frames sent right after the auth frame are answered after session.ready', async (t) => {
  const client = await TestClient.connect(node.wsUrl)
  client.send({ event: 'auth', data: { token: node.token('early') } })
  client.send({ event: 'test.echo', id: 'e1', data: { text: 'hi' } })
  const first = await client.next()
  const second = await client.next()
  t.equal(first.event, 'session.ready')
  t.equal(second.event, 'ack')
  t.same(second.data, { text: 'hi', userId: 'early' })
  client.close()
})

t.test('4401 for every bad token', async (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const cases: Array<[string, string | null]> = [
    ['missing token in the auth frame', null],
    ['malformed', 'not.a.jwt'],
    ['expired', createSigner({ key: TEST_SECRET, expiresIn: 1000, clockTimestamp: Date.now() - 60_000 })({ sub: 'alice' })],
    ['wrongly signed', createSigner({ key: 'another-secret-that-is-long' })({ sub: 'alice' })],
    ['alg none', unsigned({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 60 })],
    ['RS256 where HS256 is configured', createSigner({ key: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, algorithm: 'RS256' })({ sub: 'alice' })],
    ['no sub', createSigner({ key: TEST_SECRET })({ name: 'nobody' })],
    ['not yet valid', createSigner({ key: TEST_SECRET, notBefore: 60_000 })({ sub: 'alice' })],
  ]
  for (const [label, token] of cases) {
    for (const via of token === null ? ['frame'] as const : ['header', 'frame'] as const) {
      const client = via === 'frame' ? await TestClient.connect(node.wsUrl) : await TestClient.connect(node.wsUrl, { token: token as string })
      if (via === 'frame') client.send({ event: 'auth', data: token === null ? {} : { token } })
      const closed = await client.closed
      t.equal(closed.code, 4401, `${label} via ${via}: ${closed.reason}`)
    }
  }
})

t.test('4408 when no auth frame comes in time', async (t) => {
  const client = await TestClient.connect(node.wsUrl)
  const started = Date.now()
  const closed = await client.closed
  t.equal(closed.code, 4408)
  t.ok(Date.now() - started >= 350, 'not before authTimeoutMs')
})

t.test('4409 over the per-user connection cap', async (t) => {
  const token = node.token('capped')
  const first = await TestClient.session(node.wsUrl, token)
  const second = await TestClient.session(node.wsUrl, token)
  const third = await TestClient.connect(node.wsUrl, { token })
  t.equal((await third.closed).code, 4409)
  first.client.close()
  await first.client.closed
  await sleep(50)
  const again = await TestClient.session(node.wsUrl, token)
  t.equal(again.ready.event, 'session.ready', 'a slot frees when a socket closes')
  second.client.close()
  again.client.close()
})

t.test('envelope errors keep the socket usable', async (t) => {
  const { client } = await TestClient.session(node.wsUrl, node.token('bob'))
  client.send('{not json')
  let reply = await client.next()
  t.equal(reply.error?.code, 'BAD_FRAME')
  client.send('[1,2]')
  reply = await client.next()
  t.equal(reply.error?.code, 'BAD_FRAME')
  client.send({ id: 'x1', data: {} })
  reply = await client.next()
  t.equal(reply.error?.code, 'BAD_FRAME')
  t.equal(reply.id, 'x1', 'a frame without event still gets its id back')
  client.send({ event: 'test.echo', id: 'x'.repeat(65) })
  reply = await client.next()
  t.equal(reply.error?.code, 'BAD_FRAME', 'ids longer than 64 characters are refused')

  reply = await client.request('no.such.event', {})
  t.equal(reply.error?.code, 'UNKNOWN_EVENT')
  client.send({ event: 'no.such.event' })
  reply = await client.next()
  t.equal(reply.error?.code, 'UNKNOWN_EVENT')
  t.equal(reply.error?.event, 'no.such.event', 'an error without id names the event')

  reply = await client.request('test.echo', { text: 'far too long for the limit' })
  t.equal(reply.error?.code, 'VALIDATION_FAILED')
  t.match(reply.error?.details, [{ field: 'text' }])
  reply = await client.request('test.echo', {})
  t.equal(reply.error?.code, 'VALIDATION_FAILED')
  t.match(reply.error?.details, [{ field: 'text' }], 'a missing field is named')
  reply = await client.request('test.echo', { text: 'ok', extra: 1 })
  t.equal(reply.error?.code, 'VALIDATION_FAILED')
  t.match(reply.error?.details, [{ field: 'extra' }], 'an unknown field is named')
  reply = await client.request('test.echo', { text: 'ok', count: 'two' })
  t.match(reply.error?.details, [{ field: 'count' }])
  reply = await client.request('test.echo', 'a string')
  t.equal(reply.error?.code, 'VALIDATION_FAILED')

  reply = await client.request('test.echo', { text: 'still ok' })
  t.equal(reply.event, 'ack')
  t.same(reply.data, { text: 'still ok', userId: 'bob' })
  client.close()
})

t.test('ping and pong, with and without id, also before auth', async (t) => {
  const client = await TestClient.connect(node.wsUrl)
  client.send({ event: 'ping' })
  t.same(await client.next(), { event: 'pong' })
  client.send({ event: 'ping', id: 'p1' })
  t.same(await client.next(), { event: 'pong', id: 'p1' })
  client.close()
})

t.test('events before authentication get UNAUTHENTICATED', async (t) => {
  const client = await TestClient.connect(node.wsUrl)
  const reply = await client.request('test.echo', { text: 'hi' })
  t.equal(reply.error?.code, 'UNAUTHENTICATED')
  client.send({ event: 'auth', data: { token: node.token('late') } })
  t.equal((await client.next()).event, 'session.ready', 'and authentication still works afterwards')
  client.close()
})

t.test('1009 over maxPayload, 1003 on a binary frame', async (t) => {
  const big = await TestClient.session(node.wsUrl, node.token('big'))
  big.client.send({ event: 'test.echo', data: { text: 'x'.repeat(3000) } })
  t.equal((await big.client.closed).code, 1009)
  const binary = await TestClient.session(node.wsUrl, node.token('binary'))
  binary.client.socket.send(Buffer.from([1, 2, 3]), { binary: true })
  t.equal((await binary.client.closed).code, 1003)
})

t.test('token refresh by a new auth frame; another sub closes', async (t) => {
  const { client } = await TestClient.session(node.wsUrl, node.token('carol', {}, '1h'))
  const refreshed = await client.ack('auth', { token: node.token('carol', {}, '2h') })
  t.ok(typeof refreshed.exp === 'number' && refreshed.exp > Date.now() / 1000 + 3600, 'the ack carries the new exp')
  client.send({ event: 'auth', data: { token: node.token('mallory') } })
  t.equal((await client.closed).code, 4401)
})

t.test('an expiring token closes the socket with 4401 unless refreshed', async (t) => {
  const expiring = await TestClient.session(node.wsUrl, node.token('dave', {}, '1s'))
  const started = Date.now()
  t.equal((await expiring.client.closed).code, 4401)
  t.ok(Date.now() - started < 2500, 'closed at expiry')

  const refreshed = await TestClient.session(node.wsUrl, node.token('erin', {}, '1s'))
  await refreshed.client.ack('auth', { token: node.token('erin', {}, '1h') })
  const frames = await refreshed.client.collect(1500)
  t.same(frames, [])
  refreshed.client.send({ event: 'ping', id: 'alive' })
  t.same(await refreshed.client.next(), { event: 'pong', id: 'alive' }, 'still open after the first token expired')
  refreshed.client.close()
})

t.test('RS256 public key configuration; HS256 signed with the public key is refused', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }) as string
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  const rsNode = await startNode(t, { redis: null, options: { jwt: { publicKey: publicPem } } })
  const good = createSigner({ key: privatePem, algorithm: 'RS256' })({ sub: 'rsa-user' })
  const { client, ready } = await TestClient.session(rsNode.wsUrl, good)
  t.equal((ready.data?.user as { id: string }).id, 'rsa-user')
  client.close()
  const confused = createSigner({ key: publicPem, algorithm: 'HS256' })({ sub: 'rsa-user' })
  const attacker = await TestClient.connect(rsNode.wsUrl, { token: confused })
  t.equal((await attacker.closed).code, 4401)
})
