import t from 'tap'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { RedisBroker } from '../lib/broker/redis.js'
import { parseSentinelUrl, redactRedisUrl, redisFromUrl, redisUrlProblem } from '../lib/redis-connection.js'
import { resolveConfig } from '../plugins/core/config.js'
import { settingsFromEnv } from '../plugins/core/env.js'
import { clusterSkip, isRun, type SendOutcome, startProcessCluster, storm, twoNodeCast } from './fixtures/cluster.js'
import { describeFailover, failoverDuringStorm, presenceCrossesNodes } from './fixtures/failover-storm.js'
import { redisCommand } from './fixtures/redis-server.js'
import { PRIMARY_NAME, RedisSentinelFixture, redisSentinelSkip } from './fixtures/redis-sentinel.js'
import { until } from './fixtures/timing.js'

// A real primary, replica and three Sentinels of the test's own, on loopback.
const skip = redisSentinelSkip()

t.test('the Sentinel URL form', async (t) => {
  t.same(parseSentinelUrl('redis+sentinel://s1:26380,s2,[::1]:26381/mymaster'), {
    sentinels: [{ host: 's1', port: 26380 }, { host: 's2', port: 26379 }, { host: '::1', port: 26381 }], name: 'mymaster', db: 0, tls: false,
  }, 'Sentinels on 26379 unless given')
  t.same(parseSentinelUrl('rediss+sentinel://app:p%40ss@s1:26379/my%20primary/3?sentinelPassword=s%26cret'), {
    sentinels: [{ host: 's1', port: 26379 }], name: 'my primary', db: 3, tls: true, username: 'app', password: 'p@ss', sentinelPassword: 's&cret',
  }, 'credentials, a database and the Sentinels\' own password, percent-decoded')
  t.throws(() => parseSentinelUrl('redis+sentinel://s1:26379'), /primaryName/, 'the primary\'s name is required')
  t.throws(() => parseSentinelUrl('redis+sentinel://s1:nope/m'), /host:port/)
  t.throws(() => parseSentinelUrl('redis+sentinel://s1/m/x'), /database/)
  t.throws(() => parseSentinelUrl('redis+sentinel://s1/m?sentinelPasword=x'), /sentinelPasword/, 'a misspelt parameter is refused, not ignored')

  t.equal(redactRedisUrl('redis+sentinel://app:secret@s1,s2:26380/m/2?sentinelPassword=other'), 'redis+sentinel://app:***@s1:26379,s2:26380/m/2?sentinelPassword=***')

  // What ioredis is given: the Sentinels, the name, the primary's role, and TLS to both kinds of server.
  const client = redisFromUrl('rediss+sentinel://:pw@s1:26380/m?sentinelUsername=watch', { lazyConnect: true })
  t.teardown(() => { client.disconnect() })
  t.match(client.options, {
    sentinels: [{ host: 's1', port: 26380 }], name: 'm', role: 'master', password: 'pw', sentinelUsername: 'watch',
    failoverDetector: true, enableTLSForSentinelMode: true, sentinelTLS: {}, tls: {},
  })
  t.same(client.duplicate({ lazyConnect: true }).options.sentinels, client.options.sentinels, 'a duplicate keeps the Sentinels')

  for (const url of ['redis://h:6379/1', 'rediss://u:p@h', 'redis+cluster://h1:7000,h2:7001', 'redis+sentinel://s1,s2/m']) {
    t.equal(redisUrlProblem(url), undefined, `${url} is accepted`)
  }
  // The accepted forms are named wherever a bad value is refused: the option, and the server's variable.
  t.throws(() => resolveConfig({ redis: 'redis+sentinel://s1:26379' }), /invalid option "redis".*primaryName.*accepted: redis:\/\/.*redis\+cluster:\/\/.*redis\+sentinel:\/\//)
  t.throws(() => resolveConfig({ redis: 'memcached://h' }), /invalid option "redis": "memcached:\/\/h" is not a Redis URL; accepted: redis:\/\//)
  t.throws(() => resolveConfig({ redis: 'redis+cluster://h1:x' }), /invalid option "redis".*host:port.*accepted/)
  t.throws(() => settingsFromEnv({ REDIS_URL: 'redis+sentinel://u:secret@s1/m/x?sentinelPassword=other' }), /^REDIS_URL: "redis\+sentinel:\/\/\*\*\*@s1\/m\/x\?sentinelPassword=\*\*\*": .*database.*accepted/, 'REDIS_URL is named, its password not shown')
  t.notMatch(redisUrlProblem('redis+cluster://u:pa/ss@h:x') ?? '', /pa\/ss/, 'a URL that does not parse still hides what may be a password')
  t.equal(resolveConfig({ redis: 'redis+sentinel://s1,s2/m' }).redis, 'redis+sentinel://s1,s2/m')
})

t.test('brokers on Redis Sentinel', { skip }, async (t) => {
  const sentinel = await RedisSentinelFixture.start(t)
  const [primary] = sentinel.dataPorts

  t.test('on the URL form: found through the Sentinels, publish and subscribe across two brokers', async (t) => {
    const prefix = `test:${randomUUID()}:`
    const a = new RedisBroker({ url: sentinel.url, prefix })
    const b = new RedisBroker({ url: sentinel.url, prefix })
    t.teardown(async () => { await Promise.all([a.close(), b.close()]) })
    await Promise.all([a.ready(10000), b.ready(10000)])
    t.match(a.description, /^redis\+sentinel:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+\/chatprimary$/)
    const got: string[] = []
    await b.subscribe('room:1', (payload) => { got.push(payload) })
    await a.publishMany([['room:1', 'one'], ['room:1', 'two']])
    await until('b got both', () => got.length === 2, { timeoutMs: 5000 })
    t.same(got, ['one', 'two'])
    t.same(await redisCommand(primary, 'pubsub', 'numsub', `${prefix}room:1`), [`${prefix}room:1`, 1], 'the subscriber is on the primary')
  })

  t.test('on a host\'s own Sentinel client: the subscriber duplicate reaches the same primary', async (t) => {
    const prefix = `test:${randomUUID()}:`
    const host = new Redis({ sentinels: sentinel.sentinels, name: PRIMARY_NAME, lazyConnect: true })
    t.teardown(() => { host.disconnect() })
    const broker = new RedisBroker({ client: host, prefix })
    t.teardown(async () => { await broker.close() })
    await broker.ready(10000)
    t.equal(broker.description, `the primary "${PRIMARY_NAME}" behind 3 Sentinels (host client)`)
    const got: string[] = []
    await broker.subscribe('room:h', (payload) => { got.push(payload) })
    // Had the duplicate lost the Sentinels it would sit on ioredis' default, 127.0.0.1:6379: not here.
    t.same(await redisCommand(primary, 'pubsub', 'numsub', `${prefix}room:h`), [`${prefix}room:h`, 1], 'subscribed on the Sentinels\' primary')
    await broker.publish('room:h', 'hi')
    await until('the host client\'s broker got its publish', () => got.length === 1, { timeoutMs: 5000 })
    t.equal(await host.ping(), 'PONG', 'the host\'s client is still its own')
  })
})

t.test('two server nodes on Redis Sentinel and Postgres: delivery, presence, the primary killed in a send storm', { skip: skip || clusterSkip() }, async (t) => {
  const redis = await RedisSentinelFixture.start(t)
  const [primary, replica] = redis.dataPorts
  // The harness's own single redis-server is started but unused: REDIS_URL points the nodes at the Sentinels.
  const cluster = await startProcessCluster(t, { nodes: 2, env: { REDIS_URL: redis.url } })
  const { n2, a, la, b, lb } = await twoNodeCast(cluster)

  const roomId = await a.createRoom('sentinel', [la, b, lb])
  const failed: SendOutcome[] = []
  await Promise.all([a, b].map(async (peer) => {
    const outcomes = await storm(peer, roomId, { count: 12, concurrency: 2, tag: `${peer.userId}-warm` })
    failed.push(...outcomes.filter((o) => !o.ok))
  }))
  t.same(failed, [], '24 sends from both nodes acked')
  for (const peer of [la, lb]) t.ok(await peer.reaches(roomId, 24, 10000) && isRun(peer.seqs(roomId), 1, 24), `${peer.userId} on ${peer.node.name}: 1..24 in order, once`)

  await presenceCrossesNodes(cluster, la, n2)
  t.pass('presence crosses nodes through the Sentinels\' primary: online, then offline after the grace')

  // ---- the primary SIGKILLed during a send storm ----
  const shared = await la.request('room.create', { name: 'pz', type: 'GROUP', memberIds: ['pz'] })
  t.equal(shared.event, 'ack', 'pz shares a room with la')
  t.equal(await redis.primaryPort(), primary, `the Sentinels name :${primary} the primary`)
  const report = await failoverDuringStorm(t, {
    cluster, sender: a, watcher: lb, listeners: [la, lb], roomId,
    presenceUserId: 'pz', presenceNode: n2, presenceReader: la,
    kill: async () => { await redis.kill(primary) },
    promoted: async () => await redis.promoted(replica),
  })
  t.comment(describeFailover(`primary :${primary} (replica :${replica})`, report))
  for (const peer of [a, la, b, lb]) peer.close()
})
