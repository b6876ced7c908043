import t, { type Test } from 'tap'
import { connect, uid, type Person } from './fixtures/chat.js'
import { rest } from './fixtures/rooms.js'
import { onOneAndTwoNodes, startNode, type TestNode } from './fixtures/server.js'
import { TestClient, type Frame } from './fixtures/ws-client.js'
import { until } from './fixtures/timing.js'

// A user is the pair (tenant, sub) (protocol 11.1, issue 21): the same sub in two tenants is two users with
// their own name, favorites, presence, connection cap and send budget; presence is shown only to people
// who share a room, unless the caller holds chats:presence. tenants.test.ts walks every entry point against
// another tenant's room; this file checks the per-user state.

const HIGH = { rate: 100_000, burst: 100_000 }

function mentions (frames: readonly Frame[], text: string): Frame[] {
  return frames.filter((frame) => JSON.stringify(frame).includes(text))
}

async function presenceOf (person: Person, node: TestNode, userId: string): Promise<{ ws: unknown, rest: unknown }> {
  const ws = (await person.client.ack('presence.get', { userIds: [userId] })).users
  const reply = await rest(node, person.token, 'GET', `/api/presence?userIds=${encodeURIComponent(userId)}`)
  return { ws, rest: (reply.body as { users: unknown }).users }
}

async function samePerson (t: Test, nodeA: TestNode, nodeB: TestNode): Promise<void> {
  const carolId = uid('carol')
  const carolB = await connect(nodeB, carolId, { tenant: 'B', name: 'Carol B' })
  const bobB = await connect(nodeB, uid('bob'), { tenant: 'B' })
  const alice = await connect(nodeA, uid('alice'), { tenant: 'A' })
  t.teardown(() => { for (const one of [carolB, bobB, alice]) one.client.close() })
  const roomB = ((await bobB.client.ack('room.create', { name: 'B', type: 'GROUP', memberIds: [carolId] })).room as { id: string }).id
  await carolB.client.next((frame) => frame.event === 'room.added', 10_000)

  // Tenant A adds a sub that B knows: it is A's carol, a user never seen in A, and it works.
  const roomA = ((await alice.client.ack('room.create', { name: 'A', type: 'GROUP', memberIds: [carolId] })).room as { id: string }).id
  const carolA = await connect(nodeA, carolId, { tenant: 'A', name: 'Carol A' })
  t.teardown(() => carolA.client.close())
  t.same((carolA.ready.data as { rooms: Array<{ id: string }> }).rooms.map((room) => room.id), [roomA], 'carol of A: only A\'s room in session.ready')
  t.same((carolB.client.frames.filter((frame) => frame.event === 'room.added')), [], 'carol of B: no room.added for A\'s room')

  // Names: each tenant's row.
  const namesIn = async (person: Person, roomId: string): Promise<string | null | undefined> => {
    const members = (await person.client.ack('room.members', { roomId })).members as Array<{ user: { id: string, name: string | null } }>
    return members.find((member) => member.user.id === carolId)?.user.name
  }
  t.equal(await namesIn(alice, roomA), 'Carol A', 'A\'s room shows carol\'s tenant-A name')
  t.equal(await namesIn(bobB, roomB), 'Carol B', 'B\'s room shows carol\'s tenant-B name')

  // Favorites: carol of A favorites alice; carol of B has none and hears nothing.
  await carolA.client.ack('favorite.toggle', { type: 'USER', id: alice.id })
  const favoritesB = await rest(nodeB, carolB.token, 'GET', '/api/me/favorites')
  t.same((favoritesB.body as { favorites: unknown[] }).favorites, [], 'carol of B: no favorites')
  const favoritesA = await rest(nodeA, carolA.token, 'GET', '/api/me/favorites')
  t.same((favoritesA.body as { favorites: Array<{ id: string }> }).favorites.map((favorite) => favorite.id), [alice.id], 'carol of A: her favorite')

  // Presence: carol of A going away is seen in A's room, not by B; carol of B's status is her own.
  await carolA.client.ack('presence.set', { status: 'away' })
  await until('alice to see carol of A away', async () => ((await alice.client.ack('presence.get', { userIds: [carolId] })).users as Array<{ status: string }>)[0]?.status === 'away', { timeoutMs: 10_000 })
  const seenByB = (await bobB.client.ack('presence.get', { userIds: [carolId] })).users as Array<{ status: string }>
  t.equal(seenByB[0]?.status, 'online', 'bob of B sees carol of B online, not A\'s away')
  // A probe through B's room: once bob hears it, B's node has delivered what it would have.
  const probe = uid('probe')
  await carolB.client.ack('message.send', { roomId: roomB, content: probe })
  await bobB.client.next((frame) => frame.event === 'message.new' && JSON.stringify(frame).includes(probe), 10_000)
  t.same(bobB.client.frames.filter((frame) => frame.event === 'presence' && JSON.stringify(frame).includes('away')), [], 'B\'s room hears no presence push of carol of A')
  t.same(mentions(carolB.client.frames, roomA), [], 'carol of B: nothing of A\'s room')
}

onOneAndTwoNodes(t, 'the same sub in two tenants is two users: name, room.added, favorites, presence', samePerson)

t.test('presence is shown to people who share a room, or to a token holding chats:presence', async (t) => {
  const node = await startNode(t)
  const erin = await connect(node, uid('erin'))
  const dave = await connect(node, uid('dave'))
  const desk = await connect(node, uid('desk'), { permissions: ['chats:presence'] })
  t.teardown(() => { for (const one of [erin, dave, desk]) one.client.close() })
  const hidden = [{ userId: erin.id, status: 'offline', lastSeen: null }]
  t.same(await presenceOf(dave, node, erin.id), { ws: hidden, rest: hidden }, 'a stranger reads erin as offline, never seen')
  const shown = [{ userId: erin.id, status: 'online', lastSeen: null }]
  t.same(await presenceOf(desk, node, erin.id), { ws: shown, rest: shown }, 'chats:presence sees her online without a shared room')
  t.same(await presenceOf(dave, node, dave.id), { ws: [{ userId: dave.id, status: 'online', lastSeen: null }], rest: [{ userId: dave.id, status: 'online', lastSeen: null }] }, 'a user sees themselves')
  await erin.client.ack('room.create', { name: 'shared', type: 'GROUP', memberIds: [dave.id] })
  t.same(await presenceOf(dave, node, erin.id), { ws: shown, rest: shown }, 'once they share a room, dave sees her online')
})

t.test('the connection cap and the send budget count (tenant, sub), not sub', async (t) => {
  const node = await startNode(t, { options: { maxConnectionsPerUser: 2, rateLimits: { send: HIGH, userSend: { rate: 0.001, burst: 2 } } } })
  const sub = uid('zoe')
  const zoeA = await connect(node, sub, { tenant: 'A' })
  const zoeA2 = await connect(node, sub, { tenant: 'A' })
  const zoeB = await connect(node, sub, { tenant: 'B' })
  t.teardown(() => { for (const one of [zoeA, zoeA2, zoeB]) one.client.close() })
  t.ok(zoeB.ready.event === 'session.ready', 'zoe of B gets a session while zoe of A holds the cap of 2')
  const third = await TestClient.connect(node.wsUrl, { token: zoeA.token })
  t.equal((await third.closed).code, 4409, 'a third socket of zoe of A is refused (TOO_MANY_CONNECTIONS)')

  const roomA = ((await zoeA.client.ack('room.create', { name: 'A', type: 'GROUP' })).room as { id: string }).id
  const roomB = ((await zoeB.client.ack('room.create', { name: 'B', type: 'GROUP' })).room as { id: string }).id
  const codes: Array<string | undefined> = []
  for (let index = 0; index < 3; index += 1) codes.push((await zoeA.client.request('message.send', { roomId: roomA, content: `a ${index}` })).error?.code)
  t.same(codes, [undefined, undefined, 'RATE_LIMITED'], 'zoe of A spends her budget of 2')
  t.equal((await zoeB.client.request('message.send', { roomId: roomB, content: 'b' })).event, 'ack', 'zoe of B still sends: her own budget')
})
