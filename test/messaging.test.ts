import t from 'tap'
import { startNode } from './fixtures/server.js'
import { connect, groupRoom, messagesOf, seqOf } from './fixtures/chat.js'
import { TestClient } from './fixtures/ws-client.js'

const node = await startNode(t, { options: { rateLimits: { send: { rate: 10000, burst: 10000 }, other: { rate: 10000, burst: 10000 } } } })

t.test('3 concurrent senders x 50 messages: every receiver sees seq 1..150 in order', async (t) => {
  const [a, b, c, reader] = await Promise.all(['s1', 's2', 's3', 'reader1'].map((id) => connect(node, id)))
  const roomId = await groupRoom(a!, ['s2', 's3', 'reader1'])
  await Promise.all([b!, c!, reader!].map((p) => p.client.next((frame) => frame.event === 'room.added')))
  const sends = [a!, b!, c!].flatMap((sender) => Array.from({ length: 50 }, (_, index) => sender.client.ack('message.send', { roomId, content: `${sender.id} #${index}` })))
  const acks = await Promise.all(sends)
  const ackSeqs = acks.map((ack) => (ack.message as { seq: number }).seq).sort((x, y) => x - y)
  t.same(ackSeqs, Array.from({ length: 150 }, (_, index) => index + 1), 'acks carry seqs 1..150, each once')
  const seen = (await messagesOf(reader!.client, roomId, 150)).map(seqOf)
  t.same(seen, Array.from({ length: 150 }, (_, index) => index + 1), 'the reader got them in seq order')
  for (const sender of [a!, b!, c!]) {
    const pushed = (await messagesOf(sender.client, roomId, 100)).map(seqOf)
    t.ok(pushed.every((seq, index) => index === 0 || seq > (pushed[index - 1] as number)), `${sender.id} sees strictly increasing seqs`)
    const echoes = pushed.filter((seq) => acks.some((ack) => (ack.message as { seq: number, sender: { id: string } }).seq === seq && (ack.message as { sender: { id: string } }).sender.id === sender.id))
    t.same(echoes, [], `${sender.id} gets no echo of its own sends`)
  }
  for (const p of [a!, b!, c!, reader!]) p.client.close()
})

t.test('a client that misses 20 messages gets exactly those through sync', async (t) => {
  const alice = await connect(node, 'alice')
  const bob = await connect(node, 'bob')
  const roomId = await groupRoom(alice, ['bob'])
  await bob.client.next((frame) => frame.event === 'room.added')
  await alice.client.ack('message.send', { roomId, content: 'before' })
  const [before] = await messagesOf(bob.client, roomId, 1)
  const cursor = seqOf(before!)
  bob.client.close()
  await bob.client.closed
  for (let index = 0; index < 20; index += 1) await alice.client.ack('message.send', { roomId, content: `missed ${index}` })
  const back = await connect(node, 'bob')
  const reply = await back.client.ack('sync', { cursors: [{ roomId, seq: cursor }] })
  const [room] = reply.rooms as Array<{ events: Array<{ event: string, data: { seq: number, message: { content: string } } }>, hasMore: boolean, lastSeq: number }>
  t.equal(room?.events.length, 20)
  t.same(room?.events.map((event) => event.data.seq), Array.from({ length: 20 }, (_, index) => cursor + 1 + index))
  t.same(room?.events.map((event) => event.data.message.content), Array.from({ length: 20 }, (_, index) => `missed ${index}`))
  t.equal(room?.hasMore, false)
  t.equal(room?.lastSeq, cursor + 20)
  const again = await back.client.ack('sync', { cursors: [{ roomId, seq: cursor + 20 }] })
  t.same((again.rooms as Array<{ events: unknown[] }>)[0]?.events, [], 'nothing after the last seq')
  const ahead = await back.client.ack('sync', { cursors: [{ roomId, seq: cursor + 999 }] })
  t.equal((ahead.rooms as Array<{ resync?: boolean }>)[0]?.resync, true, 'a cursor from the future asks for a resync')
  alice.client.close()
  back.client.close()
})

t.test('concurrent retries with one clientMsgId: one message, one broadcast', async (t) => {
  const alice = await connect(node, 'retry-a')
  const alice2 = await TestClient.session(node.wsUrl, alice.token)
  const bob = await connect(node, 'retry-b')
  const roomId = await groupRoom(alice, ['retry-b'])
  await bob.client.next((frame) => frame.event === 'room.added')
  const attempts = await Promise.all([
    ...Array.from({ length: 5 }, () => alice.client.ack('message.send', { roomId, content: 'once', clientMsgId: 'cm-1' })),
    ...Array.from({ length: 5 }, () => alice2.client.ack('message.send', { roomId, content: 'once', clientMsgId: 'cm-1' })),
  ])
  const ids = new Set(attempts.map((ack) => (ack.message as { id: string }).id))
  t.equal(ids.size, 1, 'every retry returns the same message')
  const later = await alice.client.ack('message.send', { roomId, content: 'once again', clientMsgId: 'cm-1' })
  t.equal((later.message as { id: string }).id, [...ids][0], 'also a retry long after')
  const pushes = await bob.client.collect(300, (frame) => frame.event === 'message.new')
  t.equal(pushes.length, 1, 'one broadcast')
  const history = await bob.client.ack('history.fetch', { roomId })
  t.equal((history.messages as unknown[]).length, 1, 'one row')
  const other = await bob.client.ack('message.send', { roomId, content: 'same id, other sender', clientMsgId: 'cm-1' })
  t.not((other.message as { id: string }).id, [...ids][0], 'clientMsgId is per sender')
  for (const client of [alice.client, alice2.client, bob.client]) client.close()
})

t.test('permissions and validation', async (t) => {
  const owner = await connect(node, 'perm-owner')
  const member = await connect(node, 'perm-member')
  const mod = await connect(node, 'perm-mod')
  const outsider = await connect(node, 'perm-outsider')
  const roomId = await groupRoom(owner, ['perm-member', 'perm-mod'])
  await owner.client.ack('room.member.role', { roomId, userId: 'perm-mod', role: 'MODERATOR' })
  const sent = await member.client.ack('message.send', { roomId, content: 'mine' })
  const messageId = (sent.message as { id: string }).id

  t.equal((await outsider.client.request('message.send', { roomId, content: 'hi' })).error?.code, 'NOT_MEMBER')
  t.equal((await outsider.client.request('history.fetch', { roomId })).error?.code, 'NOT_MEMBER')
  t.equal((await outsider.client.request('message.edit', { messageId, content: 'x' })).error?.code, 'NOT_FOUND', 'messages of other rooms are invisible')
  t.equal((await owner.client.request('message.edit', { messageId, content: 'not yours' })).error?.code, 'FORBIDDEN', 'only the sender edits')
  t.equal((await member.client.request('message.send', { roomId, content: 'sys', type: 'SYSTEM' })).error?.code, 'FORBIDDEN')
  t.equal((await member.client.request('message.send', { roomId, content: '' })).error?.code, 'VALIDATION_FAILED')
  t.equal((await member.client.request('message.send', { roomId, content: '   \n ' })).error?.code, 'VALIDATION_FAILED', 'whitespace only')
  t.equal((await member.client.request('message.send', { roomId, content: 'x'.repeat(4001) })).error?.code, 'VALIDATION_FAILED')
  t.equal((await member.client.request('message.send', { roomId, content: 'x'.repeat(4000) })).event, 'ack', '4000 is fine')
  t.equal((await member.client.request('message.send', { roomId, content: 'pic', type: 'IMAGE' })).error?.code, 'VALIDATION_FAILED', 'IMAGE needs attachments')
  const image = await member.client.ack('message.send', { roomId, content: 'pic', type: 'IMAGE', attachments: [{ url: 'https://cdn.example/p.png', name: 'p.png', size: 10, mimeType: 'image/png' }] })
  t.equal((image.message as { attachments: unknown[] }).attachments.length, 1)
  t.equal((await member.client.request('message.send', { roomId: 'not-a-uuid', content: 'x' })).error?.code, 'VALIDATION_FAILED')
  t.equal((await member.client.request('message.send', { roomId: '00000000-0000-4000-8000-000000000000', content: 'x' })).error?.code, 'NOT_FOUND')

  const ownerMessage = await owner.client.ack('message.send', { roomId, content: 'owner says' })
  t.equal((await member.client.request('message.delete', { messageId: (ownerMessage.message as { id: string }).id })).error?.code, 'FORBIDDEN', 'a MEMBER deletes only own messages')
  t.equal((await mod.client.request('message.delete', { messageId })).event, 'ack', 'a MODERATOR deletes others\' messages')
  const edited = await member.client.request('message.edit', { messageId, content: 'too late' })
  t.equal(edited.error?.code, 'NOT_FOUND', 'a deleted message cannot be edited')
  for (const p of [owner, member, mod, outsider]) p.client.close()
})

t.test('edit, delete, replies and reactions push events with the next seqs', async (t) => {
  const alice = await connect(node, 'ev-a')
  const bob = await connect(node, 'ev-b')
  const roomId = await groupRoom(alice, ['ev-b'])
  await bob.client.next((frame) => frame.event === 'room.added')
  const first = (await alice.client.ack('message.send', { roomId, content: 'first' })).message as { id: string, seq: number }
  const reply = (await bob.client.ack('message.send', { roomId, content: 'answer', replyToId: first.id })).message as { replyTo: unknown, seq: number }
  t.same(reply.replyTo, { id: first.id, seq: first.seq, senderId: 'ev-a', excerpt: 'first' })
  t.equal((await bob.client.request('message.send', { roomId, content: 'x', replyToId: '00000000-0000-4000-8000-000000000000' })).error?.code, 'NOT_FOUND')

  const editAck = await alice.client.ack('message.edit', { messageId: first.id, content: 'first, edited' })
  const edited = editAck.message as { content: string, editedAt?: string, seq: number }
  t.equal(edited.content, 'first, edited')
  t.ok(edited.editedAt)
  t.equal(edited.seq, first.seq, 'a message keeps its seq when edited')
  const update = await bob.client.next((frame) => frame.event === 'message.updated')
  t.equal(update.data?.seq, reply.seq + 1, 'the edit takes the next room seq')
  t.same([editAck.roomId, editAck.seq], [roomId, update.data?.seq], 'the editor\'s ack says where the edit landed (it gets no push)')

  const reactions = await bob.client.ack('reaction.add', { messageId: first.id, emoji: '👍' })
  t.same(reactions.reactions, [{ emoji: '👍', count: 1, userIds: ['ev-b'] }])
  t.same([reactions.roomId, reactions.seq], [roomId, 4], 'a reaction\'s ack says where it landed')
  const added = await alice.client.ack('reaction.add', { messageId: first.id, emoji: '👍' })
  const pushed = await bob.client.next((frame) => frame.event === 'reaction.updated')
  t.same(pushed.data?.reactions, [{ emoji: '👍', count: 2, userIds: ['ev-b', 'ev-a'] }])
  t.equal(added.seq, pushed.data?.seq)
  const same = await alice.client.ack('reaction.add', { messageId: first.id, emoji: '👍' })
  t.equal((same.reactions as Array<{ count: number }>)[0]?.count, 2, 'reacting twice changes nothing')
  t.same([same.roomId, same.seq], [undefined, undefined], 'and writes no event, so the ack names none')
  t.same((await bob.client.ack('reaction.remove', { messageId: first.id, emoji: '👍' })).seq, 6)

  const deleteAck = await alice.client.ack('message.delete', { messageId: first.id })
  const deleted = await bob.client.next((frame) => frame.event === 'message.deleted')
  t.equal(deleted.data?.messageId, first.id)
  t.same([deleteAck.roomId, deleteAck.seq], [roomId, deleted.data?.seq], 'a deletion\'s ack says where it landed')
  const history = await bob.client.ack('history.fetch', { roomId })
  const kept = (history.messages as Array<{ id: string, seq: number, content: string, deletedAt?: string }>).find((message) => message.id === first.id)
  t.equal(kept?.seq, first.seq, 'a deleted message keeps its place')
  t.equal(kept?.content, '')
  t.ok(kept?.deletedAt)

  const sync = await bob.client.ack('sync', { cursors: [{ roomId, seq: 0 }] })
  const events = (sync.rooms as Array<{ events: Array<{ event: string, data: { seq: number } }> }>)[0]?.events ?? []
  t.same(events.map((event) => event.event), ['message.new', 'message.new', 'message.updated', 'reaction.updated', 'reaction.updated', 'reaction.updated', 'message.deleted'])
  t.same(events.map((event) => event.data.seq), [1, 2, 3, 4, 5, 6, 7], 'gapless')
  // A message.new entry is the messages row itself, so it replays the message as it is now.
  const replayed = events.slice(0, 2).map((event) => (event.data as unknown as { message: { id: string, seq: number, content: string, deletedAt?: string, replyTo?: unknown } }).message)
  t.equal(replayed[0]?.id, first.id)
  t.equal(replayed[0]?.content, '', 'the deleted message replays without its content')
  t.ok(replayed[0]?.deletedAt, 'and with deletedAt')
  t.same(replayed[1]?.replyTo, { id: first.id, seq: first.seq, senderId: 'ev-a', excerpt: '' }, 'a reply replays with the summary of what it answers as that is now (deleted)')
  t.equal(replayed[1]?.seq, 2)
  alice.client.close()
  bob.client.close()
})

t.test('history paging over 120 messages', async (t) => {
  const alice = await connect(node, 'hist-a')
  const roomId = await groupRoom(alice, [])
  const user = { id: 'hist-a', tenant: '', name: 'Hist', avatar: null, roles: [], permissions: [], exp: null }
  await Promise.all(Array.from({ length: 120 }, (_, index) => node.app.chat.scope.chatMessaging.send(user, { roomId, content: `m${index + 1}` })))
  const latest = await alice.client.ack('history.fetch', { roomId })
  const seqs = (page: Record<string, unknown>): number[] => (page.messages as Array<{ seq: number }>).map((message) => message.seq)
  t.same(seqs(latest), Array.from({ length: 50 }, (_, index) => 71 + index), 'latest 50, ascending')
  t.equal(latest.hasMore, true)
  const older = await alice.client.ack('history.fetch', { roomId, before: 71, limit: 60 })
  t.same(seqs(older), Array.from({ length: 60 }, (_, index) => 11 + index))
  t.equal(older.hasMore, true)
  const oldest = await alice.client.ack('history.fetch', { roomId, before: 11, limit: 100 })
  t.same(seqs(oldest), Array.from({ length: 10 }, (_, index) => 1 + index))
  t.equal(oldest.hasMore, false)
  const after = await alice.client.ack('history.fetch', { roomId, after: 100, limit: 15 })
  t.same(seqs(after), Array.from({ length: 15 }, (_, index) => 101 + index))
  t.equal(after.hasMore, true)
  const tail = await alice.client.ack('history.fetch', { roomId, after: 115 })
  t.same(seqs(tail), [116, 117, 118, 119, 120])
  t.equal(tail.hasMore, false)
  t.equal((await alice.client.request('history.fetch', { roomId, limit: 101 })).error?.code, 'VALIDATION_FAILED')
  const paged = await alice.client.ack('sync', { cursors: [{ roomId, seq: 0 }] })
  const room = (paged.rooms as Array<{ events: Array<{ data: { seq: number } }>, hasMore: boolean }>)[0]
  t.equal(room?.events.length, 120)
  t.equal(room?.hasMore, false)
  alice.client.close()
})

t.test('read marks, unread counts, receipts', async (t) => {
  const alice = await connect(node, 'read-a')
  const bob = await connect(node, 'read-b')
  const bob2 = await TestClient.session(node.wsUrl, bob.token)
  const roomId = await groupRoom(alice, ['read-b'])
  await bob.client.next((frame) => frame.event === 'room.added')
  for (let index = 0; index < 5; index += 1) await alice.client.ack('message.send', { roomId, content: `n${index}`, ...(index === 4 ? { mentions: ['read-b'] } : {}) })
  const read = await bob.client.ack('message.read', { roomId, seq: 3 })
  t.same(read, { lastReadSeq: 3, unreadCount: 2, mentionCount: 1 }, 'two unread after the mark, one of them mentions bob')
  const receipt = await alice.client.next((frame) => frame.event === 'receipt.read')
  t.same(receipt.data, { roomId, userId: 'read-b', seq: 3 })
  const unread = await bob2.client.next((frame) => frame.event === 'unread.updated')
  t.same(unread.data, { roomId, lastReadSeq: 3, unreadCount: 2, mentionCount: 1 }, 'the user\'s other sockets learn it')
  const back = await bob.client.ack('message.read', { roomId, seq: 1 })
  t.same(back, { lastReadSeq: 3, unreadCount: 2, mentionCount: 1 }, 'never backwards')
  // Sending reads the room up to the send (protocol 11.6): bob's mark moves to his own message.
  await bob.client.ack('message.send', { roomId, content: 'my own' })
  const beyond = await bob.client.ack('message.read', { roomId, seq: 1000 })
  t.same(beyond, { lastReadSeq: 6, unreadCount: 0, mentionCount: 0 }, 'his send moved his mark to its seq; capped at the room\'s last seq')
  const again = await TestClient.session(node.wsUrl, bob.token)
  const summary = (again.ready.data?.rooms as Array<{ id: string, unreadCount: number, lastReadSeq: number }>).find((room) => room.id === roomId)
  t.equal(summary?.unreadCount, 0)
  t.equal(summary?.lastReadSeq, 6)
  await alice.client.ack('message.send', { roomId, content: 'new' })
  const third = await TestClient.session(node.wsUrl, bob.token)
  t.equal((third.ready.data?.rooms as Array<{ id: string, unreadCount: number }>).find((room) => room.id === roomId)?.unreadCount, 1)
  for (const client of [alice.client, bob.client, bob2.client, again.client, third.client]) client.close()
})

t.test('the sender\'s other sockets get message.new; REST sends reach every socket', async (t) => {
  const alice = await connect(node, 'rest-a')
  const alice2 = await TestClient.session(node.wsUrl, alice.token)
  const roomId = await groupRoom(alice, [])
  await alice.client.ack('message.send', { roomId, content: 'from socket one' })
  const onOther = await alice2.client.next((frame) => frame.event === 'message.new')
  t.equal((onOther.data?.message as { content: string }).content, 'from socket one')
  t.same(await alice.client.collect(200, (frame) => frame.event === 'message.new'), [], 'not echoed to the sending socket')

  const headers = { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' }
  const sent = await fetch(`${node.httpUrl}/api/rooms/${roomId}/messages`, { method: 'POST', headers, body: JSON.stringify({ content: 'over REST', clientMsgId: 'rest-1' }) })
  t.equal(sent.status, 201)
  const body = await sent.json() as { message: { seq: number } }
  t.equal(body.message.seq, 2)
  t.equal((await alice.client.next((frame) => frame.event === 'message.new')).data?.seq, 2, 'the REST sender\'s sockets get it too')
  const retry = await fetch(`${node.httpUrl}/api/rooms/${roomId}/messages`, { method: 'POST', headers, body: JSON.stringify({ content: 'over REST', clientMsgId: 'rest-1' }) })
  t.equal(retry.status, 200, 'a retry is 200 with the original')
  const page = await fetch(`${node.httpUrl}/api/rooms/${roomId}/messages?limit=1`, { headers })
  t.same(((await page.json()) as { messages: Array<{ seq: number }>, hasMore: boolean }).messages.map((message) => message.seq), [2])
  const empty = await fetch(`${node.httpUrl}/api/rooms/${roomId}/messages`, { method: 'POST', headers, body: JSON.stringify({ content: ' ' }) })
  t.equal(empty.status, 400)
  t.equal(((await empty.json()) as { code: string }).code, 'VALIDATION_FAILED')
  const anonymous = await fetch(`${node.httpUrl}/api/rooms/${roomId}/messages`)
  t.equal(anonymous.status, 401)
  alice.client.close()
  alice2.client.close()
})

t.test('sync replays every message as history.fetch shows it: sender, reply, reactions, thread', async (t) => {
  const alice = await connect(node, 'hy-a')
  const bob = await connect(node, 'hy-b')
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = await groupRoom(alice, ['hy-b'])
  await bob.client.next((frame) => frame.event === 'room.added')
  const root = (await alice.client.ack('message.send', { roomId, content: 'root' })).message as { id: string }
  for (const content of ['in the thread', 'again']) await bob.client.ack('message.send', { roomId, content, threadRootId: root.id })
  await bob.client.ack('reaction.add', { messageId: root.id, emoji: '👍' })
  await alice.client.ack('reaction.add', { messageId: root.id, emoji: '🎉' })
  await bob.client.ack('message.send', { roomId, content: 'an answer', replyToId: root.id })

  type Shown = { id: string, content: string }
  const main = (await bob.client.ack('history.fetch', { roomId })).messages as Shown[]
  const thread = (await bob.client.ack('history.fetch', { roomId, threadRootId: root.id })).messages as Shown[]
  const synced = await bob.client.ack('sync', { cursors: [{ roomId, seq: 0 }] })
  const replayed = ((synced.rooms as Array<{ events: Array<{ event: string, data: { message?: Shown } }> }>)[0]?.events ?? [])
    .flatMap((event) => event.event === 'message.new' && event.data.message !== undefined ? [event.data.message] : [])
  const shown = [...main, ...thread]
  t.equal(replayed.length, 4, 'the root, two thread replies and the answer')
  t.equal(shown.length, 4)
  for (const message of shown) t.same(replayed.find((one) => one.id === message.id), message, `"${message.content}" replays as history shows it`)
  const rootShown = shown.find((message) => message.id === root.id) as unknown as { sender: { id: string }, reactions: unknown[], thread: { replyCount: number } }
  t.same([rootShown.sender.id, rootShown.reactions.length, rootShown.thread.replyCount], ['hy-a', 2, 2], 'the root shows its sender, both reactions and its thread')
})
