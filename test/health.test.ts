import t from 'tap'
import postgres from 'postgres'
import { startNode } from './fixtures/server.js'
import { TestClient } from './fixtures/ws-client.js'
import { freshDatabaseUrl } from './fixtures/database.js'
import { sampleValue, scrape } from './fixtures/prometheus.js'
import { hasRedisServer, RedisServer } from './fixtures/redis-server.js'
import { ready, readyBecomes } from './fixtures/health.js'
import { until } from './fixtures/timing.js'

t.test('/health answers without asking anything', async (t) => {
  const node = await startNode(t, { redis: null })
  const response = await fetch(`${node.httpUrl}/health`)
  t.equal(response.status, 200)
  t.match(await response.json(), { status: 'ok', uptime: Number })
})

t.test('/ready is 200 when the database and the broker answer', async (t) => {
  const node = await startNode(t)
  const answer = await ready(node.httpUrl)
  t.equal(answer.status, 200)
  t.same(answer.body, { status: 'ok', down: [] })
})

t.test('/ready turns 503 naming the broker while Redis is down, and 200 once it is back', { skip: !hasRedisServer() && 'no redis-server binary' }, async (t) => {
  const redis = await RedisServer.start(t)
  const node = await startNode(t, { redis: redis.url })
  t.equal((await ready(node.httpUrl)).status, 200, 'up')

  await redis.stop()
  const down = await readyBecomes(node.httpUrl, 503)
  t.equal(down.status, 503, 'Redis killed: not ready')
  t.same(down.body, { status: 'unavailable', down: ['broker'] }, 'names the broker, not the database')

  await redis.restart()
  const back = await readyBecomes(node.httpUrl, 200)
  t.equal(back.status, 200, 'Redis back: ready again')
  t.same(back.body?.down, [])
  // The subscriber's reconnect is announced after it resubscribed; it may trail the command connection.
  let reconnects = 0
  await until('the reconnect to be counted', async () => (reconnects = sampleValue(await scrape(node.httpUrl), 'chat_broker_reconnects_total')) > 0,
    { timeoutMs: 5000, everyMs: 100 }).catch(() => {})
  t.equal(reconnects, 1, 'the reconnect is counted once')
})

// PGlite runs inside the process: it has no outage to simulate short of closing it for good. A Postgres
// database does: it stops accepting connections and its sessions are terminated, as in a failover.
const serverUrl = process.env.DATABASE_URL
t.test('/ready turns 503 naming the database while Postgres refuses it, and 200 once it accepts again', {
  skip: (serverUrl === undefined || serverUrl === '') && 'needs DATABASE_URL (a Postgres server); PGlite is in-process',
}, async (t) => {
  const database = await freshDatabaseUrl(t)
  const name = new URL(database).pathname.slice(1)
  const node = await startNode(t, { database })
  t.equal((await ready(node.httpUrl)).status, 200, 'up')

  const admin = postgres(serverUrl as string, { max: 1, onnotice: () => {} })
  t.teardown(() => admin.end({ timeout: 5 }))
  const reopen = async (): Promise<void> => { await admin.unsafe(`alter database "${name}" with allow_connections true`) }
  t.teardown(reopen)
  await admin.unsafe(`alter database "${name}" with allow_connections false`)
  await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name} and pid <> pg_backend_pid()`
  const down = await readyBecomes(node.httpUrl, 503)
  t.equal(down.status, 503, 'connections refused: not ready')
  t.same(down.body, { status: 'unavailable', down: ['database'] }, 'names the database, not the broker')

  await reopen()
  const back = await readyBecomes(node.httpUrl, 200)
  t.equal(back.status, 200, 'accepting again: ready')
  t.same(back.body?.down, [])
})

t.test('/ready is 503 while the node shuts down', async (t) => {
  const node = await startNode(t, { redis: null })
  const { client } = await TestClient.session(node.wsUrl, node.token('lingering'))
  // A client that does not answer the close handshake keeps the shutdown waiting on its socket.
  const tcp = (client.socket as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  tcp.pause()
  t.equal((await ready(node.httpUrl)).status, 200)
  const closing = node.close()
  const answer = await readyBecomes(node.httpUrl, 503, 2000)
  t.equal(answer.status, 503, 'not ready once closing started')
  tcp.resume()
  t.equal((await client.closed).code, 1001)
  await closing
})
