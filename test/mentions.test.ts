import t from 'tap'
import { sql } from 'drizzle-orm'
import { rows } from '../db/client.js'
import { connect, groupRoom, messagesOf, uid } from './fixtures/chat.js'
import { rest, scopeOf } from './fixtures/rooms.js'
import { sharedServicesSkip, startCluster, startNode, type TestNode } from './fixtures/server.js'

// Mentions (protocol 11.6, the part issue 22 needs): message.send takes `mentions`, the statement that
// writes the message keeps those who are members of the room (and "*", MODERATOR and above), and the
// message carries them in its ack, its push, history and sync, and in the feed's message.created entry.

interface Sent { message: { id: string, seq: number, mentions?: string[] } }

async function feedMentions (node: TestNode, messageId: string): Promise<unknown> {
  const found = rows<{ data: { mentions: unknown } }>(await scopeOf(node).chatDb.execute(sql`
    select data from chat.feed where type = 'message.created' and data->'message'->>'id' = ${messageId}
    union all
    select data from chat.feed_outbox where type = 'message.created' and data->'message'->>'id' = ${messageId}`))
  return found[0]?.data.mentions
}

t.test('members are kept, others dropped; the message carries them everywhere, the feed too', async (t) => {
  const node = await startNode(t, { options: { feed: {} } })
  const alice = await connect(node, uid('alice'))
  const bob = await connect(node, uid('bob'))
  const carol = uid('carol')
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = await groupRoom(alice, [bob.id, carol])

  const sent = await alice.client.ack('message.send', { roomId, content: 'hi @bob @carol', mentions: [bob.id, 'ghost', carol, bob.id] }) as unknown as Sent
  t.same(sent.message.mentions, [bob.id, carol], 'the ack: members only, once each, in the order asked')
  const [pushed] = await messagesOf(bob.client, roomId, 1)
  t.same((pushed?.data?.message as Sent['message']).mentions, [bob.id, carol], 'the push')

  const plain = await alice.client.ack('message.send', { roomId, content: 'no one' }) as unknown as Sent
  t.notOk('mentions' in plain.message, 'a message without mentions has no mentions field')

  const history = await bob.client.ack('history.fetch', { roomId }) as unknown as { messages: Array<Sent['message']> }
  t.same(history.messages.map((message) => message.mentions ?? null), [[bob.id, carol], null], 'history')
  const synced = await bob.client.ack('sync', { cursors: [{ roomId, seq: 0 }] }) as unknown as { rooms: Array<{ events: Array<{ event: string, data: { message?: Sent['message'] } }> }> }
  const replayed = synced.rooms[0]?.events.find((event) => event.data.message?.id === sent.message.id)
  t.same(replayed?.data.message?.mentions, [bob.id, carol], 'sync')

  t.same(await feedMentions(node, sent.message.id), [bob.id, carol], 'the feed entry carries them')
  t.same(await feedMentions(node, plain.message.id), [], 'and an empty list when none')

  const byRest = await rest(node, bob.token, 'POST', `/api/rooms/${roomId}/messages`, { content: 'over REST', mentions: [alice.id] })
  t.equal(byRest.status, 201)
  t.same((byRest.body as Sent).message.mentions, [alice.id], 'REST takes mentions too')
})

t.test('"*" mentions everyone, from a MODERATOR and above only', async (t) => {
  const node = await startNode(t)
  const owner = await connect(node, uid('owner'))
  const member = await connect(node, uid('member'))
  t.teardown(() => { owner.client.close(); member.client.close() })
  const roomId = await groupRoom(owner, [member.id])

  const refused = await member.client.request('message.send', { roomId, content: '@everyone', mentions: ['*'] })
  t.equal(refused.error?.code, 'FORBIDDEN', 'a MEMBER may not')
  const everyone = await owner.client.ack('message.send', { roomId, content: '@everyone', mentions: ['*'] }) as unknown as Sent
  t.same(everyone.message.mentions, ['*'], 'the OWNER may')
  const history = await member.client.ack('history.fetch', { roomId }) as unknown as { messages: unknown[] }
  t.equal(history.messages.length, 1, 'the refused send wrote nothing')
})

t.test('bad mentions are refused with a clear error', async (t) => {
  const node = await startNode(t)
  const alice = await connect(node, uid('alice'))
  t.teardown(() => alice.client.close())
  const roomId = await groupRoom(alice, [])
  const tooMany = await alice.client.request('message.send', { roomId, content: 'x', mentions: Array.from({ length: 51 }, (_, index) => `user-${index}`) })
  t.equal(tooMany.error?.code, 'VALIDATION_FAILED', 'more than 50')
  const notString = await alice.client.request('message.send', { roomId, content: 'x', mentions: [42] })
  t.equal(notString.error?.code, 'VALIDATION_FAILED', 'not a user id')
  const empty = await alice.client.request('message.send', { roomId, content: 'x', mentions: [''] })
  t.equal(empty.error?.code, 'VALIDATION_FAILED', 'an empty id')
})

t.test('a member removed before the send is not kept; on another node the push carries the mentions', { skip: sharedServicesSkip() }, async (t) => {
  const [first, second] = await startCluster(t, 2) as [TestNode, TestNode]
  const alice = await connect(first, uid('alice'))
  const bob = await connect(second, uid('bob'))
  const dave = uid('dave')
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = await groupRoom(alice, [bob.id, dave])
  await alice.client.ack('room.member.remove', { roomId, userId: dave })
  const sent = await alice.client.ack('message.send', { roomId, content: 'hi', mentions: [dave, bob.id] }) as unknown as Sent
  t.same(sent.message.mentions, [bob.id], 'dave left: only bob')
  const [pushed] = await messagesOf(bob.client, roomId, 1)
  t.same((pushed?.data?.message as Sent['message']).mentions, [bob.id], 'bob, on the other node, gets them')
})
