import t from 'tap'
import { connect, groupRoom, messagesOf, uid } from './fixtures/chat.js'
import { rest } from './fixtures/rooms.js'
import { onOneAndTwoNodes } from './fixtures/server.js'

// Threads (protocol 11.6, issue 24): a reply names a top-level message of its room; it takes the room's
// next seq like any message; the main timeline leaves replies out, a thread page holds only them, the root
// reads with its thread summary, and sync replays everything in seq order.

interface Msg { id: string, seq: number, content: string, threadRootId?: string, thread?: { replyCount: number, lastReplyAt: string, participantIds: string[] } }

onOneAndTwoNodes(t, 'replies in a thread: their own page, the root\'s summary, the main timeline without them', async (t, nodeA, nodeB) => {
  const alice = await connect(nodeA, uid('alice'))
  const bob = await connect(nodeB, uid('bob'))
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = await groupRoom(alice, [bob.id])
  const root = (await alice.client.ack('message.send', { roomId, content: 'the question' }) as { message: Msg }).message
  await messagesOf(bob.client, roomId, 1)
  const reply = (await bob.client.ack('message.send', { roomId, content: 'an answer', threadRootId: root.id }) as { message: Msg }).message
  t.same([reply.threadRootId, reply.seq], [root.id, root.seq + 1], 'the reply names its root and takes the room\'s next seq')
  const pushed = (await messagesOf(alice.client, roomId, 1))[0]?.data?.message as Msg
  t.equal(pushed.threadRootId, root.id, 'pushed to the room with its root')
  const byRest = await rest(nodeA, alice.token, 'POST', `/api/rooms/${roomId}/messages`, { content: 'thanks', threadRootId: root.id })
  t.equal(byRest.status, 201, 'a thread reply over REST')
  await alice.client.ack('message.send', { roomId, content: 'back in the room' })

  const main = (await bob.client.ack('history.fetch', { roomId }) as { messages: Msg[] }).messages
  t.same(main.map((message) => message.content), ['the question', 'back in the room'], 'the main timeline leaves the replies out')
  t.same([main[0]?.thread?.replyCount, main[0]?.thread?.participantIds], [2, [bob.id, alice.id]], 'the root carries its thread summary')
  const thread = await rest(nodeB, bob.token, 'GET', `/api/rooms/${roomId}/messages?threadRootId=${root.id}`)
  t.same((thread.body as { messages: Msg[] }).messages.map((message) => message.content), ['an answer', 'thanks'], 'the thread\'s page (REST)')
  const paged = (await bob.client.ack('history.fetch', { roomId, threadRootId: root.id, limit: 1 }) as { messages: Msg[], hasMore: boolean })
  t.same([paged.messages.map((message) => message.content), paged.hasMore], [['thanks'], true], 'paged like any history')
  const synced = await bob.client.ack('sync', { cursors: [{ roomId, seq: 0 }] }) as { rooms: Array<{ events: Array<{ event: string, data: { seq: number } }> }> }
  const seqs = synced.rooms[0]?.events.map((event) => event.data.seq) ?? []
  t.same(seqs, [...seqs].sort((a, b) => a - b), 'sync replays every event, replies included, in seq order')
  t.equal(synced.rooms[0]?.events.filter((event) => event.event === 'message.new').length, 4, 'all four messages')

  t.equal((await bob.client.request('message.send', { roomId, content: 'nested', threadRootId: reply.id })).error?.code, 'NOT_FOUND', 'a reply is not a root')
  const other = await groupRoom(alice, [])
  t.equal((await alice.client.request('message.send', { roomId: other, content: 'elsewhere', threadRootId: root.id })).error?.code, 'NOT_FOUND', 'nor a message of another room')
  t.equal((await alice.client.request('message.send', { roomId, content: 'x', threadRootId: 'not-a-uuid' })).error?.code, 'VALIDATION_FAILED', 'a bad id is refused')
  t.equal(((await bob.client.ack('history.fetch', { roomId })) as { messages: Msg[] }).messages.length, 2, 'nothing was written for the refused replies')
})
