import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { createSigner } from 'fast-jwt'
import { startNode, TEST_SECRET, type TestNode } from './fixtures/server.js'
import { TestClient } from './fixtures/ws-client.js'

// Complements test/gateway.test.ts (bad tokens on the socket by header and auth frame, RS256 and the
// HS256-with-the-public-key confusion on the socket, a refresh for another sub): the same attacks on
// REST, issuer and audience, the query-string way, and refreshes that must not change the identity.

function unsigned (claims: Record<string, unknown>): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode(claims)}.`
}

async function restWith (node: TestNode, authorization: string | null): Promise<{ status: number, body: any }> {
  const headers: Record<string, string> = {}
  if (authorization !== null) headers.authorization = authorization
  const response = await fetch(`${node.httpUrl}/api/rooms`, { headers })
  return { status: response.status, body: await response.json() }
}

async function closeCode (node: TestNode, token: string, via: 'header' | 'query' | 'frame'): Promise<number> {
  const client = via === 'frame' ? await TestClient.connect(node.wsUrl) : await TestClient.connect(node.wsUrl, { token, via })
  if (via === 'frame') client.send({ event: 'auth', data: { token } })
  const outcome = await Promise.race([
    client.closed.then((closed) => closed.code),
    client.next((frame) => frame.event === 'session.ready').then(() => 0),
  ])
  client.close()
  return outcome
}

const now = (): number => Math.floor(Date.now() / 1000)
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsaPrivate = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
const rsaPublic = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string

t.test('REST answers 401 UNAUTHENTICATED, in Fastify\'s error shape, for every bad token', async (t) => {
  const node = await startNode(t, { redis: null })
  const cases: Array<[string, string | null]> = [
    ['no Authorization header', null],
    ['another scheme', `Basic ${Buffer.from('alice:secret').toString('base64')}`],
    ['an empty bearer', 'Bearer '],
    ['malformed', 'Bearer not.a.jwt'],
    ['alg none', `Bearer ${unsigned({ sub: 'alice', exp: now() + 60 })}`],
    ['alg none, no signature part at all', `Bearer ${unsigned({ sub: 'alice', exp: now() + 60 }).slice(0, -1)}`],
    ['expired', `Bearer ${createSigner({ key: TEST_SECRET, expiresIn: 1000, clockTimestamp: Date.now() - 60_000 })({ sub: 'alice' })}`],
    ['not yet valid (nbf)', `Bearer ${createSigner({ key: TEST_SECRET, notBefore: 60_000 })({ sub: 'alice' })}`],
    ['signed with another secret', `Bearer ${createSigner({ key: 'another-secret-that-is-long' })({ sub: 'alice' })}`],
    ['RS256 where HS256 is configured', `Bearer ${createSigner({ key: rsaPrivate, algorithm: 'RS256' })({ sub: 'alice' })}`],
    ['no sub', `Bearer ${createSigner({ key: TEST_SECRET })({ name: 'nobody' })}`],
    ['a sub too long', `Bearer ${createSigner({ key: TEST_SECRET })({ sub: 'x'.repeat(129) })}`],
    ['a sub that is not a string', `Bearer ${createSigner({ key: TEST_SECRET })({ sub: 42 })}`],
  ]
  for (const [label, authorization] of cases) {
    const { status, body } = await restWith(node, authorization)
    t.equal(status, 401, `${label}: 401`)
    t.match(body, { statusCode: 401, code: 'UNAUTHENTICATED', error: 'Unauthorized', message: String }, `${label}: ${String(body.message)}`)
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
  }
  t.equal((await restWith(node, `Bearer ${node.token('alice')}`)).status, 200, 'a good token passes')
})

t.test('issuer and audience, when configured, are required and checked on every way in', async (t) => {
  const node = await startNode(t, { redis: null, options: { jwt: { secret: TEST_SECRET, issuer: 'https://auth.example', audience: 'chat' } } })
  const sign = (claims: Record<string, unknown>): string => createSigner({ key: TEST_SECRET })({ sub: 'olga', ...claims })
  const good = sign({ iss: 'https://auth.example', aud: 'chat' })
  t.equal((await restWith(node, `Bearer ${good}`)).status, 200)
  for (const via of ['header', 'query', 'frame'] as const) t.equal(await closeCode(node, good, via), 0, `the right issuer and audience via ${via}`)

  const bad: Array<[string, string]> = [
    ['wrong issuer', sign({ iss: 'https://evil.example', aud: 'chat' })],
    ['no issuer', sign({ aud: 'chat' })],
    ['wrong audience', sign({ iss: 'https://auth.example', aud: 'billing' })],
    ['no audience', sign({ iss: 'https://auth.example' })],
    ['audience list without ours', sign({ iss: 'https://auth.example', aud: ['billing', 'mail'] })],
  ]
  for (const [label, token] of bad) {
    const { status, body } = await restWith(node, `Bearer ${token}`)
    t.equal(status, 401, `${label}: REST 401`)
    t.equal(body.code, 'UNAUTHENTICATED')
    for (const via of ['header', 'query', 'frame'] as const) t.equal(await closeCode(node, token, via), 4401, `${label} via ${via}: 4401`)
  }
  const listed = sign({ iss: 'https://auth.example', aud: ['billing', 'chat'] })
  t.equal((await restWith(node, `Bearer ${listed}`)).status, 200, 'an audience list that names us passes')
})

t.test('RS256: forged tokens are refused on REST and by query string', async (t) => {
  const node = await startNode(t, { redis: null, options: { jwt: { publicKey: rsaPublic } } })
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  const good = createSigner({ key: rsaPrivate, algorithm: 'RS256' })({ sub: 'rsa-user' })
  t.equal((await restWith(node, `Bearer ${good}`)).status, 200)
  const forged: Array<[string, string]> = [
    ['HS256 signed with the public key (algorithm confusion)', createSigner({ key: rsaPublic, algorithm: 'HS256' })({ sub: 'rsa-user' })],
    ['HS256 signed with the public key as a trimmed string', createSigner({ key: rsaPublic.trim(), algorithm: 'HS256' })({ sub: 'rsa-user' })],
    ['alg none', unsigned({ sub: 'rsa-user', exp: now() + 60 })],
    ['RS256 signed by another key', createSigner({ key: other, algorithm: 'RS256' })({ sub: 'rsa-user' })],
    ['the good token with its signature cut off', good.slice(0, good.lastIndexOf('.') + 1)],
    ['the good token with another payload', `${good.split('.')[0] as string}.${Buffer.from(JSON.stringify({ sub: 'admin' })).toString('base64url')}.${good.split('.')[2] as string}`],
  ]
  for (const [label, token] of forged) {
    const { status, body } = await restWith(node, `Bearer ${token}`)
    t.equal(status, 401, `${label}: REST 401 (${String(body.message)})`)
    t.equal(await closeCode(node, token, 'query'), 4401, `${label}: 4401 by query string`)
  }
})

t.test('a refresh cannot change who the socket is', async (t) => {
  const node = await startNode(t, { redis: null })
  const cases: Array<[string, string, (node: TestNode) => string]> = [
    ['a token of another sub (query-authenticated socket)', 'query', (node) => node.token('mallory')],
    ['the same sub in another tenant', 'header', (node) => node.token('paula', { tenant: 'other-tenant' })],
    ['the same sub, badly signed', 'header', () => createSigner({ key: 'another-secret-that-is-long' })({ sub: 'paula' })],
    ['the same sub, expired', 'header', () => createSigner({ key: TEST_SECRET, expiresIn: 1000, clockTimestamp: Date.now() - 60_000 })({ sub: 'paula' })],
    ['the same sub, alg none', 'query', () => unsigned({ sub: 'paula', exp: now() + 3600 })],
  ]
  for (const [label, via, tokenOf] of cases) {
    const { client } = await TestClient.session(node.wsUrl, node.token('paula'), via as 'header' | 'query')
    client.send({ event: 'auth', id: 'refresh', data: { token: tokenOf(node) } })
    const closed = await client.closed
    t.equal(closed.code, 4401, `${label}: 4401 (${closed.reason})`)
    t.notOk(client.frames.some((frame) => frame.id === 'refresh' && frame.event === 'ack'), 'never acked')
  }
  const { client } = await TestClient.session(node.wsUrl, node.token('paula', { tenant: 't1' }))
  const ack = await client.ack('auth', { token: node.token('paula', { tenant: 't1', permissions: ['chats:read'] }, '2h') })
  t.type(ack.exp, 'number', 'the same sub and tenant refresh as before')
  client.close()
})
