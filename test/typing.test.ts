import t from 'tap'
import { randomUUID } from 'node:crypto'
import { sharedServicesSkip, startCluster, startNode } from './fixtures/server.js'
import { aliceTypingToBob, typingOf } from './fixtures/presence.js'
import { connect, disconnect, groupRoom, uid } from './fixtures/chat.js'
import { sleep } from './fixtures/timing.js'

const node = await startNode(t)

t.test('typing reaches the room but not the sending socket', async (t) => {
  const alice = await connect(node, uid('alice'))
  const bob = await connect(node, uid('bob'))
  const roomId = await groupRoom(alice, [bob.id])
  const alicePhone = await connect(node, alice.id)

  t.same(await alice.client.ack('typing.start', { roomId }), {})
  t.same((await bob.client.next(typingOf(roomId, alice.id))).data, { roomId, userId: alice.id, isTyping: true })
  await alicePhone.client.next(typingOf(roomId, alice.id, true))
  t.same(await alice.client.ack('typing.stop', { roomId }), {})
  t.same((await bob.client.next(typingOf(roomId, alice.id))).data, { roomId, userId: alice.id, isTyping: false })
  await alicePhone.client.next(typingOf(roomId, alice.id, false))
  t.same(await alice.client.collect(200, (frame) => frame.event === 'typing'), [], 'the sender\'s socket hears nothing of its own typing')

  t.same(await alice.client.ack('typing.stop', { roomId }), {}, 'a stop without a start is acked')
  t.same(await bob.client.collect(200, typingOf(roomId, alice.id)), [], 'and forwarded to nobody')
  await Promise.all([disconnect(alice), disconnect(alicePhone), disconnect(bob)])
})

t.test('at most one forwarded start per user and room every 2 s; dropped starts are still acked', async (t) => {
  const alice = await connect(node, uid('alice'))
  const bob = await connect(node, uid('bob'))
  const roomId = await groupRoom(alice, [bob.id])
  const started = Date.now()
  t.same(await alice.client.ack('typing.start', { roomId }), {})
  await bob.client.next(typingOf(roomId, alice.id, true))
  t.same(await alice.client.ack('typing.start', { roomId }), {}, 'a start inside the window is acked')
  t.same(await alice.client.ack('typing.start', { roomId }), {})
  // A delayed start would arrive when the window ends (2 s): nothing may arrive before the next start.
  t.same(await bob.client.collect(Math.max(0, 2300 - (Date.now() - started)), typingOf(roomId, alice.id)), [], 'dropped, not delayed')
  t.same(await alice.client.ack('typing.start', { roomId }), {})
  await t.resolves(bob.client.next(typingOf(roomId, alice.id, true), 1000), 'a start after the window is forwarded')

  // A stop does not reopen the window.
  await alice.client.ack('typing.stop', { roomId })
  await bob.client.next(typingOf(roomId, alice.id, false))
  await alice.client.ack('typing.start', { roomId })
  t.same(await bob.client.collect(300, typingOf(roomId, alice.id)), [], 'a start right after a stop is inside the window')
  await Promise.all([disconnect(alice), disconnect(bob)])
})

t.test('a start not renewed within 6 s ends with isTyping false; renewals keep it going', async (t) => {
  const { alice, bob, roomId } = await aliceTypingToBob(node)
  // A renewal at 3 s is outside the 2 s window, so it is forwarded again, and moves the expiry.
  await sleep(3000)
  const renewedAt = Date.now()
  await alice.client.ack('typing.start', { roomId })
  await bob.client.next(typingOf(roomId, alice.id, true))
  const ended = await bob.client.next(typingOf(roomId, alice.id, false), 8000)
  const elapsed = Date.now() - renewedAt
  t.same(ended.data, { roomId, userId: alice.id, isTyping: false })
  t.ok(elapsed >= 6000, `not before 6 s after the last start (${elapsed} ms)`)
  t.ok(elapsed < 7500, 'and soon after')
  t.same(await alice.client.collect(100, (frame) => frame.event === 'typing'), [], 'the expiry is not sent to the typing socket')
  await Promise.all([disconnect(alice), disconnect(bob)])
})

t.test('a socket that closes ends its typing', async (t) => {
  const { alice, bob, roomId } = await aliceTypingToBob(node)
  const closedAt = Date.now()
  await disconnect(alice)
  // Waited for past the 6 s expiry, so that a stop sent only at the expiry fails the assertion below.
  await bob.client.next(typingOf(roomId, alice.id, false), 8000)
  const elapsed = Date.now() - closedAt
  t.ok(elapsed < 2000, `at once, not at the 6 s expiry (${elapsed} ms)`)
  await disconnect(bob)
})

t.test('typing needs membership and a valid room id', async (t) => {
  const alice = await connect(node, uid('alice'))
  const mallory = await connect(node, uid('mallory'))
  const roomId = await groupRoom(alice, [])
  let reply = await mallory.client.request('typing.start', { roomId })
  t.equal(reply.error?.code, 'NOT_MEMBER')
  reply = await mallory.client.request('typing.stop', { roomId })
  t.equal(reply.error?.code, 'NOT_MEMBER')
  reply = await mallory.client.request('typing.start', { roomId: randomUUID() })
  t.equal(reply.error?.code, 'NOT_FOUND')
  reply = await mallory.client.request('typing.start', {})
  t.equal(reply.error?.code, 'VALIDATION_FAILED')
  t.match(reply.error?.details, [{ field: 'roomId' }])
  reply = await mallory.client.request('typing.start', { roomId: 'not-a-room-id' })
  t.equal(reply.error?.code, 'VALIDATION_FAILED')
  t.same(await alice.client.collect(200, (frame) => frame.event === 'typing'), [], 'refused starts are not forwarded')
  await Promise.all([disconnect(alice), disconnect(mallory)])
})

t.test('across nodes: forwarded to the other node, one window for both', { skip: sharedServicesSkip() }, async (t) => {
  const [a, b] = await startCluster(t, 2)
  if (a === undefined || b === undefined) throw new Error('two nodes expected')
  const alice = await connect(a, uid('alice'))
  const bobId = uid('bob')
  const roomId = await groupRoom(alice, [bobId])
  // Connected after the room exists: their sessions start subscribed to it.
  const bob = await connect(b, bobId)
  const aliceOnB = await connect(b, alice.id)
  await alice.client.ack('typing.start', { roomId })
  await bob.client.next(typingOf(roomId, alice.id, true))
  await aliceOnB.client.next(typingOf(roomId, alice.id, true))
  await aliceOnB.client.ack('typing.start', { roomId })
  t.same(await bob.client.collect(500, typingOf(roomId, alice.id)), [], 'a start from the other node inside the window is dropped')
  await disconnect(alice)
  await bob.client.next(typingOf(roomId, alice.id, false), 2000)
  await Promise.all([disconnect(aliceOnB), disconnect(bob)])
})
