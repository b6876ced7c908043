import t, { type Test } from 'tap'
import { sql } from 'drizzle-orm'
import { rows } from '../db/client.js'
import { connect, uid } from './fixtures/chat.js'
import { scopeOf } from './fixtures/rooms.js'
import { startNode, type TestNode } from './fixtures/server.js'

// The feed's outbox (protocol 11.4, issue 22): every durable event of a room stages one entry with its
// own write (the send batch's statement, the room log's statement, a room's creation and deletion), with
// the room's tenant; a refused send stages nothing; `feed: false` stages nothing at all. Entries the relay
// has moved on are read from chat.feed, so the test holds whether or not a relay ran meanwhile.

interface Staged { type: string, tenant: string, seq: number | null, actor: string | null }

async function entriesOf (node: TestNode, roomId: string): Promise<Staged[]> {
  const found = await scopeOf(node).chatDb.execute(sql`
    select type, tenant, seq, actor_id from (
      select 0 as part, id as n, type, tenant, seq, actor_id from chat.feed where room_id = ${roomId}
      union all
      select 1 as part, staged_id as n, type, tenant, seq, actor_id from chat.feed_outbox where room_id = ${roomId}
    ) entries order by part, n`)
  return rows<{ type: string, tenant: string, seq: number | null, actor_id: string | null }>(found)
    .map((row) => ({ type: row.type, tenant: row.tenant, seq: row.seq === null ? null : Number(row.seq), actor: row.actor_id }))
}

async function walkRoom (t: Test, node: TestNode): Promise<{ roomId: string, entries: Staged[], refusedBy: string }> {
  const owner = await connect(node, uid('owner'), { tenant: 'acme' })
  const bobId = uid('bob')
  const bob = await connect(node, bobId, { tenant: 'acme' })
  const carolId = uid('carol')
  const stranger = await connect(node, uid('stranger'), { tenant: 'acme' })
  t.teardown(() => { for (const one of [owner, bob, stranger]) one.client.close() })
  const roomId = ((await owner.client.ack('room.create', { name: 'fed', type: 'GROUP', memberIds: [bobId] })).room as { id: string }).id
  const sent = await bob.client.ack('message.send', { roomId, content: 'hello' })
  const messageId = (sent.message as { id: string }).id
  await bob.client.ack('message.edit', { messageId, content: 'hello again' })
  await owner.client.ack('reaction.add', { messageId, emoji: '👍' })
  await owner.client.ack('room.member.add', { roomId, userIds: [carolId] })
  await owner.client.ack('room.member.role', { roomId, userId: carolId, role: 'MODERATOR' })
  await owner.client.ack('room.member.remove', { roomId, userId: carolId })
  await owner.client.ack('room.update', { roomId, name: 'fed, renamed' })
  await owner.client.ack('message.delete', { messageId })
  const refused = await stranger.client.request('message.send', { roomId, content: 'not a member' })
  t.equal(refused.error?.code, 'NOT_MEMBER', 'a stranger\'s send is refused')
  await owner.client.ack('room.delete', { roomId })
  return { roomId, entries: await entriesOf(node, roomId), refusedBy: stranger.id }
}

t.test('every durable event of a room stages its feed entry, in order, with the room\'s tenant', async (t) => {
  const node = await startNode(t, { options: { feed: {} } })
  const { entries, refusedBy } = await walkRoom(t, node)
  t.same(entries.map((entry) => entry.type), [
    'room.created', 'message.created', 'message.updated', 'reaction.updated', 'member.joined', 'member.updated',
    'member.left', 'room.updated', 'message.deleted', 'room.deleted',
  ], 'one entry per event, in the order they happened')
  t.same([...new Set(entries.map((entry) => entry.tenant))], ['acme'], 'each with the room\'s tenant')
  const seqs = entries.filter((entry) => entry.seq !== null).map((entry) => entry.seq)
  t.same(seqs, [...seqs].sort((a, b) => (a as number) - (b as number)), 'room events in seq order')
  t.notOk(entries.some((entry) => entry.actor === refusedBy), 'nothing of the refused send')
  t.equal(entries.find((entry) => entry.type === 'member.left')?.actor !== null, true, 'a kick names its actor')
})

t.test('feed: false (the default until the relay lands) stages nothing', async (t) => {
  const node = await startNode(t, { options: { feed: false } })
  const { entries } = await walkRoom(t, node)
  t.same(entries, [], 'no outbox row for any event')
})
