import t from 'tap'
import { createSigner } from 'fast-jwt'
import { count } from 'drizzle-orm'
import { roomMembers, rooms, users } from '../db/schema/index.js'
import { freshDatabaseUrl } from './fixtures/database.js'
import { PgProxy } from './fixtures/pg-proxy.js'
import { startNode, TEST_SECRET, type TestNode } from './fixtures/server.js'
import { uid } from './fixtures/chat.js'
import { TestClient } from './fixtures/ws-client.js'
import { WebSocket } from 'ws'
import type { Socket } from 'node:net'
import { until, within } from './fixtures/timing.js'

// Issue 20, items 4 and 5: a session whose start fails is closed (1011) and gives its slot back on every
// way in; claims the database cannot store, or longer than their limits, are refused (4401 / 401)
// before anything is written.

type Via = 'header' | 'query' | 'frame'

/** Opens a socket authenticating `via` one of the three ways; resolves with the socket. */
async function open (node: TestNode, token: string, via: Via): Promise<TestClient> {
  if (via !== 'frame') return await TestClient.connect(node.wsUrl, { token, via })
  const client = await TestClient.connect(node.wsUrl)
  client.send({ event: 'auth', data: { token } })
  return client
}

/** The close code of a socket that authenticated `via`, or 0 when it got session.ready. */
async function outcomeOf (node: TestNode, token: string, via: Via): Promise<number> {
  const client = await open(node, token, via)
  const outcome = await within(Promise.race([
    client.closed.then((closed) => closed.code),
    client.next((frame) => frame.event === 'session.ready', 10000).then(() => 0),
  ]), 10000, `the ${via} socket's session.ready or close`)
  client.close()
  return outcome
}

const postgresOnly = (process.env.DATABASE_URL ?? '') === '' ? 'needs DATABASE_URL: PGlite runs in the process and cannot go away' : false

t.test('Postgres away at session start: every way in closes with 1011 and frees its slot', { skip: postgresOnly }, async (t) => {
  const server = new URL(process.env.DATABASE_URL as string)
  // The node reaches its database through a proxy the test cuts: the shared server keeps running.
  const pg = await PgProxy.start(t, { host: server.hostname, port: Number(server.port === '' ? 5432 : server.port) })
  const node = await startNode(t, { database: pg.urlFor(await freshDatabaseUrl(t)) })
  t.equal(await outcomeOf(node, node.token(uid('warm')), 'frame'), 0, 'a session starts while the database is up')

  pg.set('down')
  const user = uid('victim')
  for (const via of ['header', 'query'] as const) {
    t.equal(await outcomeOf(node, node.token(uid(via)), via), 1011, `${via}: closed with 1011`)
  }
  // Twice the user's 5 slots of first-frame auth: each is closed, so none keeps a slot.
  const limit = node.app.chat.config.maxConnectionsPerUser
  for (let index = 0; index < 2 * limit; index += 1) {
    const started = Date.now()
    const client = await open(node, node.token(user), 'frame')
    const closed = await within(client.closed, 10000, `first-frame auth #${index + 1} closed while the database is away`)
    t.equal(closed.code, 1011, `first-frame auth #${index + 1}: closed with 1011 (${Date.now() - started} ms after connecting)`)
    t.notOk(client.frames.some((frame) => frame.event === 'session.ready'), 'without a session.ready')
  }

  pg.set('up')
  // The pool's first query after the cut may still fail: wait until another user's session starts.
  await until('a session to start again', async () => await outcomeOf(node, node.token(uid('probe')), 'frame') === 0, { timeoutMs: 15000, everyMs: 200 })
  const sessions = await Promise.all(Array.from({ length: limit }, async () => await TestClient.session(node.wsUrl, node.token(user))))
  t.equal(sessions.length, limit, `all ${limit} of the user's slots are usable once the database is back`)
  const over = await outcomeOf(node, node.token(user), 'frame')
  t.equal(over, 4409, 'and the cap still holds')
  for (const { client } of sessions) client.close()
})

const sign = createSigner({ key: TEST_SECRET, expiresIn: 3600_000 })
const lone = '\uD800'

const badClaims: Array<{ what: string, claims: Record<string, unknown> }> = [
  { what: 'a NUL in sub', claims: { sub: 'ab\u0000cd' } },
  { what: 'a lone surrogate in sub', claims: { sub: `ab${lone}` } },
  { what: 'sub over 128 characters', claims: { sub: 'x'.repeat(129) } },
  { what: 'a NUL in name', claims: { name: 'Eve\u0000' } },
  { what: 'a lone surrogate in name', claims: { name: `Eve${lone}` } },
  { what: 'name over 100 characters', claims: { name: 'n'.repeat(101) } },
  { what: 'a NUL in tenant', claims: { tenant: 't\u0000' } },
  { what: 'a lone surrogate in tenant', claims: { tenant: `t${lone}` } },
  { what: 'tenant over 128 characters', claims: { tenant: 't'.repeat(129) } },
  { what: 'a tenant that is not a string', claims: { tenant: 7 } },
  { what: 'a NUL in avatar', claims: { avatar: 'https://example.com/a\u0000.png' } },
  { what: 'avatar over 2048 characters', claims: { avatar: `https://example.com/${'a'.repeat(2048)}` } },
]

t.test('claims that cannot be stored or are over their limits: 4401 on every way in, 401 on REST, nothing written', async (t) => {
  const node = await startNode(t)
  const db = node.app.chat.scope.chatDb
  const rows = async (): Promise<number[]> => await Promise.all([users, rooms, roomMembers].map(async (table) => {
    const [row] = await db.select({ n: count() }).from(table)
    return Number(row?.n ?? 0)
  }))
  const before = await rows()
  for (const { what, claims } of badClaims) {
    const token = sign({ sub: uid('eve'), ...claims })
    for (const via of ['header', 'query', 'frame'] as const) {
      t.equal(await outcomeOf(node, token, via), 4401, `${what}, ${via}: closed with 4401`)
    }
    const response = await fetch(`${node.httpUrl}/api/rooms`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'r', type: 'GROUP' }) })
    const body = await response.json() as { code?: string, message?: string }
    t.equal(response.status, 401, `${what}, REST: 401`)
    t.equal(body.code, 'UNAUTHENTICATED')
    t.match(body.message, /claim/, `the reply says which claim: ${body.message}`)
  }
  t.same(await rows(), before, 'no user, room or member row was written')

  // At the limits, still accepted (and stored as given, not cut).
  const name = 'n'.repeat(100)
  const sub = `s${'x'.repeat(127)}`
  t.equal(await outcomeOf(node, sign({ sub, name, tenant: 't'.repeat(128) }), 'header'), 0, 'sub 128, name 100, tenant 128: a session')
  const { client, ready } = await TestClient.session(node.wsUrl, sign({ sub: uid('astral'), name: 'Zoë 😀' }))
  t.equal((ready.data?.user as { name?: string }).name, 'Zoë 😀', 'paired surrogates (astral characters) are fine')
  client.close()
})

t.test('upgrades to paths with no route are answered 404 and do not hold app.close()', async (t) => {
  const node = await startNode(t)
  const base = node.httpUrl.replace(/^http/, 'ws')
  for (const path of ['/WS', '/ws/', '/chat/ws', '/nothing?token=x']) {
    const socket = new WebSocket(`${base}${path}`)
    const { status, tcp } = await within(new Promise<{ status: number, tcp: Socket | null }>((resolve) => {
      socket.once('unexpected-response', (_request, response) => { resolve({ status: response.statusCode ?? 0, tcp: response.socket }) })
      socket.once('open', () => { resolve({ status: 101, tcp: null }) })
    }), 5000, `the upgrade to ${path}`)
    t.equal(status, 404, `${path}: 404`)
    // The client keeps its end open: the server is the one that closes the socket it answered on.
    if (tcp !== null && !tcp.destroyed) await within(new Promise((resolve) => tcp.once('close', resolve)), 5000, `the server closing the socket of ${path}`)
    t.pass(`${path}: the server closed the socket`)
  }
  await within(node.close(), 5000, 'app.close() after upgrades to no route')
})
