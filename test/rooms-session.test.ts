import t from 'tap'
import { onOneAndTwoNodes, startNode } from './fixtures/server.js'
import { countQueries, receives, rest, scopeOf, storeMessage } from './fixtures/rooms.js'
import { connect, groupRoom, uid, type Person } from './fixtures/chat.js'
import { sleep } from './fixtures/timing.js'
import type { ChatUser } from '../plugins/realtime/connection.js'

// session.ready: rooms, people and favorites as the database has them, whatever happened while away,
// read in a fixed number of queries.
// One user makes 32 rooms below, more than the default quotas.roomsPerMinute.
const node = await startNode(t, { options: { quotas: { roomsPerMinute: 1000 } } })
const api = node.app.chat.config.apiPrefix

function chatUser (id: string): ChatUser {
  return { id, tenant: '', name: id.toUpperCase(), avatar: null, roles: [], permissions: [], exp: null }
}

function roomsOf (ready: { data?: Record<string, unknown> }): Map<string, Record<string, any>> {
  return new Map((ready.data?.rooms as Array<Record<string, any>>).map((room) => [room.id, room]))
}

t.test('session.ready after a reconnect reflects every change made while away', async (t) => {
  const owner = await connect(node, 'owner1')
  const friend = await connect(node, 'friend1')
  let user: Person = await connect(node, 'user1')
  const create = async (data: Record<string, unknown>): Promise<string> => ((await owner.client.ack('room.create', { type: 'GROUP', ...data })).room as { id: string }).id
  const addedTo = await create({ name: 'added while away' })
  const promoted = await create({ name: 'promoted', memberIds: [user.id] })
  const kickedFrom = await create({ name: 'kicked', memberIds: [user.id] })
  const deleted = await create({ name: 'deleted', memberIds: [user.id] })
  const left = await create({ name: 'left', memberIds: [user.id] })
  await rest(node, user.token, 'PUT', `${api}/me/favorites/ROOM/${kickedFrom}`)
  t.same(roomsOf(user.ready).size, 0, 'nothing at first')
  user.client.close()
  await user.client.closed

  await owner.client.ack('room.member.add', { roomId: addedTo, userIds: [user.id] })
  await owner.client.ack('room.member.role', { roomId: promoted, userId: user.id, role: 'MODERATOR' })
  await owner.client.ack('room.update', { roomId: promoted, name: 'renamed', isPrivate: true })
  await owner.client.ack('room.member.remove', { roomId: kickedFrom, userId: user.id })
  await owner.client.ack('room.delete', { roomId: deleted })
  await rest(node, user.token, 'DELETE', `${api}/rooms/${left}/members/${user.id}`)
  const dm = ((await friend.client.ack('dm.open', { userId: user.id })).room as { id: string }).id
  await storeMessage(node, addedTo, owner.id, 'one')
  await storeMessage(node, addedTo, owner.id, 'deleted one', { deleted: true })
  await storeMessage(node, addedTo, user.id, 'my own')
  await storeMessage(node, addedTo, owner.id, 'latest')
  await storeMessage(node, addedTo, owner.id, 'deleted last', { deleted: true })
  await storeMessage(node, dm, friend.id, 'psst')
  await rest(node, user.token, 'PUT', `${api}/me/favorites/USER/${friend.id}`)
  await rest(node, user.token, 'PUT', `${api}/me/favorites/ROOM/${dm}`)

  user = await connect(node, 'user1')
  const rooms = roomsOf(user.ready)
  t.same([...rooms.keys()].sort(), [addedTo, promoted, dm].sort(), 'exactly the rooms the user is in now')
  t.match(rooms.get(addedTo), { name: 'added while away', myRole: 'MEMBER', lastReadSeq: 1, lastSeq: 6, unreadCount: 2, lastMessage: { content: 'latest', seq: 5, sender: { id: owner.id } } },
    'unread counts others\' messages, not deleted ones, after the join; the last message is the latest not deleted')
  t.match(rooms.get(promoted), { name: 'renamed', isPrivate: true, myRole: 'MODERATOR', lastSeq: 2, lastReadSeq: 0, unreadCount: 0, lastMessage: null })
  t.match(rooms.get(dm), { type: 'DIRECT', name: 'Friend1', peerId: friend.id, myRole: 'MEMBER', unreadCount: 1, lastMessage: { content: 'psst' } })
  t.same(user.ready.data?.people, [{ id: friend.id, name: 'Friend1', avatar: null, status: 'online', lastSeen: null }], 'people: whoever shares a DIRECT room, with presence')
  t.same(user.ready.data?.favorites, [
    { type: 'USER', id: friend.id, name: 'Friend1', avatar: null },
    { type: 'ROOM', id: dm, name: 'Friend1', avatar: null },
  ], 'favorites; a room the user was kicked from is not shown')

  // The new socket is subscribed to each of those rooms.
  await owner.client.ack('room.update', { roomId: promoted, description: 'hello again' })
  t.ok(await receives(user.client, 'room.updated', (data) => data.roomId === promoted, 2000), 'events of a room reach the reconnected socket')
  await owner.client.ack('room.update', { roomId: addedTo, description: 'and here' })
  t.ok(await receives(user.client, 'room.updated', (data) => data.roomId === addedTo && data.seq === 7, 2000))
  t.same(await scopeOf(node).chatRooms.roomIdsOf({ id: user.id, tenant: '' }).then((ids) => ids.sort()), [addedTo, promoted, dm].sort(), 'the session primed the membership cache')
  for (const one of [owner, friend, user]) one.client.close()
})

t.test('people: a peer without a socket is offline', async (t) => {
  const lonely = await connect(node, 'lonely')
  const room = ((await lonely.client.ack('dm.open', { userId: 'ghost' })).room as { id: string, name: string })
  t.equal(room.name, 'ghost', 'a user the server never saw is named by id')
  lonely.client.close()
  await lonely.client.closed
  const again = await connect(node, 'lonely')
  t.same(again.ready.data?.people, [{ id: 'ghost', name: null, avatar: null, status: 'offline', lastSeen: null }])
  again.client.close()
  await again.client.closed
  // Once the peer has been seen, the time comes with the rooms' read (no read of its own).
  const seen = new Date('2026-01-02T03:04:05.678Z')
  await scopeOf(node).chatUsers.touchLastSeen({ id: 'ghost', tenant: '' }, seen)
  const later = await connect(node, 'lonely')
  t.same(later.ready.data?.people, [{ id: 'ghost', name: null, avatar: null, status: 'offline', lastSeen: seen.toISOString() }], 'an offline peer with the time it was last seen')
  later.client.close()
})

t.test('session.ready is read in a fixed number of queries, whatever the number of rooms', async (t) => {
  const rooms = scopeOf(node).chatRooms
  const few = chatUser('few')
  const many = chatUser('many')
  const boss = chatUser('boss')
  await scopeOf(node).chatUsers.remember(few)
  await scopeOf(node).chatUsers.remember(many)
  await scopeOf(node).chatUsers.remember(boss)
  for (let index = 0; index < 2; index += 1) await rooms.create({ user: boss }, { name: `few ${index}`, type: 'GROUP', memberIds: [few.id] })
  const manyRooms: string[] = []
  for (let index = 0; index < 30; index += 1) {
    const room = await rooms.create({ user: boss }, { name: `many ${index}`, type: 'GROUP', memberIds: [many.id] })
    manyRooms.push(room.id)
    if (index % 3 === 0) await storeMessage(node, room.id, boss.id, `hello ${index}`)
  }
  for (let index = 0; index < 5; index += 1) await rooms.openDirect({ user: many }, `peer${index}`)
  await rooms.openDirect({ user: few }, 'peer0')
  await rooms.setFavorite({ user: many }, 'ROOM', manyRooms[0] as string, true)
  await rooms.setFavorite({ user: many }, 'USER', 'peer1', true)

  const queries = countQueries(node)
  let forFew: number
  let forMany: number
  try {
    const small = await queries.run(() => rooms.snapshot(few))
    forFew = queries.count
    queries.reset()
    const large = await queries.run(() => rooms.snapshot(many))
    forMany = queries.count
    t.equal(small.rooms.length, 3)
    t.equal(large.rooms.length, 35)
    t.equal(large.people.length, 5)
    t.equal(large.favorites.length, 2)
    t.equal(large.rooms.filter((room) => room.lastMessage !== null).length, 10)
  } finally {
    queries.stop()
  }
  t.equal(forMany, forFew, `the same number of queries for 35 rooms as for 3 (${forFew})`)
  t.equal(forFew, 1, 'one statement: the rooms, the favorites and the offline peers\' last seen together')

  // The socket's session.ready is that snapshot.
  const token = node.token('many', { name: 'MANY' })
  const { TestClient } = await import('./fixtures/ws-client.js')
  const { client, ready } = await TestClient.session(node.wsUrl, token)
  t.equal((ready.data?.rooms as unknown[]).length, 35)
  t.equal(scopeOf(node).chatHub.connectionsOf('many').size, 1)
  const subscribed = [...scopeOf(node).chatHub.connectionsOf('many')][0]?.rooms
  t.equal(subscribed?.size, 35, 'the socket is subscribed to every room')
  client.close()
  await client.closed
  await sleep(50)
  t.equal(manyRooms.filter((id) => scopeOf(node).chatHub.roomConnections(id).size > 0).length, 0, 'and unsubscribed when it closes')
})

// A message committed while a session starts, between the snapshot's read of the room and the moment
// this node hears the room: on one node, delivered before the socket joined; across nodes, published by
// the other node before this one's subscription took effect. Either way the client must learn of it at
// once (a push, or a session.ready lastSeq that makes it sync), not when a later message shows the gap.
onOneAndTwoNodes(t, 'a message sent while a session starts is pushed or covered by session.ready', async (t, nodeA, nodeB) => {
  const alice = await connect(nodeA, uid('race-a'))
  const bobId = uid('race-b')
  const roomId = await groupRoom(alice, [bobId])
  const hub = scopeOf(nodeB).chatHub
  const subscribe = hub.subscribe.bind(hub)
  let sent: Record<string, unknown> | null = null
  // The window, held open: the snapshot has been read, the socket has not joined the room yet.
  hub.subscribe = async (connection, room, knownSeq) => {
    if (room === roomId && sent === null) sent = (await alice.client.ack('message.send', { roomId, content: 'in the window' })).message as Record<string, unknown>
    return await subscribe(connection, room, knownSeq)
  }
  const bob = await connect(nodeB, bobId)
  hub.subscribe = subscribe
  t.ok(sent, 'the message was sent inside the window')
  const seq = (sent as unknown as { seq: number }).seq
  const readyRoom = (bob.ready.data?.rooms as Array<{ id: string, lastSeq: number }>).find((room) => room.id === roomId)
  const pushed = await bob.client.collect(1000, (frame) => frame.event === 'message.new' && frame.data?.roomId === roomId)
  t.ok((readyRoom?.lastSeq ?? 0) >= seq || pushed.some((frame) => frame.data?.seq === seq),
    `seq ${seq} is pushed or within session.ready's lastSeq (${readyRoom?.lastSeq})`)
  t.ok(pushed.length <= 1, 'and pushed at most once')
  alice.client.close()
  bob.client.close()
})
