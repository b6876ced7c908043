import t, { type Test } from 'tap'
import { sql } from 'drizzle-orm'
import { openDatabase, rows, type DatabaseHandle } from '../db/client.js'
import { loadSummaries } from '../plugins/rooms/room-summaries.js'
import { freshDatabaseUrl } from './fixtures/database.js'
import { functionPlan, probes, unboundedIndexReads, wholeReadsAndJoins, type PlanNode } from './fixtures/plans.js'

// The rooms' summaries (migration 0019's chat.room_summaries) on their own, against the driver the run
// uses: the plan is index probes whatever the tables' statistics, and the answers are a user's rooms as
// they see them.

async function openFresh (test: Parameters<typeof freshDatabaseUrl>[0]): Promise<DatabaseHandle> {
  const handle = await openDatabase(await freshDatabaseUrl(test))
  test.teardown(() => handle.close())
  return handle
}

const PARAMS = { p_user_ids: '$1::text[]', p_room_ids: '$2::uuid[]', p_tenant: '$3::text' }

/** Reads that must be probes on any statistics: by the key the row in hand gives. */
function checkProbes (t: Test, nodes: PlanNode[]): void {
  t.same(wholeReadsAndJoins(nodes), [], 'no seq scan, no hash or merge join')
  t.match(probes(nodes, 'room_members_user_idx'), [{ cond: '(user_id = wanted.user_id)' }], 'the users\' memberships: a probe per user')
  t.match(probes(nodes, 'rooms_pkey'), [{ type: 'Index Scan', cond: '(id = m.room_id)' }], 'each room: a probe of its primary key (not a read of its tenant\'s rooms)')
  const log = probes(nodes, 'messages_room_seq_idx')
  t.ok(log.some((probe) => /room_id = r\.id\) AND \(seq > m\.last_read_seq/.test(probe.cond)), 'the unread count reads the room\'s log from the mark on')
  t.ok(log.some((probe) => probe.direction === 'Backward' && probe.cond === '(room_id = r.id)'), 'the last message: the room\'s log read from its end')
  t.match(probes(nodes, 'messages_pkey'), [{ type: 'Index Scan', cond: '(id = x.reply_to_id)' }], 'its reply target: a probe')
  const users = probes(nodes, 'users_tenant_id_pk')
  t.equal(users.length, 2, 'the peer and the sender')
  t.ok(users.every((probe) => /^\(\(tenant = .*\) AND \(id = .*\)\)$/.test(probe.cond)), 'both probes of the whole key (not every user of the tenant)')
}

t.test('the plan is probes on tables analyzed nearly empty, as a new deployment has them', async (t) => {
  const handle = await openFresh(t)
  await handle.db.execute(sql`insert into chat.rooms (name, type, created_by) values ('r', 'GROUP', 'u')`)
  await handle.db.execute(sql`analyze`)
  const { nodes, settings } = await functionPlan(handle, 'room_summaries', PARAMS, ['{u1,u2}', null, ''])
  t.same([...settings].sort(), ['enable_hashjoin=off', 'enable_mergejoin=off', 'enable_seqscan=off', 'plan_cache_mode=force_generic_plan'], 'the function pins the plan and keeps it')
  // Some reads of tables this small may still be whole-index reads (the other member of a DIRECT room,
  // by the index on user_id): PostgreSQL makes the plan again once autovacuum has analyzed a table that grew.
  checkProbes(t, nodes)
})

t.test('on tables in service every read is a probe', async (t) => {
  const handle = await openFresh(t)
  // 200 rooms of 20 members with 20 messages each, analyzed.
  await handle.db.execute(sql`insert into chat.rooms (name, type, created_by) select 'r' || g, 'GROUP', 'u' from generate_series(1, 200) g`)
  await handle.db.execute(sql`insert into chat.room_members (room_id, user_id) select r.id, 'm' || g from chat.rooms r, generate_series(1, 20) g`)
  await handle.db.execute(sql`insert into chat.messages (room_id, seq, sender_id, content) select r.id, g, 'm1', 'hello' from chat.rooms r, generate_series(1, 20) g`)
  await handle.db.execute(sql`analyze`)
  const { nodes } = await functionPlan(handle, 'room_summaries', PARAMS, ['{m1,m2,m3}', null, ''])
  checkProbes(t, nodes)
  t.same(unboundedIndexReads(nodes), [], 'every index read has a condition')
})

t.test('each user\'s rooms as they see them: peers, last message with its reply and reactions, unread, filters, order', async (t) => {
  const handle = await openFresh(t)
  const exec = async (query: ReturnType<typeof sql>): Promise<Array<{ id: string }>> => rows<{ id: string }>(await handle.db.execute(query))
  await handle.db.execute(sql`insert into chat.users (id, tenant, name, avatar) values ('ann', '', 'Ann', 'a.png'), ('bob', '', 'Bob', null), ('system', '', 'Server', null), ('bob', 'acme', 'Bob of Acme', null)`)
  const [group] = await exec(sql`insert into chat.rooms (name, type, created_by, updated_at) values ('group', 'GROUP', 'ann', now() - interval '1 hour') returning id`)
  const [direct] = await exec(sql`insert into chat.rooms (name, type, created_by, updated_at) values ('dm', 'DIRECT', 'ann', now()) returning id`)
  const [acme] = await exec(sql`insert into chat.rooms (name, type, created_by, tenant) values ('acme room', 'GROUP', 'bob', 'acme') returning id`)
  const groupId = (group as { id: string }).id
  const directId = (direct as { id: string }).id
  const acmeId = (acme as { id: string }).id
  await handle.db.execute(sql`insert into chat.room_members (room_id, user_id, role, last_read_seq) values
    (${groupId}, 'ann', 'OWNER', 1), (${groupId}, 'bob', 'MEMBER', 0), (${directId}, 'ann', 'MEMBER', 0), (${directId}, 'bob', 'MEMBER', 0), (${acmeId}, 'bob', 'OWNER', 0)`)
  const [first] = await exec(sql`insert into chat.messages (room_id, seq, sender_id, content) values (${groupId}, 1, 'ann', 'the first') returning id`)
  const firstId = (first as { id: string }).id
  const [reply] = await exec(sql`insert into chat.messages (room_id, seq, sender_id, content, reply_to_id, mentions) values (${groupId}, 2, 'bob', 'a reply', ${firstId}, '{ann}') returning id`)
  // The room's latest message is deleted: the last one shown is the reply before it.
  await handle.db.execute(sql`insert into chat.messages (room_id, seq, sender_id, content, deleted_at) values (${groupId}, 3, 'bob', 'gone', now())`)
  await handle.db.execute(sql`insert into chat.reactions (message_id, user_id, emoji) values (${(reply as { id: string }).id}, 'ann', '👍'), (${(reply as { id: string }).id}, 'bob', '👍')`)
  await handle.db.execute(sql`insert into chat.messages (room_id, seq, sender_id, type, content) values (${directId}, 1, 'system', 'SYSTEM', 'started')`)
  await handle.db.execute(sql`update chat.rooms set last_seq = 3 where id = ${groupId}`)

  const { summaries, peers } = await loadSummaries(handle.db, ['ann', 'bob'], undefined, '')
  const of = (userId: string): string[] => summaries.filter((row) => row.userId === userId).map((row) => row.summary.id)
  t.same(of('ann'), [directId, groupId], 'most recently active first')
  t.same(of('bob'), [directId, groupId], 'only the rooms of the tenant asked for')
  const annGroup = summaries.find((row) => row.userId === 'ann' && row.summary.id === groupId)?.summary
  t.match(annGroup, { myRole: 'OWNER', lastReadSeq: 1, unreadCount: 1, mentionCount: 1, peerId: null, name: 'group' }, 'the reply is unread and mentions ann; bob\'s deleted message is not counted')
  t.match(annGroup?.lastMessage, {
    seq: 2, content: 'a reply', sender: { name: 'Bob' },
    replyTo: { id: firstId, seq: 1, senderId: 'ann', excerpt: 'the first' },
    reactions: [{ emoji: '👍', count: 2, userIds: ['ann', 'bob'] }],
  }, 'the last message not deleted, with its sender, reply target and reactions')
  const bobGroup = summaries.find((row) => row.userId === 'bob' && row.summary.id === groupId)?.summary
  t.match(bobGroup, { unreadCount: 1, mentionCount: 0 }, 'bob\'s own reply is not unread to him')
  const annDirect = summaries.find((row) => row.userId === 'ann' && row.summary.id === directId)
  t.match(annDirect?.summary, { name: 'Bob', peerId: 'bob', avatar: null }, 'a DIRECT room shows the other user')
  t.match(annDirect?.summary.lastMessage, { type: 'SYSTEM', sender: { name: 'Server' } }, 'a SYSTEM message names the server user of the default tenant')
  t.equal(peers.get(directId)?.id, 'ann', 'the peers by room: the last row\'s view (bob sees ann)')

  const acmeOnly = await loadSummaries(handle.db, ['bob'], undefined, 'acme')
  t.same(acmeOnly.summaries.map((row) => [row.summary.id, row.tenant]), [[acmeId, 'acme']], 'another tenant\'s rooms of the same sub')
  const everyTenant = await loadSummaries(handle.db, ['bob'])
  t.equal(everyTenant.summaries.length, 3, 'no tenant: every tenant\'s rooms')
  const picked = await loadSummaries(handle.db, ['ann', 'bob'], [groupId])
  t.same(picked.summaries.map((row) => [row.userId, row.summary.id]).sort(), [['ann', groupId], ['bob', groupId]], 'only the rooms asked for')
})
