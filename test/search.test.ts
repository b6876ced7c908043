import t from 'tap'
import { sql } from 'drizzle-orm'
import { connect, groupRoom, messagesOf, uid } from './fixtures/chat.js'
import { rest, scopeOf, storeMessage } from './fixtures/rooms.js'
import { onOneAndTwoNodes, sharedServicesSkip, startCluster, type TestNode } from './fixtures/server.js'
import { until } from './fixtures/timing.js'
import { eraseExpired } from '../plugins/messaging/retention.js'
import { ROOM_SCAN_MAX_EVENTS } from '../db/queries/message-search.js'
import { rows } from '../db/client.js'

// Message search (protocol 11.6, issue 24): full-text search by PostgreSQL (PGlite too) over the caller's
// rooms, best rank first and newest first among equals, paged by an opaque cursor; deleted, erased and
// other people's messages are never found.

interface Msg { id: string, roomId: string, content: string, threadRootId?: string | null }
interface Page { messages: Msg[], nextCursor: string | null }

/** A word no other test writes, so that a shared database's other rows never match. */
function word (name: string): string {
  return `${name}${Math.random().toString(36).slice(2, 8)}`
}

async function send (person: { client: { ack: (event: string, data: unknown) => Promise<Record<string, unknown>> } }, roomId: string, content: string, extra: Record<string, unknown> = {}): Promise<Msg> {
  return (await person.client.ack('message.send', { roomId, content, ...extra }) as { message: Msg }).message
}

async function age (node: TestNode, messageId: string, days: number): Promise<void> {
  await scopeOf(node).chatDb.execute(sql`update chat.messages set created_at = now() - make_interval(days => ${days}) where id = ${messageId}`)
}

/** Waits until no change of these messages is left in the search indexer's queue (the node's indexer runs on its own). */
async function indexed (node: TestNode, ids: string[]): Promise<void> {
  const db = scopeOf(node).chatDb
  const list = sql.join(ids.map((id) => sql`${id}::uuid`), sql`, `)
  await until('the indexer has indexed them', async () =>
    rows<{ n: number }>(await db.execute(sql`select count(*)::int as n from chat.message_search_queue where message_id in (${list})`))[0]?.n === 0)
}

/** Makes a room big enough (by its last_seq, which counts its events) that it is searched through the GIN index. */
async function searchedByIndex (node: TestNode, roomId: string): Promise<void> {
  await scopeOf(node).chatDb.execute(sql`update chat.rooms set last_seq = last_seq + ${ROOM_SCAN_MAX_EVENTS} where id = ${roomId}`)
}

async function entryOf (node: TestNode, messageId: string): Promise<{ search: string | null } | undefined> {
  return rows<{ search: string | null }>(await scopeOf(node).chatDb.execute(sql`select search::text as search from chat.message_search where message_id = ${messageId}`))[0]
}

onOneAndTwoNodes(t, 'finds words in the caller\'s rooms only, ranked, paged, over WebSocket and REST', async (t, nodeA, nodeB) => {
  const alice = await connect(nodeA, uid('alice'))
  const bob = await connect(nodeB, uid('bob'))
  const eve = await connect(nodeB, uid('eve'))
  t.teardown(() => { alice.client.close(); bob.client.close(); eve.client.close() })
  const shared = await groupRoom(alice, [bob.id])
  const own = await groupRoom(alice, [])
  const elsewhere = await groupRoom(eve, [])
  const kiwi = word('kiwi')
  const once = await send(alice, shared, `a ${kiwi} for lunch`)
  const thrice = await send(alice, own, `${kiwi} ${kiwi} ${kiwi} all day`)
  await send(eve, elsewhere, `my own ${kiwi}`)
  await send(alice, shared, 'nothing to see')
  const root = await send(alice, shared, 'a question')
  await messagesOf(bob.client, shared, 3)
  const reply = await send(bob, shared, `the ${kiwi} answer`, { threadRootId: root.id })

  const found = await alice.client.ack('message.search', { query: kiwi }) as unknown as Page
  t.same(found.messages.map((message) => message.id), [thrice.id, reply.id, once.id], 'the word three times ranks first; then newest first; never eve\'s room')
  t.equal(found.nextCursor, null, 'one page holds them all')
  t.equal(found.messages[1]?.threadRootId, root.id, 'a thread reply is found with its root, to open the thread')
  const byBob = await rest(nodeB, bob.token, 'GET', `/api/search?query=${encodeURIComponent(kiwi.toUpperCase())}`)
  t.same((byBob.body as Page).messages.map((message) => message.id), [reply.id, once.id], 'REST, case-insensitive; bob sees only the room he shares')

  const inRoom = await alice.client.ack('message.search', { query: kiwi, roomId: own }) as unknown as Page
  t.same(inRoom.messages.map((message) => message.id), [thrice.id], 'roomId narrows to one room')
  t.equal((await bob.client.request('message.search', { query: kiwi, roomId: own })).error?.code, 'NOT_MEMBER', 'a room one is not in is refused')
  const phrase = await alice.client.ack('message.search', { query: `"${kiwi} answer" OR lunch -nothing` }) as unknown as Page
  t.same(phrase.messages.map((message) => message.id).sort(), [once.id, reply.id].sort(), 'web search syntax: a phrase, or, a word left out')

  const seen: string[] = []
  let cursor: string | null | undefined
  for (let page = 0; page < 5; page += 1) {
    const next = await alice.client.ack('message.search', { query: kiwi, limit: 1, ...(cursor === undefined ? {} : { cursor }) }) as unknown as Page
    seen.push(...next.messages.map((message) => message.id))
    cursor = next.nextCursor
    if (cursor === null) break
  }
  t.same(seen, [thrice.id, reply.id, once.id], 'paged one by one: the same order, each once, then a null cursor')

  t.equal((await alice.client.request('message.search', { query: '   ' })).error?.code, 'VALIDATION_FAILED', 'a blank query is refused')
  t.equal((await alice.client.request('message.search', { query: kiwi, cursor: 'bm90IGEgY3Vyc29y' })).error?.code, 'VALIDATION_FAILED', 'a cursor the server did not hand out is refused')
  t.equal((await rest(nodeA, alice.token, 'GET', '/api/search')).status, 400, 'REST needs a query')
  t.same((await alice.client.ack('message.search', { query: '!!! ???' }) as unknown as Page).messages, [], 'a query without words finds nothing')
})

onOneAndTwoNodes(t, 'edits are searched as they read now; deleted and retention-erased messages are never found', async (t, nodeA, nodeB) => {
  const alice = await connect(nodeA, uid('alice'))
  const bob = await connect(nodeB, uid('bob'))
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = await groupRoom(alice, [bob.id])
  const [before, after, gone, old] = [word('before'), word('after'), word('gone'), word('old')]
  const edited = await send(alice, roomId, `it was ${before}`)
  await alice.client.ack('message.edit', { messageId: edited.id, content: `it is ${after}` })
  const deleted = await send(alice, roomId, `soon ${gone}`)
  await alice.client.ack('message.delete', { messageId: deleted.id })
  const expired = await send(alice, roomId, `long ago ${old}`)
  await age(nodeA, expired.id, 40)
  t.equal(await eraseExpired(scopeOf(nodeA).chatDb, 30, 100) >= 1, true, 'retention erased the old message')

  const search = async (query: string): Promise<string[]> => ((await bob.client.ack('message.search', { query })) as unknown as Page).messages.map((message) => message.id)
  t.same(await search(after), [edited.id], 'found by its new words')
  t.same(await search(before), [], 'not by its old ones')
  t.same(await search(gone), [], 'a deleted message is not found')
  t.same(await search(old), [], 'an erased one neither')
})

onOneAndTwoNodes(t, 'another tenant\'s messages are never found', async (t, nodeA, nodeB) => {
  const word1 = word('secret')
  const ann = await connect(nodeA, uid('ann'), { tenant: 'acme' })
  const ben = await connect(nodeB, ann.id, { tenant: 'globex' })
  t.teardown(() => { ann.client.close(); ben.client.close() })
  const acmeRoom = await groupRoom(ann, [])
  await send(ann, acmeRoom, `the ${word1} plan`)
  t.equal(((await ann.client.ack('message.search', { query: word1 })) as unknown as Page).messages.length, 1, 'found in its own tenant')
  t.same(((await ben.client.ack('message.search', { query: word1 })) as unknown as Page).messages, [], 'the same user id in another tenant finds nothing')
  t.equal((await ben.client.request('message.search', { query: word1, roomId: acmeRoom })).error?.code, 'NOT_FOUND', 'and another tenant\'s room is NOT_FOUND')
})

onOneAndTwoNodes(t, 'rooms with many events are searched through the index, with the same answers', async (t, nodeA, nodeB) => {
  const alice = await connect(nodeA, uid('alice'))
  const bob = await connect(nodeB, uid('bob'))
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = await groupRoom(alice, [bob.id])
  const [plum, pear] = [word('plum'), word('pear')]
  const sent: Msg[] = []
  for (const content of [`${plum}`, `${plum} ${pear}`, `${pear} ${pear}`, `${plum} ${plum}`, 'neither']) sent.push(await send(alice, roomId, content))
  const queries = [plum, pear, `${plum} ${pear}`, `${plum} -${pear}`, `"${pear} ${pear}"`]
  const answers = async (): Promise<string[][]> => await Promise.all(queries.map(async (query) =>
    ((await bob.client.ack('message.search', { query, roomId })) as unknown as Page).messages.map((message) => message.id)))
  const scanned = await answers()
  t.same(scanned[0], [sent[3]?.id, sent[1]?.id, sent[0]?.id], 'read room by room: ranked, newest first among equals')
  // The room scan reads the messages themselves; the GIN plan reads what the indexer wrote.
  await indexed(nodeA, sent.map((message) => message.id))
  await searchedByIndex(nodeA, roomId)
  t.same(await answers(), scanned, 'the index finds the same messages in the same order')
})

onOneAndTwoNodes(t, 'through the index: found once indexed, an edit by its new words only, deletes and erasures never', async (t, nodeA, nodeB) => {
  const alice = await connect(nodeA, uid('alice'))
  const bob = await connect(nodeB, uid('bob'))
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = await groupRoom(alice, [bob.id])
  await searchedByIndex(nodeA, roomId)
  const [fresh, before, after, gone, old] = [word('fresh'), word('before'), word('after'), word('gone'), word('old')]
  const search = async (query: string): Promise<string[]> => ((await bob.client.ack('message.search', { query })) as unknown as Page).messages.map((message) => message.id)

  const found = await send(alice, roomId, `something ${fresh}`)
  const edited = await send(alice, roomId, `it was ${before}`)
  const deleted = await send(alice, roomId, `soon ${gone}`)
  const expired = await send(alice, roomId, `long ago ${old}`)
  await indexed(nodeA, [found.id, edited.id, deleted.id, expired.id])
  t.same(await search(fresh), [found.id], 'a message is found once the indexer has run')
  t.same(await search(before), [edited.id], 'and by its words before an edit')

  await alice.client.ack('message.edit', { messageId: edited.id, content: `it is ${after}` })
  t.same(await search(before), [], 'not by its old words once edited, even before it is indexed again')
  await indexed(nodeA, [edited.id])
  t.same(await search(after), [edited.id], 'by its new words once indexed again')
  t.same(await search(before), [], 'and still not by the old ones')

  t.same(await search(gone), [deleted.id], 'found before its delete')
  await alice.client.ack('message.delete', { messageId: deleted.id })
  t.same(await search(gone), [], 'not found once deleted, before the indexer runs')
  await age(nodeA, expired.id, 40)
  t.equal(await eraseExpired(scopeOf(nodeA).chatDb, 30, 100) >= 1, true, 'retention erased the old message')
  // Called here outside the retention plugin, whose sweep wakes the indexer itself.
  scopeOf(nodeA).chatSearchIndexer.wake()
  t.same(await search(old), [], 'nor once erased')
  await indexed(nodeA, [deleted.id, expired.id])
  t.same(await search(gone), [], 'a deleted message is not found after the indexer ran')
  t.same(await search(old), [], 'an erased one neither')
  t.same([await entryOf(nodeA, deleted.id), await entryOf(nodeA, expired.id)], [{ search: null }, { search: null }], 'their entries keep none of their words')
})

onOneAndTwoNodes(t, 'a deleted room takes its messages\' index entries with it', async (t, nodeA) => {
  const alice = await connect(nodeA, uid('alice'))
  t.teardown(() => { alice.client.close() })
  const roomId = await groupRoom(alice, [])
  const kept = await groupRoom(alice, [])
  const plum = word('plum')
  const sent = [await send(alice, roomId, `a ${plum}`), await send(alice, roomId, `two ${plum}s`)]
  const other = await send(alice, kept, `my ${plum} stays`)
  await indexed(nodeA, [...sent.map((message) => message.id), other.id])
  t.ok(await entryOf(nodeA, sent[0]?.id as string), 'indexed before the delete')
  await alice.client.ack('room.delete', { roomId })
  t.same(await Promise.all(sent.map(async (message) => await entryOf(nodeA, message.id))), [undefined, undefined], 'no entry left for the deleted room\'s messages')
  t.ok(await entryOf(nodeA, other.id), 'another room\'s entry stays')
})

/** Waits, generously, until `check` holds: a bound on a hang, not a measure of speed. */
async function soon (what: string, check: () => Promise<boolean>): Promise<void> {
  await until(what, check, { timeoutMs: 15_000, everyMs: 50 })
}

onOneAndTwoNodes(t, 'the indexer is woken by this node\'s writes: sends, edits, deletes and retention are indexed without its poll', async (t, nodeA, nodeB) => {
  const alice = await connect(nodeA, uid('alice'))
  const bob = await connect(nodeB, uid('bob'))
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = await groupRoom(alice, [bob.id])
  await searchedByIndex(nodeA, roomId)
  const [lime, after, old] = [word('lime'), word('after'), word('old')]
  const search = async (query: string): Promise<string[]> => ((await bob.client.ack('message.search', { query })) as unknown as Page).messages.map((message) => message.id)

  // The poll is an hour away (options below): within these waits only a wake runs the indexer.
  const sent = await send(alice, roomId, `a ${lime} please`)
  await soon('the sent message is found through the index', async () => (await search(lime)).length > 0)
  t.same(await search(lime), [sent.id], 'a sent message is indexed after the send batch\'s commit')
  await alice.client.ack('message.edit', { messageId: sent.id, content: `now ${after}` })
  await soon('the edit is found by its new words', async () => (await search(after)).length > 0)
  t.same(await search(after), [sent.id], 'an edit is indexed after its commit')
  await alice.client.ack('message.delete', { messageId: sent.id })
  await soon('the deleted message\'s entry loses its words', async () => (await entryOf(nodeA, sent.id))?.search === null)
  t.pass('a delete is indexed after its commit')

  const expired = await send(alice, roomId, `long ago ${old}`)
  await soon('the old message is indexed', async () => typeof (await entryOf(nodeA, expired.id))?.search === 'string')
  await age(nodeA, expired.id, 40)
  await soon('the erased message\'s entry loses its words', async () => (await entryOf(nodeA, expired.id))?.search === null)
  t.same(await search(old), [], 'retention\'s sweep (the plugin\'s, every 100 ms here) wakes the indexer too')
}, { options: { searchIndexPollMs: 3_600_000, retention: { maxAgeDays: 30, sweepMs: 100 } } })

onOneAndTwoNodes(t, 'changes queued by someone else (SQL outside the suite, a node that died) are indexed by the safety-net poll', async (t, nodeA, nodeB) => {
  const alice = await connect(nodeA, uid('alice'))
  const bob = await connect(nodeB, uid('bob'))
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = await groupRoom(alice, [bob.id])
  await searchedByIndex(nodeA, roomId)
  const db = scopeOf(nodeA).chatDb
  const [quince, after] = [word('quince'), word('after')]
  const search = async (query: string): Promise<string[]> => ((await bob.client.ack('message.search', { query })) as unknown as Page).messages.map((message) => message.id)

  // Written by SQL (as a host's INSERT): its trigger queues it, and nothing on any node wakes an indexer.
  const stored = await storeMessage(nodeA, roomId, alice.id, `a ${quince} by hand`)
  await soon('the message written by SQL is found through the index', async () => (await search(quince)).length > 0)
  t.same(await search(quince), [stored.id], 'an INSERT from outside is indexed by the poll')
  await db.execute(sql`update chat.messages set content = ${`now ${after}`}, edited_at = now() where id = ${stored.id}`)
  await soon('the edit by SQL is found by its new words', async () => (await search(after)).length > 0)
  t.same(await search(after), [stored.id], 'an UPDATE from outside too')

  // A node that queued a change and died before indexing it: its queue row waits for whoever polls.
  await db.execute(sql`delete from chat.message_search where message_id = ${stored.id}`)
  await db.execute(sql`insert into chat.message_search_queue (message_id) values (${stored.id})`)
  await soon('the queued row is indexed', async () => (await entryOf(nodeA, stored.id)) !== undefined)
  t.same(await search(after), [stored.id], 'a row left in the queue is indexed by the poll')
}, { options: { searchIndexPollMs: 200 } })

void t.test('two nodes share the index queue: a batch cut off by a dying connection goes back, nothing is lost or indexed twice', { skip: sharedServicesSkip() }, async (t) => {
  // A fresh database of this test's own: only these two nodes' indexers take from its queue.
  const [nodeA, nodeB] = await startCluster(t, 2) as [TestNode, TestNode]
  const alice = await connect(nodeA, uid('alice'))
  const bob = await connect(nodeB, uid('bob'))
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = await groupRoom(alice, [bob.id])
  await searchedByIndex(nodeA, roomId)
  const fig = word('fig')
  const db = scopeOf(nodeA).chatDb
  const indexedBy = async (node: TestNode): Promise<number> => (await scopeOf(node).chatMetrics.registry.getSingleMetric('chat_search_indexed_total')?.get())?.values[0]?.value ?? 0

  // A row lock on one entry stops the indexer that takes that message's next change at its write, after
  // it has taken its queue rows: mid-batch. The entry is then cut off as a node's death would cut it.
  const first = await send(alice, roomId, `${fig} to be edited`)
  await indexed(nodeA, [first.id])
  const grape = word('grape')
  let release = (): void => {}
  let lockHeld = (): void => {}
  const locked = new Promise<void>((resolve) => { lockHeld = resolve })
  const holder = db.transaction(async (tx) => {
    await tx.execute(sql`select 1 from chat.message_search where message_id = ${first.id} for update`)
    lockHeld()
    await new Promise<void>((resolve) => { release = resolve })
  })
  await locked
  await alice.client.ack('message.edit', { messageId: first.id, content: `${fig} now a ${grape}` })
  const sent = [first, ...await Promise.all(Array.from({ length: 40 }, async (_, i) => await send(i % 2 === 0 ? alice : bob, roomId, `${fig} number ${i}`)))]
  const stuck = sql`select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()
    and wait_event_type = 'Lock' and query like '%delete from chat.message_search_queue%'`
  await until('an indexer is stuck mid-batch', async () => rows(await db.execute(stuck)).length > 0)
  // What a node's death does to its batch: the connection goes, PostgreSQL rolls the statement back.
  const killed = rows<{ ok: boolean }>(await db.execute(sql`select pg_terminate_backend(s.pid) as ok from (${stuck}) s`))
  t.ok(killed.length > 0 && killed.every((row) => row.ok), 'the indexer stuck mid-batch is cut off')
  release()
  await holder

  await indexed(nodeA, sent.map((message) => message.id))
  const found = ((await bob.client.ack('message.search', { query: fig, limit: 50 })) as unknown as Page).messages.map((message) => message.id)
  t.same(found.sort(), sent.map((message) => message.id).sort(), 'every message is found through the index')
  t.same(((await bob.client.ack('message.search', { query: grape })) as unknown as Page).messages.map((message) => message.id), [first.id], 'the edit the cut-off batch held is indexed after all')
  const [all] = rows<{ messages: number, entries: number, queued: number }>(await db.execute(sql`select
    (select count(*)::int from chat.messages) as messages, (select count(*)::int from chat.message_search) as entries,
    (select count(*)::int from chat.message_search_queue) as queued`))
  t.same(all, { messages: all?.messages, entries: all?.messages, queued: 0 }, 'one entry per message, the queue empty')
  t.equal(await indexedBy(nodeA) + await indexedBy(nodeB), (all?.messages ?? 0) + 1, 'each queued change (the messages and the edit) counted once, by the indexer that committed it')
})
