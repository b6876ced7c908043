import t from 'tap'
import { TestClient } from './fixtures/ws-client.js'
import { connect, groupRoom, uid } from './fixtures/chat.js'
import { rest } from './fixtures/rooms.js'
import { onOneAndTwoNodes, startNode } from './fixtures/server.js'
import { clientFor } from './fixtures/chat-client.js'

// Read state (protocol 11.6, issue 24): a send moves the sender's own mark; members' marks are listed
// (so "seen by" survives a reconnect); mentionCount per room and unreadTotal in session.ready, kept
// right as messages are read and deleted. On one node and across two.

interface Summary { id: string, lastReadSeq: number, unreadCount: number, mentionCount: number }

onOneAndTwoNodes(t, 'a send moves the sender\'s mark; members\' marks are listed', async (t, nodeA, nodeB) => {
  const alice = await connect(nodeA, uid('alice'))
  const bob = await connect(nodeB, uid('bob'))
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = await groupRoom(alice, [bob.id])
  const first = await alice.client.ack('message.send', { roomId, content: 'one' }) as { message: { seq: number } }
  const second = await rest(nodeA, alice.token, 'POST', `/api/rooms/${roomId}/messages`, { content: 'two' })
  const lastSeq = (second.body as { message: { seq: number } }).message.seq
  t.ok(lastSeq > first.message.seq)
  const mine = ((await alice.client.ack('room.list', {})) as { rooms: Summary[] }).rooms.find((room) => room.id === roomId)
  t.same([mine?.lastReadSeq, mine?.unreadCount], [lastSeq, 0], 'alice\'s own sends (socket and REST) moved her mark')

  await bob.client.ack('message.read', { roomId, seq: first.message.seq })
  const members = ((await bob.client.ack('room.members', { roomId })) as { members: Array<{ user: { id: string }, lastReadSeq: number }> }).members
  const marks = Object.fromEntries(members.map((member) => [member.user.id, member.lastReadSeq]))
  t.same(marks, { [alice.id]: lastSeq, [bob.id]: first.message.seq }, 'room.members lists each member\'s mark ("seen by")')
  const got = await rest(nodeB, bob.token, 'GET', `/api/rooms/${roomId}`)
  t.same(Object.fromEntries((got.body as { members: Array<{ user: { id: string }, lastReadSeq: number }> }).members.map((member) => [member.user.id, member.lastReadSeq])), marks, 'GET /api/rooms/:roomId too')
})

onOneAndTwoNodes(t, 'mentionCount per room and unreadTotal in session.ready follow reads and deletes', async (t, nodeA, nodeB) => {
  const alice = await connect(nodeA, uid('alice'))
  const bobId = uid('bob')
  t.teardown(() => { alice.client.close() })
  const roomId = await groupRoom(alice, [bobId])
  const other = await groupRoom(alice, [bobId])
  await alice.client.ack('message.send', { roomId, content: 'plain' })
  const mention = await alice.client.ack('message.send', { roomId, content: '@bob', mentions: [bobId] }) as { message: { id: string, seq: number } }
  await alice.client.ack('message.send', { roomId, content: '@everyone', mentions: ['*'] })
  await alice.client.ack('message.send', { roomId: other, content: 'elsewhere' })

  const session = async (): Promise<{ rooms: Summary[], unreadTotal: number, client: TestClient }> => {
    const { client, ready } = await TestClient.session(nodeB.wsUrl, nodeB.token(bobId))
    t.teardown(() => client.close())
    return { ...(ready.data as { rooms: Summary[], unreadTotal: number }), client }
  }
  const first = await session()
  const room = first.rooms.find((one) => one.id === roomId)
  t.same([room?.unreadCount, room?.mentionCount], [3, 2], 'three unread, two mention bob (by name and by "*")')
  t.equal(first.unreadTotal, 4, 'unreadTotal over both rooms')

  await alice.client.ack('message.delete', { messageId: mention.message.id })
  const afterDelete = (await session()).rooms.find((one) => one.id === roomId)
  t.same([afterDelete?.unreadCount, afterDelete?.mentionCount], [2, 1], 'a deleted mention no longer counts')

  const read = await first.client.ack('message.read', { roomId, seq: 1000 }) as { mentionCount: number, unreadCount: number }
  t.same([read.unreadCount, read.mentionCount], [0, 0], 'reading clears both')
  t.equal((await session()).unreadTotal, 1, 'the other room\'s message is still unread')
})

t.test('the client keeps "seen by" from room.members, receipts and its own sends, across a reconnect', async (t) => {
  const node = await startNode(t)
  const aliceId = uid('alice')
  const bobId = uid('bob')
  const alice = clientFor(t, node, aliceId)
  const bob = clientFor(t, node, bobId)
  await alice.connect()
  await bob.connect()
  const { room } = await alice.createRoom({ name: 'seen', type: 'GROUP', memberIds: [bobId] })
  const { message } = await alice.sendMessage(room.id, 'did you see this?')
  t.same(alice.seenBy(room.id, message.seq), [aliceId], 'the sender has seen her own message')
  const receipt = new Promise<void>((resolve) => { alice.on('receipt.read', () => resolve()) })
  await bob.markRead(room.id, message.seq)
  await receipt
  t.same(alice.seenBy(room.id, message.seq).sort(), [aliceId, bobId].sort(), 'bob\'s receipt adds him')

  // A fresh client (a reload) rebuilds it from room.members.
  const again = clientFor(t, node, aliceId)
  await again.connect()
  t.same(again.seenBy(room.id, message.seq), [], 'nothing known before the members are listed')
  await again.members(room.id)
  t.same(again.seenBy(room.id, message.seq).sort(), [aliceId, bobId].sort(), 'room.members brings every mark back')
  t.same(again.seenBy(room.id, message.seq + 1), [], 'nobody has read past the last message')
})
