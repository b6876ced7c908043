import t from 'tap'
import { Command } from 'ioredis'
import { RedisBroker } from '../lib/broker/redis.js'
import { RedisPresenceStore } from '../lib/presence/redis.js'
import { presenceSlotOf, CLUSTER_PRESENCE_SLOTS } from '../lib/presence/slots.js'
import { parseClusterUrl } from '../lib/redis-connection.js'
import { clusterSkip, isRun, type SendOutcome, startProcessCluster, storm, twoNodeCast } from './fixtures/cluster.js'
import { describeFailover, failoverDuringStorm, presenceCrossesNodes } from './fixtures/failover-storm.js'
import { RedisClusterFixture, redisClusterSkip } from './fixtures/redis-cluster.js'
import { randomPrefix } from './fixtures/server.js'
import { until, within } from './fixtures/timing.js'

// A real Redis Cluster (3 primaries, 3 replicas) of the test's own, on loopback.
const skip = redisClusterSkip()

function slotOf (key: string): number {
  return new Command('get', [key]).getSlot()
}

t.test('the cluster URL form', async (t) => {
  t.same(parseClusterUrl('redis+cluster://h1:7000,h2:7001'), { nodes: [{ host: 'h1', port: 7000 }, { host: 'h2', port: 7001 }], tls: false })
  t.same(parseClusterUrl('rediss+cluster://u:p%40ss@h1:7000/'), { nodes: [{ host: 'h1', port: 7000 }], tls: true, username: 'u', password: 'p@ss' })
  t.throws(() => parseClusterUrl('redis+cluster://h1:nope'), /host:port/)
})

t.test('on a Redis Cluster', { skip }, async (t) => {
  const cluster = await RedisClusterFixture.start(t)
  const primaries = (await cluster.nodes()).filter((node) => node.primary)
  t.equal(primaries.length, 3, '3 primaries')

  t.test('brokers: rooms on every shard, one command per slot, pipelined per shard, in order', async (t) => {
    const prefix = randomPrefix()
    const a = new RedisBroker({ url: cluster.url, prefix })
    const b = new RedisBroker({ url: cluster.url, prefix })
    t.teardown(async () => { await Promise.all([a.close(), b.close()]) })
    await Promise.all([a.ready(10000), b.ready(10000)])

    // Rooms until every primary owns at least two of them (bounded: random ids spread fast).
    const rooms: string[] = []
    const owners = new Map<number, number>()
    for (let index = 0; index < 200 && (owners.size < 3 || [...owners.values()].some((count) => count < 2)); index++) {
      const roomId = `r${index}`
      rooms.push(roomId)
      const port = await cluster.primaryOf(slotOf(`${prefix}{room:${roomId}}`))
      if (port !== undefined) owners.set(port, (owners.get(port) ?? 0) + 1)
    }
    t.equal(owners.size, 3, `${rooms.length} rooms spread over the 3 shards`)
    // Two channels in one slot: a second name for the first room's slot, found by trying.
    const firstSlot = slotOf(`${prefix}{room:${rooms[0] as string}}`)
    let twin = ''
    for (let index = 0; index < 100000 && twin === ''; index++) if (slotOf(`${prefix}{room:x${index}}`) === firstSlot) twin = `x${index}`
    t.not(twin, '', 'found a second room in the first room\'s slot')
    rooms.push(twin)

    const got = new Map<string, string[]>()
    for (const roomId of rooms) {
      await b.subscribe(`room:${roomId}`, (payload) => {
        const list = got.get(roomId) ?? []
        list.push(payload)
        got.set(roomId, list)
      })
    }
    t.equal(b.subscribedChannels().length, rooms.length, 'b subscribed every room, each on its shard')

    const before = await Promise.all(primaries.map(async (node) => await cluster.commandCalls(node.port)))
    // Three batches, each with a frame for every room (and two for the first room's slot).
    for (let batch = 0; batch < 3; batch++) await a.publishMany(rooms.map((roomId) => [`room:${roomId}`, `${roomId}:${batch}`] as const))
    await until('b got every frame', () => rooms.every((roomId) => (got.get(roomId)?.length ?? 0) === 3), { timeoutMs: 5000, everyMs: 20 })
    for (const roomId of rooms) t.same(got.get(roomId), [0, 1, 2].map((batch) => `${roomId}:${batch}`), `${roomId}: in order`)

    const after = await Promise.all(primaries.map(async (node) => await cluster.commandCalls(node.port)))
    const delta = (index: number, name: string): number => (after[index]?.get(name) ?? 0) - (before[index]?.get(name) ?? 0)
    const slots = new Set(rooms.map((roomId) => slotOf(`${prefix}{room:${roomId}}`)))
    const total = (name: string): number => primaries.reduce((sum, _, index) => sum + delta(index, name), 0)
    // commandstats counts the SPUBLISHes a script runs too: the shared slot's two frames, per batch.
    t.equal(total('eval'), 3, 'the shared slot took one script per batch')
    t.equal(total('spublish'), 3 * rooms.length, 'every frame published once')
    t.equal(total('spublish') - 2 * total('eval') + total('eval'), 3 * slots.size, `one command per slot and batch: ${slots.size} slots for ${rooms.length} rooms`)
    t.equal(primaries.reduce((sum, _, index) => sum + delta(index, 'publish'), 0), 0, 'no classic PUBLISH (broadcast to every shard)')
  })

  t.test('presence: keys spread over the shards, each user in one slot', async (t) => {
    const prefix = randomPrefix()
    const broker = new RedisBroker({ url: cluster.url, prefix })
    t.teardown(async () => { await broker.close() })
    await broker.ready(10000)
    const one = new RedisPresenceStore({ client: broker.client, prefix, nodeId: 'p1', nodeTtlMs: 3000 })
    const two = new RedisPresenceStore({ client: broker.client, prefix, nodeId: 'p2', nodeTtlMs: 3000 })
    const users = Array.from({ length: 40 }, (_, index) => `u${index}`)
    const tags = new Set(users.map((userId) => presenceSlotOf(userId, CLUSTER_PRESENCE_SLOTS)))
    t.ok(tags.size >= 8, `40 users over ${tags.size} of ${CLUSTER_PRESENCE_SLOTS} presence tags`)
    const shards = new Set(await Promise.all([...tags].map(async (tag) => await cluster.primaryOf(slotOf(`${prefix}{presence:${tag}}:x`)))))
    t.equal(shards.size, 3, 'the tags live on all 3 shards')

    for (const userId of users) t.equal((await one.attach(userId)).wasPresent, false, `${userId} arrives`)
    t.equal((await two.attach('u1')).wasPresent, true, 'a second node sees u1 present')
    await two.setChosen('u2', 'away')
    const read = await two.read(users)
    t.ok(users.every((userId) => read.get(userId)?.present === true), 'every user reads present from the other node')
    t.equal(read.get('u2')?.chosen, 'away')

    await one.leave(Date.now() - 1)
    const expired = await two.expireDue(Date.now(), 100)
    t.equal(expired.length, users.length - 1, 'node one left: its users expire, u1 has a socket on node two')
    t.notOk(expired.some((user) => user.userId === 'u1'))
    const restored = await one.resync(new Map([['u3', 1]]), Date.now() + 1000)
    t.same(restored.map((user) => user.userId), ['u3'], 'a resync writes its sockets back, in their slot')
    await within(two.heartbeat(new Map([['u1', 1]]), Date.now() + 1000), 5000, 'heartbeat over every tag')
  })
})

t.test('two server nodes on a Redis Cluster and Postgres: delivery across shards, presence, a primary killed in a send storm', { skip: skip || clusterSkip() }, async (t) => {
  const redis = await RedisClusterFixture.start(t)
  // The harness's own single redis-server is started but unused: REDIS_URL points the nodes at the cluster.
  const cluster = await startProcessCluster(t, { nodes: 2, env: { REDIS_URL: redis.url } })
  const { n1, n2, a, la, b, lb } = await twoNodeCast(cluster)
  const channelSlot = (roomId: string): number => slotOf(`${cluster.redisPrefix}{room:${roomId}}`)

  // Rooms until their channels sit on all three shards (bounded).
  const rooms: string[] = []
  const owners = new Map<number, string[]>()
  for (let index = 0; index < 12 && owners.size < 3; index++) {
    const roomId = await a.createRoom(`shard-${index}`, [la, b, lb])
    rooms.push(roomId)
    const port = await redis.primaryOf(channelSlot(roomId))
    if (port !== undefined) owners.set(port, [...(owners.get(port) ?? []), roomId])
  }
  t.equal(owners.size, 3, `${rooms.length} rooms, their channels on all 3 shards`)

  const failed: SendOutcome[] = []
  const started = Date.now()
  await Promise.all(rooms.flatMap((roomId) => [a, b].map(async (peer) => {
    const outcomes = await storm(peer, roomId, { count: 12, concurrency: 2, tag: `${peer.userId}-${roomId}` })
    failed.push(...outcomes.filter((o) => !o.ok))
  })))
  t.same(failed, [], `${rooms.length * 24} sends from both nodes acked (${Date.now() - started} ms)`)
  for (const roomId of rooms) {
    for (const peer of [la, lb]) {
      t.ok(await peer.reaches(roomId, 24, 10000) && isRun(peer.seqs(roomId), 1, 24), `${peer.userId} on ${peer.node.name}: room on shard ${await redis.primaryOf(channelSlot(roomId))} 1..24 in order, once`)
    }
  }

  // Presence across nodes: a user on n2 is online for a reader on n1, offline after leaving and the grace.
  await presenceCrossesNodes(cluster, la, n2)
  t.pass('presence crosses nodes on the cluster: online, then offline after the grace')

  // ---- a primary SIGKILLed during a send storm ----
  const [[killPort, killRooms]] = [...owners] as [[number, string[]]]
  const roomId = killRooms[0] as string
  // A user whose presence keys live on the shard that dies.
  let pzId = ''
  for (let index = 0; index < 1000 && pzId === ''; index++) {
    const candidate = `pz${index}`
    if (await redis.primaryOf(slotOf(`${cluster.redisPrefix}{presence:${presenceSlotOf(candidate, CLUSTER_PRESENCE_SLOTS)}}:x`)) === killPort) pzId = candidate
  }
  t.not(pzId, '', `a user whose presence lives on the shard at ${killPort}`)
  const shared = await la.request('room.create', { name: 'pz', type: 'GROUP', memberIds: [pzId] })
  t.equal(shared.event, 'ack', 'pz shares a room with la')

  // lb is on n2 and a sends on n1: lb's pushes come through Redis. pz's presence keys are on the dead shard.
  const report = await failoverDuringStorm(t, {
    cluster, sender: a, watcher: lb, listeners: [la, lb], roomId,
    presenceUserId: pzId, presenceNode: n2, presenceReader: la,
    kill: async () => { await redis.kill(killPort) },
    promoted: async () => {
      const port = await redis.primaryOf(channelSlot(roomId))
      return port !== undefined && port !== killPort
    },
  })
  t.comment(describeFailover(`primary :${killPort}`, report))
  for (const peer of [a, la, b, lb]) peer.close()
})
