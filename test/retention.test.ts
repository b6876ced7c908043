import t from 'tap'
import { sql } from 'drizzle-orm'
import { rows } from '../db/client.js'
import { connect, groupRoom, uid } from './fixtures/chat.js'
import { rest, scopeOf, storeMessage } from './fixtures/rooms.js'
import { onOneAndTwoNodes, type TestNode } from './fixtures/server.js'
import { until } from './fixtures/timing.js'

// Retention that deletes (protocol 11.6, issue 24): messages past their room's retention lose their
// content like a delete, keeping id and seq; one node at a time sweeps (a lease), in bounded batches.

async function age (node: TestNode, messageId: string, days: number): Promise<void> {
  await scopeOf(node).chatDb.execute(sql`update chat.messages set created_at = now() - make_interval(days => ${days}) where id = ${messageId}`)
}

async function erasedTotal (nodes: TestNode[]): Promise<number> {
  let sum = 0
  // The one-node run passes the same node twice.
  for (const node of new Set(nodes)) {
    const metric = await scopeOf(node).chatMetrics.registry.getSingleMetric('chat_retention_erased_total')?.get()
    sum += metric?.values.reduce((total, { value }) => total + value, 0) ?? 0
  }
  return sum
}

onOneAndTwoNodes(t, 'messages past maxAgeDays or the room\'s retentionDays lose their content; newer ones stay', async (t, nodeA, nodeB) => {
  const alice = await connect(nodeA, uid('alice'))
  const bob = await connect(nodeB, uid('bob'))
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const kept = await groupRoom(alice, [bob.id])
  const short = await groupRoom(alice, [bob.id])
  const old = await storeMessage(nodeA, kept, alice.id, 'from last year', { reactions: [{ userId: bob.id, emoji: '👍' }] })
  const recent = await storeMessage(nodeA, kept, alice.id, 'from last week')
  const shortOld = await storeMessage(nodeA, short, alice.id, 'two days old')
  const shortNew = await storeMessage(nodeA, short, alice.id, 'today')
  await age(nodeA, old.id, 400)
  await age(nodeA, recent.id, 7)
  await age(nodeA, shortOld.id, 2)
  const patched = await rest(nodeB, alice.token, 'PATCH', `/api/rooms/${short}`, { retentionDays: 1 })
  t.equal((patched.body as { room: { retentionDays: number } }).room.retentionDays, 1, 'a room sets its own retention (REST)')

  await until('both expired messages are erased', async () => (await erasedTotal([nodeA, nodeB])) >= 2, { timeoutMs: 10000, everyMs: 100 })
  const history = async (roomId: string): Promise<Array<{ id: string, seq: number, content: string, deletedAt?: string, reactions: unknown[] }>> =>
    ((await bob.client.ack('history.fetch', { roomId })) as { messages: Array<{ id: string, seq: number, content: string, deletedAt?: string, reactions: unknown[] }> }).messages
  const inKept = await history(kept)
  t.same(inKept.map((message) => [message.id, message.content, message.deletedAt !== undefined]), [[old.id, '', true], [recent.id, 'from last week', false]], 'past 30 days: erased in its place; a week old: kept')
  t.same(inKept[0]?.reactions, [], 'its reactions are gone')
  t.equal(inKept[0]?.seq, old.seq, 'the row keeps its seq')
  const inShort = await history(short)
  t.same(inShort.map((message) => [message.id, message.content]), [[shortOld.id, ''], [shortNew.id, 'today']], 'the room\'s own retention of one day')
  const stored = rows<{ n: number }>(await scopeOf(nodeA).chatDb.execute(sql`select count(*)::int as n from chat.reactions where message_id = ${old.id}`))
  t.equal(stored[0]?.n, 0, 'no reaction row left')
  t.equal(await erasedTotal([nodeA, nodeB]), 2, 'counted once: one node swept')
  const holders = rows<{ holder: string }>(await scopeOf(nodeA).chatDb.execute(sql`select holder from chat.feed_lease where name = 'retention'`))
  t.equal(holders.length, 1, 'one retention lease')
}, { options: { retention: { maxAgeDays: 30, sweepMs: 100 } } })

onOneAndTwoNodes(t, 'without maxAgeDays nothing is erased but in rooms that set their own', async (t, nodeA) => {
  const alice = await connect(nodeA, uid('alice'))
  t.teardown(() => alice.client.close())
  const roomId = await groupRoom(alice, [])
  const ancient = await storeMessage(nodeA, roomId, alice.id, 'ancient')
  await age(nodeA, ancient.id, 5000)
  await new Promise((resolve) => setTimeout(resolve, 500))
  const history = (await alice.client.ack('history.fetch', { roomId })) as { messages: Array<{ content: string }> }
  t.same(history.messages.map((message) => message.content), ['ancient'], 'kept for ever by default')
  t.equal((await alice.client.request('room.update', { roomId, retentionDays: 0 })).error?.code, 'VALIDATION_FAILED', 'a retention of at least a day')
}, { options: { retention: { sweepMs: 100 } } })
