import t from 'tap'
import { startNode } from './fixtures/server.js'
import { bobSeenOnline, presenceOf } from './fixtures/presence.js'
import { connect, disconnect, groupRoom, uid } from './fixtures/chat.js'
import { sleep } from './fixtures/timing.js'

// One node; with REDIS_URL set the Redis store is used, otherwise the memory one: both must behave alike.
const GRACE = 600
const node = await startNode(t, {
  options: { presenceGraceMs: GRACE, presenceSweepMs: 50, presenceNodeTtlMs: 1500, presenceFanoutMaxMembers: 3 },
})

async function presenceGet (client: { ack: (event: string, data?: unknown) => Promise<Record<string, unknown>> }, userIds: string[]): Promise<Array<{ userId: string, status: string, lastSeen: string | null }>> {
  const ack = await client.ack('presence.get', { userIds })
  return ack.users as Array<{ userId: string, status: string, lastSeen: string | null }>
}

t.test('online when a co-member connects, offline only after the grace, last seen stamped', async (t) => {
  const alice = await connect(node, uid('alice'))
  const bobId = uid('bob')
  await groupRoom(alice, [bobId])
  t.same(await presenceGet(alice.client, [bobId]), [{ userId: bobId, status: 'offline', lastSeen: null }], 'never seen')

  const bob = await connect(node, bobId)
  const online = await alice.client.next(presenceOf(bobId))
  t.same(online.data, { userId: bobId, status: 'online', lastSeen: null })
  t.same(await presenceGet(alice.client, [bobId]), [{ userId: bobId, status: 'online', lastSeen: null }])

  const closedAt = Date.now()
  await disconnect(bob)
  t.same(await presenceGet(alice.client, [bobId]), [{ userId: bobId, status: 'online', lastSeen: null }], 'still online inside the grace')
  const offline = await alice.client.next(presenceOf(bobId), GRACE + 5000)
  t.ok(Date.now() - closedAt >= GRACE, 'offline not before the grace')
  t.equal(offline.data?.status, 'offline')
  const lastSeen = offline.data?.lastSeen as string
  t.ok(!Number.isNaN(Date.parse(lastSeen)), 'lastSeen is a date')
  t.ok(Date.parse(lastSeen) >= closedAt, 'lastSeen is after the close')

  t.same(await presenceGet(alice.client, [bobId, bobId]), [{ userId: bobId, status: 'offline', lastSeen }], 'presence.get: once per id, same lastSeen')
  const profiles = await node.app.chat.scope.chatUsers.profiles('', [bobId])
  t.equal(profiles.get(bobId)?.lastSeen, lastSeen, 'lastSeen is in the database')

  const response = await fetch(`${node.httpUrl}/api/presence?userIds=${encodeURIComponent(`${bobId},${alice.id}`)}`, {
    headers: { authorization: `Bearer ${node.token(alice.id)}` },
  })
  t.equal(response.status, 200)
  t.same(await response.json(), { users: [{ userId: bobId, status: 'offline', lastSeen }, { userId: alice.id, status: 'online', lastSeen: null }] })
  await disconnect(alice)
})

t.test('a reconnect inside the grace sends nothing', async (t) => {
  const { alice, bob, bobId } = await bobSeenOnline(node)
  await disconnect(bob)
  await sleep(GRACE / 4)
  const again = await connect(node, bobId)
  const frames = await alice.client.collect(GRACE * 3, presenceOf(bobId))
  t.same(frames, [], 'neither offline nor a second online')
  t.same(await presenceGet(alice.client, [bobId]), [{ userId: bobId, status: 'online', lastSeen: null }])
  await disconnect(again)
  await alice.client.next(presenceOf(bobId, 'offline'), GRACE + 5000)
  await disconnect(alice)
})

t.test('two sockets of one user count once: online until both closed plus the grace', async (t) => {
  const { alice, bob: phone, bobId } = await bobSeenOnline(node)
  const laptop = await connect(node, bobId)
  await disconnect(phone)
  t.same(await alice.client.collect(GRACE * 2, presenceOf(bobId)), [], 'no push while one socket is open')
  t.same(await presenceGet(alice.client, [bobId]), [{ userId: bobId, status: 'online', lastSeen: null }])
  const closedAt = Date.now()
  await disconnect(laptop)
  await alice.client.next(presenceOf(bobId, 'offline'), GRACE + 5000)
  t.ok(Date.now() - closedAt >= GRACE, 'offline not before the grace')
  await disconnect(alice)
})

t.test('away lasts until changed or offline', async (t) => {
  const seen = await bobSeenOnline(node)
  const { alice, bobId } = seen
  let bob = seen.bob

  t.same(await bob.client.ack('presence.set', { status: 'away' }), {})
  t.same((await alice.client.next(presenceOf(bobId))).data, { userId: bobId, status: 'away', lastSeen: null })
  t.same(await presenceGet(alice.client, [bobId]), [{ userId: bobId, status: 'away', lastSeen: null }])

  // Away survives a reconnect inside the grace...
  await disconnect(bob)
  bob = await connect(node, bobId)
  t.same(await alice.client.collect(GRACE * 2, presenceOf(bobId)), [], 'reconnect inside the grace: nothing')
  t.same(await presenceGet(alice.client, [bobId]), [{ userId: bobId, status: 'away', lastSeen: null }], 'still away')
  // ...but not going offline.
  await disconnect(bob)
  t.equal((await alice.client.next(presenceOf(bobId), GRACE + 5000)).data?.status, 'offline')
  bob = await connect(node, bobId)
  t.equal((await alice.client.next(presenceOf(bobId))).data?.status, 'online', 'back online, not away')

  t.same(await bob.client.ack('presence.set', { status: 'away' }), {})
  await alice.client.next(presenceOf(bobId, 'away'))
  t.same(await bob.client.ack('presence.set', { status: 'online' }), {})
  await alice.client.next(presenceOf(bobId, 'online'))
  t.same(await bob.client.ack('presence.set', { status: 'online' }), {})
  t.same(await alice.client.collect(200, presenceOf(bobId)), [], 'no push when nothing changed')
  await disconnect(bob)
  await disconnect(alice)
})

t.test('invisible: offline to others, across reconnects, until changed', async (t) => {
  const seen = await bobSeenOnline(node)
  const { alice, bobId } = seen
  let bob = seen.bob

  const setAt = Date.now()
  t.same(await bob.client.ack('presence.set', { status: 'offline' }), {})
  const hidden = await alice.client.next(presenceOf(bobId))
  t.equal(hidden.data?.status, 'offline')
  const lastSeen = hidden.data?.lastSeen as string
  t.ok(Date.parse(lastSeen) >= setAt - 1000, 'last seen: when they went invisible')
  t.same(await presenceGet(alice.client, [bobId]), [{ userId: bobId, status: 'offline', lastSeen }])

  await disconnect(bob)
  await sleep(GRACE * 2)
  bob = await connect(node, bobId)
  t.same(await alice.client.collect(GRACE, presenceOf(bobId)), [], 'nothing on leaving or coming back')
  t.same(await presenceGet(alice.client, [bobId]), [{ userId: bobId, status: 'offline', lastSeen }], 'still invisible after a reconnect')
  t.same(await presenceGet(bob.client, [bobId]), [{ userId: bobId, status: 'offline', lastSeen }], 'the user reads their own choice too')

  t.same(await bob.client.ack('presence.set', { status: 'online' }), {})
  t.same((await alice.client.next(presenceOf(bobId))).data, { userId: bobId, status: 'online', lastSeen: null })
  await disconnect(bob)
  await disconnect(alice)
})

t.test('changes in one burst are coalesced into one push per user', async (t) => {
  const { alice, bob, bobId } = await bobSeenOnline(node)
  bob.client.send({ event: 'presence.set', data: { status: 'away' } })
  bob.client.send({ event: 'presence.set', data: { status: 'online' } })
  bob.client.send({ event: 'presence.set', id: 'last', data: { status: 'away' } })
  await bob.client.next((frame) => frame.id === 'last')
  const frames = await alice.client.collect(500, presenceOf(bobId))
  t.same(frames.map((frame) => frame.data?.status), ['away'], 'the latest status, once')
  await disconnect(bob)
  await disconnect(alice)
})

t.test('a member who shares several rooms with the user gets each push once', async (t) => {
  const alice = await connect(node, uid('alice'))
  const bobId = uid('bob')
  for (let room = 0; room < 3; room += 1) await groupRoom(alice, [bobId])
  const bob = await connect(node, bobId)
  await alice.client.next(presenceOf(bobId, 'online'))
  t.same(await alice.client.collect(300, presenceOf(bobId)), [], 'online once, not once per room')
  t.same(await bob.client.ack('presence.set', { status: 'away' }), {})
  await alice.client.next(presenceOf(bobId, 'away'))
  t.same(await alice.client.collect(300, presenceOf(bobId)), [], 'away once')
  await disconnect(bob)
  await disconnect(alice)
})

t.test('presence is not pushed to rooms over presenceFanoutMaxMembers', async (t) => {
  const alice = await connect(node, uid('alice'))
  const carol = await connect(node, uid('carol'))
  const bobId = uid('bob')
  // A room of 2 (alice, bob) and a room of 4 (carol, bob and two more): the limit is 3.
  await groupRoom(alice, [bobId])
  await groupRoom(carol, [bobId, uid('dave'), uid('erin')])
  const bob = await connect(node, bobId)
  await alice.client.next(presenceOf(bobId, 'online'))
  t.same(await bob.client.ack('presence.set', { status: 'away' }), {})
  await alice.client.next(presenceOf(bobId, 'away'))
  t.same(await carol.client.collect(300, presenceOf(bobId)), [], 'nothing to the large room')
  const [status] = await presenceGet(carol.client, [bobId])
  t.equal(status?.status, 'away', 'presence.get still answers for anyone')
  await disconnect(bob)
  await disconnect(carol)
  await disconnect(alice)
})

t.test('refusals', async (t) => {
  const alice = await connect(node, uid('alice'))
  let reply = await alice.client.request('presence.get', { userIds: Array.from({ length: 201 }, (_, index) => `u${index}`) })
  t.equal(reply.error?.code, 'VALIDATION_FAILED', 'more than 200 ids')
  reply = await alice.client.request('presence.get', { userIds: [] })
  t.equal(reply.error?.code, 'VALIDATION_FAILED', 'no ids')
  reply = await alice.client.request('presence.set', { status: 'busy' })
  t.equal(reply.error?.code, 'VALIDATION_FAILED', 'unknown status')
  t.match(reply.error?.details, [{ field: 'status' }])
  t.equal((await alice.client.ack('presence.get', { userIds: Array.from({ length: 200 }, (_, index) => `u${index}`) })).users instanceof Array, true, '200 ids are fine')

  let response = await fetch(`${node.httpUrl}/api/presence?userIds=a`)
  t.equal(response.status, 401, 'REST needs a token')
  t.match(await response.json(), { code: 'UNAUTHENTICATED' })
  const auth = { headers: { authorization: `Bearer ${node.token(alice.id)}` } }
  response = await fetch(`${node.httpUrl}/api/presence?userIds=${Array.from({ length: 201 }, (_, index) => `u${index}`).join(',')}`, auth)
  t.equal(response.status, 400, 'more than 200 ids over REST')
  t.match(await response.json(), { code: 'VALIDATION_FAILED' })
  response = await fetch(`${node.httpUrl}/api/presence`, auth)
  t.equal(response.status, 400, 'userIds is required')
  response = await fetch(`${node.httpUrl}/api/presence?userIds=,,`, auth)
  t.equal(response.status, 400, 'empty ids')
  await disconnect(alice)
})

t.test('statusOf answers for every id asked', async (t) => {
  const presence = node.app.chat.scope.chatPresence
  const unknown = uid('nobody')
  const statuses = await presence.statusOf('', [unknown, unknown])
  t.same([...statuses], [[unknown, { status: 'offline', lastSeen: null }]])
  t.same([...await presence.statusOf('', [])], [])
})
