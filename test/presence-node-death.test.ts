import t from 'tap'
import { freshDatabaseUrl } from './fixtures/database.js'
import { isAlive, killHard, serverPidOf, spawnServer } from './fixtures/process.js'
import { randomPrefix, startNode, TEST_SECRET } from './fixtures/server.js'
import { TestClient } from './fixtures/ws-client.js'
import { presenceOf } from './fixtures/presence.js'
import { connect, groupRoom, uid } from './fixtures/chat.js'
import { within } from './fixtures/timing.js'

// A node killed with SIGKILL closes nothing: its sockets stay counted in Redis until a surviving node
// sees that its liveness key expired. The child process and this one must share Postgres and Redis.
const redisUrl = process.env.REDIS_URL
const databaseUrl = process.env.DATABASE_URL
const skip = redisUrl === undefined || redisUrl === '' || databaseUrl === undefined || databaseUrl === ''
  ? 'a killed node needs a Redis and a Postgres shared with a child process: set REDIS_URL and DATABASE_URL'
  : false

t.test('a node killed with SIGKILL leaves no ghost: co-members get offline within 30 s', { skip }, async (t) => {
  const presenceOptions = { presenceGraceMs: 500, presenceSweepMs: 100, presenceNodeTtlMs: 1500 }
  const database = await freshDatabaseUrl(t)
  const redisPrefix = randomPrefix()
  const survivor = await startNode(t, { database, redisPrefix, options: presenceOptions })
  const doomed = await spawnServer(t, {
    DATABASE_URL: database,
    REDIS_URL: redisUrl ?? '',
    JWT_SECRET: TEST_SECRET,
    CHAT_OPTIONS: JSON.stringify({ redisPrefix, ...presenceOptions }),
  })
  const serverPid = await serverPidOf(doomed)
  t.teardown(() => { if (isAlive(serverPid)) process.kill(serverPid, 'SIGKILL') })

  const alice = await connect(survivor, uid('alice'))
  const ghostId = uid('ghost')
  await groupRoom(alice, [ghostId])
  const { client: ghost } = await TestClient.session(doomed.wsUrl, survivor.token(ghostId))
  await alice.client.next(presenceOf(ghostId, 'online'))

  const killedAt = Date.now()
  await t.resolves(killHard(serverPid), `server process ${serverPid} killed with SIGKILL`)
  const offline = await alice.client.next(presenceOf(ghostId), 30_000)
  const elapsed = Date.now() - killedAt
  t.equal(offline.data?.status, 'offline')
  t.type(offline.data?.lastSeen, 'string')
  t.ok(elapsed < 30_000, `offline after ${elapsed} ms, within 30 s`)
  t.ok(elapsed >= presenceOptions.presenceGraceMs, 'and not before the grace')
  const ack = await alice.client.ack('presence.get', { userIds: [ghostId] })
  t.match(ack.users, [{ userId: ghostId, status: 'offline' }])
  t.equal((await within(ghost.closed, 5000, 'the ghost socket closing')).code, 1006, 'the ghost\'s socket was cut, not closed')

  // Nothing of the dead node is left in Redis.
  const redis = survivor.app.chat.scope.chatRedis
  if (redis === null) throw new Error('the survivor has Redis')
  const nodes = await redis.smembers(`${redisPrefix}{presence}:nodes`)
  t.same(nodes, [survivor.app.chat.scope.chatHub.nodeId], 'only the survivor is a known node')
  t.equal(await redis.exists(`${redisPrefix}{presence}:user:${ghostId}`), 0, 'no socket counted for the ghost')
  alice.client.close()
})
