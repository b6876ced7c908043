import t from 'tap'
import type { ChatClient, Message } from '../client/index.js'
import { startNode, type TestNode } from './fixtures/server.js'
import { clientFor, dropSockets, interceptReply, losePushes, nextState, record, TokenGate } from './fixtures/chat-client.js'
import { sleep, until } from './fixtures/timing.js'
import type { Teardown } from './fixtures/database.js'
import { uid } from './fixtures/chat.js'
import { storeMessage } from './fixtures/rooms.js'

const node = await startNode(t)

interface Pair {
  alice: ChatClient
  bob: ChatClient
  gate: TokenGate
  b: string
  roomId: string
}

/** Alice and Bob in a GROUP room; Bob's token comes through a gate the test can shut to keep him offline. */
async function pair (t: Teardown, on: TestNode = node): Promise<Pair> {
  const a = uid('alice')
  const b = uid('bob')
  const alice = clientFor(t, on, a)
  await alice.connect()
  const { room } = await alice.createRoom({ name: 'resume', type: 'GROUP', memberIds: [b] })
  const gate = new TokenGate((call) => on.token(b, { name: 'Bob' }, 3600 + call))
  const bob = clientFor(t, on, b, { token: gate.provider })
  await bob.connect()
  return { alice, bob, gate, b, roomId: room.id }
}

/** Cuts Bob's socket on the server and keeps him offline (his reconnect waits for the gate). */
async function takeOffline (on: TestNode, p: Pair): Promise<void> {
  p.gate.shut()
  const waiting = nextState(p.bob, (s) => s.state === 'connecting')
  dropSockets(on, p.b)
  await waiting
}

async function sendAll (client: ChatClient, roomId: string, contents: string[]): Promise<Message[]> {
  const sent: Message[] = []
  for (const content of contents) sent.push((await client.sendMessage(roomId, content)).message)
  return sent
}

t.test('after a reconnect, sync delivers exactly the missed events, in order, once', async (t) => {
  const p = await pair(t)
  const { alice, bob, roomId } = p
  const { room: quiet } = await alice.createRoom({ name: 'quiet', type: 'GROUP', memberIds: [p.b] })
  await until('bob knows the second room', () => bob.cursor(quiet.id) !== undefined)
  const news = record(bob, 'message.new')
  const updates = record(bob, 'message.updated')
  const reactions = record(bob, 'reaction.updated')
  const synced = record(bob, 'synced')

  const live = await sendAll(alice, roomId, ['one', 'two'])
  await until('bob gets the live messages', () => news.length === 2)
  await takeOffline(node, p)
  const missed = await sendAll(alice, roomId, ['three', 'four', 'five', 'six', 'seven'])
  await alice.editMessage(live[0]?.id as string, 'one (edited)')
  await alice.react(missed[0]?.id as string, '🎉')
  await sleep(100)
  t.equal(news.length, 2, 'nothing reaches bob while he is offline')

  p.gate.open()
  await until('bob resumed', () => synced.length === 1)
  t.same(news.map((e) => e.message.content), ['one', 'two', 'three', 'four', 'five', 'six', 'seven'], 'the missed messages, each once, in order')
  t.same(news.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7])
  t.same(updates.map((e) => e.message.content), ['one (edited)'], 'the missed edit')
  t.same(reactions.map((e) => [e.seq, e.reactions[0]?.emoji]), [[9, '🎉']], 'the missed reaction')
  t.same(synced[0]?.roomIds, [roomId], 'only the room that moved was synced')
  t.equal(bob.cursor(roomId), 9)

  const [after] = await sendAll(alice, roomId, ['eight'])
  await until('bob gets a live message again', () => news.length === 8)
  t.equal(news[7]?.message.id, after?.id)
  await sleep(100)
  t.equal(news.length, 8, 'no duplicates afterwards')
})

t.test('a gap in the pushes triggers sync, which pages through hasMore', async (t) => {
  const { alice, bob, b, roomId } = await pair(t)
  const news = record(bob, 'message.new')
  const synced = record(bob, 'synced')
  await sendAll(alice, roomId, ['first'])
  await until('bob gets the first', () => news.length === 1)
  // Pushes 2..421 never reach Bob's socket (the socket stays up): his next push shows a gap of 420.
  const restore = losePushes(node, b, (frame) => typeof frame.data?.seq === 'number' && frame.data.seq >= 2 && frame.data.seq <= 421)
  t.teardown(restore)
  const senderId = alice.userId as string
  for (let index = 1; index <= 420; index += 1) await storeMessage(node, roomId, senderId, `stored ${index}`)
  await sendAll(alice, roomId, ['after the gap'])
  await until('bob filled the gap', () => news.length === 422, { timeoutMs: 15000 })
  restore()
  t.same(news.map((e) => e.seq), Array.from({ length: 422 }, (_, index) => index + 1), 'every seq once, in order')
  t.equal(news[1]?.message.content, 'stored 1')
  t.equal(news[421]?.message.content, 'after the gap', 'the push that showed the gap comes after what it revealed')
  t.same(synced, [{ roomIds: [roomId] }], 'one sync round, three pages (200 + 200 + 20)')
  await sleep(100)
  t.equal(news.length, 422)
})

t.test('the client\'s own edits, reactions and deletions move its cursor: no sync for the seqs it did not get pushed', async (t) => {
  const { alice, bob, roomId } = await pair(t)
  const synced = record(alice, 'synced')
  const news = record(alice, 'message.new')
  const [mine] = await sendAll(alice, roomId, ['mine'])
  const id = mine?.id as string
  const edited = await alice.editMessage(id, 'mine, edited')
  const reacted = await alice.react(id, '👍')
  const deleted = await alice.deleteMessage(id)
  t.same([edited.seq, reacted.seq, deleted.seq], [2, 3, 4], 'each ack says where its change landed')
  t.equal(alice.cursor(roomId), 4, 'and the cursor moved over them')
  await sendAll(bob, roomId, ['from bob'])
  await until('alice gets bob\'s message', () => news.length === 1)
  t.equal(news[0]?.seq, 5)
  t.equal(alice.cursor(roomId), 5)
  await sleep(100)
  t.same(synced, [], 'no gap seen, so no sync')
})

t.test('a cursor beyond the retained events gets resync instead of events', async (t) => {
  const short = await startNode(t, { options: { eventRetention: 3 } })
  const p = await pair(t, short)
  const news = record(p.bob, 'message.new')
  const resyncs = record(p.bob, 'resync')
  await takeOffline(short, p)
  await sendAll(p.alice, p.roomId, ['a', 'b', 'c', 'd', 'e', 'f'])
  p.gate.open()
  await until('bob was told to reload', () => resyncs.length === 1)
  t.same(resyncs, [{ roomId: p.roomId, lastSeq: 6 }])
  t.equal(news.length, 0, 'no partial replay')
  t.equal(p.bob.cursor(p.roomId), 6)
  const page = await p.bob.history(p.roomId, { limit: 10 })
  t.same(page.messages.map((m) => m.content), ['a', 'b', 'c', 'd', 'e', 'f'], 'history reloads the room')
  await sendAll(p.alice, p.roomId, ['g'])
  await until('live again', () => news.length === 1)
  t.equal(news[0]?.seq, 7)
})

t.test('sends made while offline wait in the outbox and are sent once after the reconnect', async (t) => {
  const p = await pair(t)
  const { alice, bob, roomId } = p
  const aliceNews = record(alice, 'message.new')
  await takeOffline(node, p)
  const first = bob.sendMessage(roomId, 'written offline 1')
  const second = bob.sendMessage(roomId, 'written offline 2')
  t.equal(bob.pendingSends, 2)
  await sleep(100)
  t.equal(aliceNews.length, 0)
  p.gate.open()
  const [one, two] = await Promise.all([first, second])
  t.same([one.message.seq, two.message.seq], [1, 2], 'sent in the order written')
  t.equal(bob.pendingSends, 0)
  await until('alice gets both', () => aliceNews.length === 2)
  await sleep(150)
  t.same(aliceNews.map((e) => e.message.content), ['written offline 1', 'written offline 2'], 'each exactly once')
  const page = await alice.history(roomId)
  t.same(page.messages.map((m) => m.content), ['written offline 1', 'written offline 2'], 'stored once each')
})

t.test('a send whose ack was lost with the socket resolves with the stored original, without a duplicate', async (t) => {
  const p = await pair(t)
  const { alice, bob, roomId } = p
  const aliceNews = record(alice, 'message.new')
  const bobStates = record(bob, 'state')
  const cut = interceptReply(node, p.b, 'message.send', 'cut')
  const sending = bob.sendMessage(roomId, 'cut off before the ack')
  await cut
  const { message } = await sending
  t.equal(message.content, 'cut off before the ack')
  t.ok(bobStates.some((s) => s.state === 'closed' && s.willReconnect === true), 'the socket really dropped')
  await until('alice got it', () => aliceNews.length >= 1)
  await sleep(150)
  t.same(aliceNews.map((e) => e.message.id), [message.id], 'alice got it once')
  const page = await alice.history(roomId)
  t.same(page.messages.map((m) => m.id), [message.id], 'stored once')

  // A retry with the same clientMsgId, even from another session of the sender, gets the original back.
  const bob2 = clientFor(t, node, p.b)
  await bob2.connect()
  const retried = await bob2.sendMessage(roomId, 'cut off before the ack', { clientMsgId: message.clientMsgId as string })
  t.equal(retried.message.id, message.id, 'the server returns the original')
  t.same((await alice.history(roomId)).messages.filter((m) => m.content === 'cut off before the ack').map((m) => m.id), [message.id])
})
