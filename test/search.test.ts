import t from 'tap'
import { sql } from 'drizzle-orm'
import { connect, groupRoom, messagesOf, uid } from './fixtures/chat.js'
import { rest, scopeOf } from './fixtures/rooms.js'
import { onOneAndTwoNodes, type TestNode } from './fixtures/server.js'
import { eraseExpired } from '../plugins/messaging/retention.js'
import { ROOM_SCAN_MAX_EVENTS } from '../db/queries/message-search.js'

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
  // last_seq counts a room's events; past ROOM_SCAN_MAX_EVENTS the words are looked up in the GIN index.
  await scopeOf(nodeA).chatDb.execute(sql`update chat.rooms set last_seq = last_seq + ${ROOM_SCAN_MAX_EVENTS} where id = ${roomId}`)
  t.same(await answers(), scanned, 'the index finds the same messages in the same order')
})
