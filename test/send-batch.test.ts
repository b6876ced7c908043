import t from 'tap'
import { randomUUID } from 'node:crypto'
import postgres from 'postgres'
import { sql } from 'drizzle-orm'
import { PgDialect } from 'drizzle-orm/pg-core'
import { openDatabase, rows, type DatabaseHandle } from '../db/client.js'
import { sendBatchStatement, type SendBatchResult, type SendBatchRow } from '../db/queries/send-batch.js'
import { toWireError } from '../plugins/core/errors.js'
import { freshDatabaseUrl, holdRoomLock } from './fixtures/database.js'
import { sleep } from './fixtures/timing.js'
import { functionPlan, probes, unboundedIndexReads, wholeReadsAndJoins, type PlanNode } from './fixtures/plans.js'

// The send batch statement on its own, against the driver the run uses (PGlite, or DATABASE_URL's server).

async function openFresh (test: Parameters<typeof freshDatabaseUrl>[0]): Promise<DatabaseHandle> {
  const handle = await openDatabase(await freshDatabaseUrl(test))
  test.teardown(() => handle.close())
  return handle
}

async function createRoom (handle: DatabaseHandle, memberIds: string[] = ['u']): Promise<string> {
  const created = rows<{ id: string }>(await handle.db.execute(sql`insert into chat.rooms (name, type, created_by) values ('r', 'GROUP', 'u') returning id`))
  const roomId = (created[0] as { id: string }).id
  // The statement writes only the sends of members (protocol 11.2).
  for (const userId of memberIds) await handle.db.execute(sql`insert into chat.room_members (room_id, user_id) values (${roomId}, ${userId})`)
  return roomId
}

function sends (roomId: string, count: number, tag: string): SendBatchRow[] {
  return Array.from({ length: count }, (_, i) => ({
    i, id: randomUUID(), roomId, senderId: 'u', type: 'TEXT' as const, content: `${tag} ${i}`, replyToId: null, attachments: [], clientMsgId: `${tag}-${i}`,
  }))
}

async function stored (handle: DatabaseHandle, roomId: string): Promise<{ messages: number, lastSeq: number }> {
  const [row] = rows<{ messages: number, last_seq: number }>(await handle.db.execute(sql`
    select (select count(*)::int from chat.messages where room_id = ${roomId}) as messages, last_seq from chat.rooms where id = ${roomId}`))
  return { messages: row?.messages ?? -1, lastSeq: row?.last_seq ?? -1 }
}

/** The feed entries staged for a room, in staged order: [type, seq, actor]. */
async function staged (handle: DatabaseHandle, roomId: string): Promise<Array<[string, number, string]>> {
  const found = rows<{ type: string, seq: number, actor_id: string }>(await handle.db.execute(sql`select type, seq, actor_id from chat.feed_outbox where room_id = ${roomId} order by staged_id`))
  return found.map((row) => [row.type, Number(row.seq), row.actor_id])
}

const inAMinute = (): string => new Date(Date.now() + 60_000).toISOString()

t.test('a batch that reaches the database past its deadline writes nothing and fails as UNAVAILABLE', async (t) => {
  const handle = await openFresh(t)
  const roomId = await createRoom(handle)
  const late = sendBatchStatement(sends(roomId, 3, 'late'), new Date().toISOString(), 0, new Date(Date.now() - 1000).toISOString(), true)
  const error = await handle.db.execute(late).then(() => null, (caught: unknown) => caught)
  t.ok(error instanceof Error, 'the statement fails')
  t.equal(toWireError(error).code, 'UNAVAILABLE', 'its senders are told UNAVAILABLE')
  t.same(await stored(handle, roomId), { messages: 0, lastSeq: 0 }, 'no message, no seq taken')
  t.same(await staged(handle, roomId), [], 'and no feed entry')

  const onTime = sendBatchStatement(sends(roomId, 3, 'on-time'), new Date().toISOString(), 0, inAMinute(), true)
  const answers = rows<SendBatchResult>(await handle.db.execute(onTime))
  t.same(answers.map((answer) => Number(answer.seq)).sort(), [1, 2, 3], 'the same batch before its deadline takes seqs 1..3')
  t.same(await stored(handle, roomId), { messages: 3, lastSeq: 3 }, 'and is written')
  t.same(await staged(handle, roomId), [['message.created', 1, 'u'], ['message.created', 2, 'u'], ['message.created', 3, 'u']], 'with a feed entry per message, in the same statement')
})

/** Nested loops whose two sides are both scans of the statement's own steps (CTE Scan). */
function joinsOfSteps (nodes: PlanNode[]): string[] {
  return nodes.filter((node) => node['Node Type'] === 'Nested Loop').flatMap((node) => {
    const sides = (node.Plans ?? []).filter((child) => child['Parent Relationship'] === 'Outer' || child['Parent Relationship'] === 'Inner')
    return sides.length === 2 && sides.every((side) => side['Node Type'] === 'CTE Scan')
      ? [sides.map((side) => side['CTE Name']).join(' x ')]
      : []
  })
}

/** The function's parameters as the statement's bound parameters. */
const SEND_BATCH_PARAMS = { p_batch: '$1::text', p_created_at: '$2::text', p_retention: '$3::int', p_deadline: '$4::text', p_feed: '$5::boolean' }

t.test('the statement\'s plan has no seq scan, no hash or merge join and no join of its own steps, whatever the statistics say', async (t) => {
  // Tables just created and analyzed while nearly empty: the statistics a plan kept since a node's first
  // batches would be made from. Without the function's settings this plan reads whole tables (a hash join
  // over a seq scan of messages, for the reply and the root), which costs more per batch as they grow.
  // Some reads of tables that small are still whole-index reads: PostgreSQL makes the plan again once
  // autovacuum has analyzed a table that grew (the next test has the plan of tables in service).
  const handle = await openFresh(t)
  const roomId = await createRoom(handle)
  await handle.db.execute(sql`analyze`)
  const dialect = new PgDialect()
  const query = dialect.sqlToQuery(sendBatchStatement(sends(roomId, 200, 'probe'), new Date().toISOString(), 7, inAMinute(), true))
  const other = dialect.sqlToQuery(sendBatchStatement(sends(roomId, 3, 'other'), new Date().toISOString(), 0, inAMinute(), false))
  // postgres.js remembers the texts it ran: rows in the text would keep their content alive.
  t.equal(other.sql, query.sql, 'every batch has the same statement text: its rows are a bound parameter')
  t.notMatch(query.sql, /probe 199/, 'no message content in the text')
  const { nodes, settings } = await functionPlan(handle, 'send_batch', SEND_BATCH_PARAMS, query.params)
  t.same([...settings].sort(), ['enable_hashjoin=off', 'enable_mergejoin=off', 'enable_seqscan=off'], 'the function pins the plan\'s shape')
  t.match(probes(nodes, 'messages_client_msg_idx'), [{ type: 'Index Only Scan', cond: /room_id = x\.r.*sender_id = x\.s.*client_msg_id = x\.k/ }], 'the retry check probes the clientMsgId index')
  t.match(probes(nodes, 'messages_pkey'), [{ type: 'Index Scan', cond: '(id = x.p)' }, { type: 'Index Scan', cond: '(id = x.h)' }], 'the reply target and the thread root are probes of the primary key')
  t.same(wholeReadsAndJoins(nodes), [], 'no seq scan, no hash or merge join')
  t.same(joinsOfSteps(nodes), [], 'no join of two of the statement\'s steps: each would compare every send with every other')
})

t.test('on tables in service the statement reads every table by index probes only', async (t) => {
  const handle = await openFresh(t)
  const roomId = await createRoom(handle)
  // 200 rooms of 20 members with 20 messages and 20 events each, analyzed: statistics of a database in use.
  await handle.db.execute(sql`insert into chat.rooms (name, type, created_by) select 'r' || g, 'GROUP', 'u' from generate_series(1, 200) g`)
  await handle.db.execute(sql`insert into chat.room_members (room_id, user_id) select r.id, 'm' || g from chat.rooms r, generate_series(1, 20) g`)
  await handle.db.execute(sql`insert into chat.messages (room_id, seq, sender_id, content) select r.id, g, 'm1', 'hello' from chat.rooms r, generate_series(1, 20) g`)
  await handle.db.execute(sql`insert into chat.room_events (room_id, seq, event, data) select r.id, g, 'message.edited', '{}' from chat.rooms r, generate_series(1, 20) g`)
  await handle.db.execute(sql`analyze`)
  const query = new PgDialect().sqlToQuery(sendBatchStatement(sends(roomId, 200, 'probe'), new Date().toISOString(), 7, inAMinute(), true))
  const { nodes } = await functionPlan(handle, 'send_batch', SEND_BATCH_PARAMS, query.params)
  t.same(unboundedIndexReads(nodes), [], 'every index read has a condition: none reads a whole index (a hashed subplan would)')
  t.ok(probes(nodes, 'room_members_room_id_user_id_pk').some((probe) => probe.type === 'Index Scan' && /^\(\(room_id = f_\d+\."roomId"\) AND \(user_id = f_\d+\."senderId"\)\)$/.test(probe.cond)),
    'the membership check is one probe of the primary key')
  t.same(wholeReadsAndJoins(nodes), [], 'no seq scan, no hash or merge join')
  t.same(joinsOfSteps(nodes), [], 'no join of two of the statement\'s steps')
})

t.test('a batch that waits past its deadline for a room lock writes nothing', { skip: process.env.DATABASE_URL ? false : 'needs two connections to one database: set DATABASE_URL' }, async (t) => {
  const url = await freshDatabaseUrl(t)
  const handle = await openDatabase(url)
  t.teardown(() => handle.close())
  const roomId = await createRoom(handle)
  const holder = postgres(url, { max: 1, onnotice: () => {} })
  t.teardown(() => holder.end({ timeout: 1 }))
  // Another writer holds the room's row (as a long batch of another node would) past the deadline.
  const release = await holdRoomLock(holder, roomId)
  const batch = handle.db.execute(sendBatchStatement(sends(roomId, 2, 'behind'), new Date().toISOString(), 0, new Date(Date.now() + 300).toISOString(), true))
    .then(() => null, (caught: unknown) => caught)
  await sleep(600)
  await release()
  const error = await batch
  t.equal(toWireError(error).code, 'UNAVAILABLE', 'it fails once it gets the lock, its deadline gone')
  t.same(await stored(handle, roomId), { messages: 0, lastSeq: 0 }, 'and writes nothing')
})

t.test('the statement writes only the sends of members: a non-member\'s send takes no seq and says not_member; the server\'s needs no row', async (t) => {
  const handle = await openFresh(t)
  const roomId = await createRoom(handle, ['u'])
  const batch: SendBatchRow[] = [
    ...sends(roomId, 2, 'member'),
    { i: 2, id: randomUUID(), roomId, senderId: 'stranger', type: 'TEXT', content: 'not a member', replyToId: null, attachments: [], clientMsgId: 'stranger-1' },
    { i: 3, id: randomUUID(), roomId, senderId: 'system', type: 'SYSTEM', content: 'from the server', replyToId: null, attachments: [], clientMsgId: null, asServer: true },
    { i: 4, id: randomUUID(), roomId: randomUUID(), senderId: 'u', type: 'TEXT', content: 'no such room', replyToId: null, attachments: [], clientMsgId: null },
  ]
  const answers = new Map(rows<SendBatchResult>(await handle.db.execute(sendBatchStatement(batch, new Date().toISOString(), 0, inAMinute(), true)))
    .map((answer) => [answer.i, answer]))
  t.same([0, 1, 3].map((i) => Number(answers.get(i)?.seq)), [1, 2, 3], 'the members\' and the server\'s sends take seqs 1..3, no gap')
  t.match(answers.get(2), { seq: null, not_member: true, room_exists: true }, 'the non-member\'s send is not written and says so')
  t.match(answers.get(4), { seq: null, room_exists: false }, 'a send to a room that does not exist still says so')
  t.same([0, 1, 3].map((i) => answers.get(i)?.not_member), [false, false, false], 'the written ones are not flagged')
  t.same(await stored(handle, roomId), { messages: 3, lastSeq: 3 }, 'three messages stored, none of the stranger\'s')
})

t.test('one batch over several rooms, its sends interleaved: each room\'s seqs follow the batch order, and every send gets its own answer', async (t) => {
  const handle = await openFresh(t)
  const rooms = [await createRoom(handle, ['u', 'v']), await createRoom(handle, ['u']), await createRoom(handle, ['v'])]
  await handle.db.execute(sql`update chat.rooms set tenant = 'acme' where id = ${rooms[1] as string}`)
  const earlier = randomUUID()
  await handle.db.execute(sendBatchStatement([{ i: 0, id: earlier, roomId: rooms[0] as string, senderId: 'u', type: 'TEXT', content: 'first', replyToId: null, attachments: [], clientMsgId: 'kept' }],
    new Date().toISOString(), 0, inAMinute(), true))
  const send = (i: number, room: number, senderId: string, more: Partial<SendBatchRow> = {}): SendBatchRow =>
    ({ i, id: randomUUID(), roomId: rooms[room] as string, senderId, type: 'TEXT', content: `send ${i}`, replyToId: null, attachments: [], clientMsgId: `c${i}`, ...more })
  const batch: SendBatchRow[] = [
    send(0, 1, 'u'), send(1, 0, 'v', { mentions: ['u', 'w'] }), send(2, 2, 'v'), send(3, 0, 'u', { clientMsgId: 'kept' }),
    send(4, 1, 'v'), send(5, 0, 'u', { replyToId: earlier }), send(6, 2, 'v', { replyToId: earlier }), send(7, 1, 'u'), send(8, 0, 'v'),
  ]
  const answers = new Map(rows<SendBatchResult>(await handle.db.execute(sendBatchStatement(batch, new Date().toISOString(), 0, inAMinute(), true)))
    .map((answer) => [answer.i, answer]))
  t.equal(answers.size, batch.length, 'an answer for every send')
  const seqs = batch.map((row) => answers.get(row.i)?.seq ?? null).map((seq) => seq === null ? null : Number(seq))
  t.same(seqs, [1, 2, 1, null, null, 3, null, 2, 4], 'room 0 continues at 2, rooms 1 and 2 start at 1, each in batch order; refused sends take none')
  t.same(batch.map((row) => answers.get(row.i)?.not_member), [false, false, false, false, true, false, false, false, false], 'only v in room 1 is not a member')
  t.match(answers.get(3), { seq: null, not_member: false, room_exists: true }, 'the retry of a stored clientMsgId is not written again')
  t.match(answers.get(6), { seq: null, not_member: false, reply_room_id: rooms[0] }, 'a reply to another room\'s message says where its target is')
  t.match(answers.get(5), { reply_room_id: rooms[0], reply_seq: 1, reply_sender_id: 'u', reply_content: 'first' }, 'a reply in the room reads its target')
  t.same(answers.get(1)?.mentions, ['u'], 'mentions keep the room\'s members only')
  t.equal(answers.get(0)?.mentions, null, 'a send without mentions has none')
  t.same(await stored(handle, rooms[0] as string), { messages: 4, lastSeq: 4 }, 'room 0 holds its four')
  t.same(await stored(handle, rooms[1] as string), { messages: 2, lastSeq: 2 }, 'room 1 its two')
  t.same(await stored(handle, rooms[2] as string), { messages: 1, lastSeq: 1 }, 'room 2 its one')
  t.same(await staged(handle, rooms[1] as string), [['message.created', 1, 'u'], ['message.created', 2, 'u']], 'the feed has room 1\'s messages in seq order')
  const tenants = rows<{ tenant: string }>(await handle.db.execute(sql`select distinct tenant from chat.feed_outbox where room_id = ${rooms[1] as string}`))
  t.same(tenants.map((row) => row.tenant), ['acme'], 'with their room\'s tenant')
  const reads = rows<{ room_id: string, user_id: string, last_read_seq: number }>(await handle.db.execute(sql`
    select room_id, user_id, last_read_seq from chat.room_members where room_id = ${rooms[0] as string} order by user_id`))
  t.same(reads.map((row) => [row.user_id, Number(row.last_read_seq)]), [['u', 3], ['v', 4]], 'each sender\'s read mark moves to their last seq')
})

t.test('a kick that commits while a batch waits for the room lock: the batch writes nothing of the kicked sender', { skip: process.env.DATABASE_URL ? false : 'needs two connections to one database: set DATABASE_URL' }, async (t) => {
  const url = await freshDatabaseUrl(t)
  const handle = await openDatabase(url)
  t.teardown(() => handle.close())
  const roomId = await createRoom(handle, ['u', 'v'])
  const kicker = postgres(url, { max: 1, onnotice: () => {} })
  t.teardown(() => kicker.end({ timeout: 1 }))
  // As room-members.ts kicks: the room's row lock, then the membership row deleted, then the commit.
  const commitKick = await holdRoomLock(kicker, roomId, async (tx) => await tx`delete from chat.room_members where room_id = ${roomId} and user_id = 'u'`)
  // The batch's snapshot is taken now, with u still a member; it then waits for the room's lock.
  const batch = handle.db.execute(sendBatchStatement([
    ...sends(roomId, 3, 'kicked'),
    { i: 3, id: randomUUID(), roomId, senderId: 'v', type: 'TEXT', content: 'still a member', replyToId: null, attachments: [], clientMsgId: 'v-1' },
  ], new Date().toISOString(), 0, inAMinute(), true)).then((result) => result) // then() sends it now (the query is lazy)
  await sleep(200)
  await commitKick()
  const answers = rows<SendBatchResult>(await batch).sort((a, b) => a.i - b.i)
  t.same(answers.map((answer) => answer.not_member), [true, true, true, false], 'the kicked sender\'s sends are refused, the other member\'s is not')
  t.same(answers.map((answer) => answer.seq === null ? null : Number(answer.seq)), [null, null, null, 1], 'only the member\'s send takes a seq')
  t.same(await stored(handle, roomId), { messages: 1, lastSeq: 1 }, 'nothing of the kicked sender is stored')
  t.same(await staged(handle, roomId), [['message.created', 1, 'v']], 'and the feed has only the member\'s message: no entry for a refused send')
})
