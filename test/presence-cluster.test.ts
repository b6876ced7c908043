import t from 'tap'
import { sharedServicesSkip, startCluster, type TestNode } from './fixtures/server.js'
import { bobSeenOnline, presenceOf } from './fixtures/presence.js'
import { connect, disconnect, groupRoom, type Person, uid } from './fixtures/chat.js'
import { sleep } from './fixtures/timing.js'

const GRACE = 600
const TTL = 900

async function statusOn (member: Person, userId: string): Promise<string> {
  const ack = await member.client.ack('presence.get', { userIds: [userId] })
  return (ack.users as Array<{ status: string }>)[0]?.status ?? 'missing'
}

t.test('presence across nodes', { skip: sharedServicesSkip() }, async (t) => {
  const nodes = await startCluster(t, 2, {
    options: { presenceGraceMs: GRACE, presenceSweepMs: 50, presenceNodeTtlMs: TTL },
  })
  const a = nodes[0] as TestNode
  const b = nodes[1] as TestNode

  t.test('one user on two nodes: online until both sockets closed plus the grace', async (t) => {
    const { alice, bob: onA, bobId } = await bobSeenOnline(a)
    const onB = await connect(b, bobId)
    t.same(await alice.client.collect(200, presenceOf(bobId)), [], 'the second socket, on another node, sends nothing')

    await disconnect(onA)
    t.same(await alice.client.collect(GRACE * 2, presenceOf(bobId)), [], 'still online: a socket is open on node B')
    t.equal(await statusOn(alice, bobId), 'online', 'node A says online')

    const closedAt = Date.now()
    await disconnect(onB)
    t.equal(await statusOn(alice, bobId), 'online', 'online inside the grace')
    const offline = await alice.client.next(presenceOf(bobId), GRACE + 5000)
    t.ok(Date.now() - closedAt >= GRACE, 'offline not before the grace')
    t.equal(offline.data?.status, 'offline')
    t.type(offline.data?.lastSeen, 'string')
    t.same(await alice.client.collect(300, presenceOf(bobId)), [], 'offline is pushed once, not by each node')
    const carol = await connect(b, uid('carol'))
    t.equal(await statusOn(carol, bobId), 'offline', 'node B agrees')
    await disconnect(carol)
    await disconnect(alice)
  })

  t.test('a reconnect to another node inside the grace sends nothing', async (t) => {
    const { alice, bob: onA, bobId } = await bobSeenOnline(a)
    await disconnect(onA)
    await sleep(GRACE / 4)
    const onB = await connect(b, bobId)
    t.same(await alice.client.collect(GRACE * 3, presenceOf(bobId)), [], 'no offline, no second online')
    t.equal(await statusOn(alice, bobId), 'online')
    await disconnect(onB)
    await alice.client.next(presenceOf(bobId, 'offline'), GRACE + 5000)
    await disconnect(alice)
  })

  t.test('away and invisible are shared by the nodes', async (t) => {
    const seen = await bobSeenOnline(a, b)
    const { alice, bobId } = seen
    let bob = seen.bob
    await bob.client.ack('presence.set', { status: 'away' })
    await alice.client.next(presenceOf(bobId, 'away'))
    t.equal(await statusOn(alice, bobId), 'away', 'node A reads the choice made on node B')

    await bob.client.ack('presence.set', { status: 'offline' })
    await alice.client.next(presenceOf(bobId, 'offline'))
    await disconnect(bob)
    await sleep(GRACE * 2)
    bob = await connect(a, bobId)
    t.same(await alice.client.collect(GRACE, presenceOf(bobId)), [], 'invisible across a reconnect to the other node')
    t.equal(await statusOn(alice, bobId), 'offline')
    await bob.client.ack('presence.set', { status: 'online' })
    await alice.client.next(presenceOf(bobId, 'online'))
    await disconnect(bob)
    await disconnect(alice)
  })

  t.test('a node taken for dead writes its sockets back', async (t) => {
    // Simulates a long pause of node B: its liveness key vanishes, and node A removes its entries.
    const { alice, bob, bobId } = await bobSeenOnline(a, b)
    const redis = a.app.chat.scope.chatRedis
    if (redis === null) throw new Error('the cluster has Redis')
    const bKeys = `${a.app.chat.config.redisPrefix}{presence}:`
    const bNode = b.app.chat.scope.chatHub.nodeId
    // What a surviving node does to a node whose liveness key expired: its entries go, its users enter the grace.
    await redis.multi()
      .del(`${bKeys}node:${bNode}`)
      .hdel(`${bKeys}user:${bobId}`, `n:${bNode}`)
      .del(`${bKeys}sockets:${bNode}`)
      .srem(`${bKeys}nodes`, bNode)
      .zadd(`${bKeys}grace`, Date.now() + GRACE, bobId)
      .exec()
    t.equal(await statusOn(alice, bobId), 'online', 'inside the grace')
    // Node B's next heartbeat (every TTL / 3) finds its key gone and counts bob's socket again.
    t.same(await alice.client.collect(TTL + GRACE, presenceOf(bobId)), [], 'no offline for a live node')
    t.equal(await statusOn(alice, bobId), 'online')
    t.equal(await redis.hget(`${bKeys}user:${bobId}`, `n:${bNode}`), '1', 'node B counts bob\'s socket again')
    await disconnect(bob)
    await alice.client.next(presenceOf(bobId, 'offline'), GRACE + 5000)
    await disconnect(alice)
  })

  t.test('a member on another node who shares several rooms with the user gets each push once', async (t) => {
    const alice = await connect(b, uid('alice'))
    const bobId = uid('bob')
    for (let room = 0; room < 3; room += 1) await groupRoom(alice, [bobId])
    const bob = await connect(a, bobId)
    await alice.client.next(presenceOf(bobId, 'online'))
    t.same(await alice.client.collect(300, presenceOf(bobId)), [], 'online once, not once per room')
    t.same(await bob.client.ack('presence.set', { status: 'away' }), {})
    await alice.client.next(presenceOf(bobId, 'away'))
    t.same(await alice.client.collect(300, presenceOf(bobId)), [], 'away once')
    await disconnect(bob)
    await disconnect(alice)
  })

  t.test('a push older than one already delivered is dropped, where it arrives and where it was made', async (t) => {
    // The race this guards: a grace ends on node A (offline) while the user reconnects to node B (online),
    // and A's push is slower. Here the late pushes are made by hand, with a version older than the real one.
    const alice = await connect(a, uid('alice'))
    const carolId = uid('carol')
    const bobId = uid('bob')
    const roomId = await groupRoom(alice, [bobId, carolId])
    const carol = await connect(b, carolId)
    const bob = await connect(a, bobId)
    await alice.client.next(presenceOf(bobId, 'online'))
    await carol.client.next(presenceOf(bobId, 'online'))
    const redis = a.app.chat.scope.chatRedis
    if (redis === null) throw new Error('the cluster has Redis')
    const channel = `${a.app.chat.config.redisPrefix}room:${roomId}`
    const key = `presence:${bobId}`
    const pushOf = (status: string): string => JSON.stringify({ event: 'presence', data: { userId: bobId, status, lastSeen: null } })
    // Versions are Redis microseconds: 1 is older than any real change.
    await redis.publish(channel, `vghost 1 ${key.length}:${key}${pushOf('offline')}`)
    await b.app.chat.scope.chatHub.publishVersioned([{ roomIds: [roomId], frame: pushOf('offline'), version: { key, version: 1 } }])
    t.same(await alice.client.collect(300, presenceOf(bobId)), [], 'node A dropped both late pushes')
    t.same(await carol.client.collect(50, presenceOf(bobId)), [], 'node B dropped both, its own included')
    await redis.publish(channel, `vghost ${Number.MAX_SAFE_INTEGER} ${key.length}:${key}${pushOf('away')}`)
    t.equal((await alice.client.next(presenceOf(bobId))).data?.status, 'away', 'a later push goes through')
    t.equal((await carol.client.next(presenceOf(bobId))).data?.status, 'away')
    for (const member of [alice, bob, carol]) await disconnect(member)
  })
})
