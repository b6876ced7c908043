import t from 'tap'
import { startNode } from './fixtures/server.js'
import { countQueries, scopeOf } from './fixtures/rooms.js'
import { connect, uid } from './fixtures/chat.js'
import { hydrate, messagesByIds } from '../db/queries/message-reader.js'
import type { ChatUser } from '../plugins/realtime/connection.js'

// The statements a reconnect costs (issue 25): the hydration of a sync's messages is one statement
// whatever the messages carry, the syncs of one turn share their reads, and the last-seen stamps of one
// turn (a node's sweep of a dead node's users) are one upsert. The answers stay those of the statements
// they replace.

const node = await startNode(t, {})

t.test('hydration: sender, reply, reactions and thread summary in one statement', async (t) => {
  const alice = await connect(node, uid('alice'), { name: 'Alice A' })
  const bob = await connect(node, uid('bob'), { name: 'Bob B' })
  t.teardown(() => { alice.client.close(); bob.client.close() })
  const roomId = ((await alice.client.ack('room.create', { name: 'hydrate', type: 'GROUP', memberIds: [bob.id] })).room as { id: string }).id
  const send = async (person: typeof alice, data: Record<string, unknown>): Promise<{ id: string }> =>
    (await person.client.ack('message.send', { roomId, ...data })).message as { id: string }
  const root = await send(alice, { content: 'root' })
  const reply = await send(bob, { content: 'a reply to root', replyToId: root.id })
  await send(bob, { content: 'in the thread', threadRootId: root.id })
  await send(alice, { content: 'also in the thread', threadRootId: root.id })
  await bob.client.ack('reaction.add', { messageId: root.id, emoji: '👍' })
  await alice.client.ack('reaction.add', { messageId: root.id, emoji: '👍' })
  await alice.client.ack('reaction.add', { messageId: root.id, emoji: '🎉' })

  const db = scopeOf(node).chatDb
  const rows = await messagesByIds(db, [root.id, reply.id])
  const counter = countQueries(node)
  t.teardown(() => counter.stop())
  const hydrated = await counter.run(async () => await hydrate(db, rows))
  t.equal(counter.count, 1, 'one statement')
  const byId = new Map(hydrated.map((message) => [message.id, message]))
  const rootMessage = byId.get(root.id)
  const replyMessage = byId.get(reply.id)
  t.equal(rootMessage?.sender.name, 'Alice A', 'the root\'s sender, by the room\'s tenant')
  t.same(rootMessage?.reactions, [{ emoji: '👍', count: 2, userIds: [bob.id, alice.id] }, { emoji: '🎉', count: 1, userIds: [alice.id] }], 'reactions grouped in the order given')
  t.equal(rootMessage?.thread?.replyCount, 2, 'the root\'s thread summary counts its replies')
  t.same(rootMessage?.thread?.participantIds, [bob.id, alice.id], 'thread participants in the order they replied')
  t.equal(replyMessage?.sender.name, 'Bob B', 'the reply\'s sender')
  t.same(replyMessage?.replyTo, { id: root.id, seq: rootMessage?.seq, senderId: alice.id, excerpt: 'root' }, 'the replied-to message')
  t.equal(replyMessage?.thread ?? null, null, 'a message without replies in a thread has no thread summary')
  t.same(replyMessage?.reactions, [], 'no reactions')
})

/**
 * Two rooms made through the service by an owner with no socket (a socket's presence flush would read its
 * user's rooms in a batch of its own): one with bob and carol, one with bob only.
 */
async function twoRoomsOfAnOwner (tag: string): Promise<{ owner: ChatUser, bobId: string, carolId: string, both: string, bobs: string }> {
  const rooms = scopeOf(node).chatRooms
  const owner: ChatUser = { id: uid('alice'), tenant: '', name: 'Alice', avatar: null, roles: [], permissions: [], exp: null }
  await scopeOf(node).chatUsers.remember(owner)
  const bobId = uid('bob')
  const carolId = uid('carol')
  const create = async (name: string, memberIds: string[]): Promise<string> =>
    (await rooms.create({ user: owner }, { name, type: 'GROUP', memberIds })).id
  return { owner, bobId, carolId, both: await create(`${tag} both`, [bobId, carolId]), bobs: await create(`${tag} bob only`, [bobId]) }
}

t.test('users\' rooms missed in one turn: one statement, each user (and tenant) its own answer', async (t) => {
  // A socket's presence flush would read its user's rooms in a batch of its own, and the counted loads
  // would then wait for that batch and leave from its context, uncounted. The cache is emptied so that
  // all four are misses.
  const rooms = scopeOf(node).chatRooms
  const { bobId, carolId, both, bobs } = await twoRoomsOfAnOwner('users')
  rooms.cache.clear()
  const counter = countQueries(node)
  t.teardown(() => counter.stop())
  const [bob, carol, bobElsewhere, nobody] = await counter.run(async () => await Promise.all([
    rooms.roomIdsOf({ id: bobId, tenant: '' }),
    rooms.roomIdsOf({ id: carolId, tenant: '' }),
    // The same sub in another tenant is another user, in none of these rooms.
    rooms.roomIdsOf({ id: bobId, tenant: 'elsewhere' }),
    rooms.roomIdsOf({ id: uid('nobody'), tenant: '' }),
  ]))
  t.equal(counter.count, 1, 'one statement for four misses')
  t.same([...(bob ?? [])].sort(), [both, bobs].sort())
  t.same(carol, [both])
  t.same(bobElsewhere, [])
  t.same(nobody, [])
})

t.test('rooms\' entries missed in one turn: one statement, each room its members, roles and mutes; a malformed id is no room', async (t) => {
  const rooms = scopeOf(node).chatRooms
  const { owner, bobId, carolId, both, bobs } = await twoRoomsOfAnOwner('entries')
  await rooms.setRole({ user: owner }, both, bobId, 'MODERATOR')
  const before = Date.now()
  await rooms.mute({ user: owner }, both, carolId, { durationSec: 600 })
  rooms.cache.clear()
  const counter = countQueries(node)
  t.teardown(() => counter.stop())
  const [first, second, upper, malformed, unknown] = await counter.run(async () => await Promise.all([
    rooms.cache.room(both),
    rooms.cache.room(bobs),
    rooms.cache.room(bobs.toUpperCase()),
    rooms.cache.room('not-a-uuid'),
    rooms.cache.room('00000000-0000-4000-8000-000000000000'),
  ]))
  t.equal(counter.count, 1, 'one statement for five misses')
  t.same(Object.fromEntries(first?.members ?? []), { [owner.id]: 'OWNER', [bobId]: 'MODERATOR', [carolId]: 'MEMBER' }, 'every member with their role')
  t.equal(first?.room.id, both)
  t.equal(first?.room.type, 'GROUP')
  const mutedUntil = first?.muted.get(carolId) ?? 0
  t.ok(mutedUntil >= before + 599_000 && mutedUntil <= Date.now() + 600_000, 'the mute\'s end in epoch ms')
  t.ok(Number.isInteger(mutedUntil), 'whole milliseconds')
  t.equal(first?.muted.size, 1, 'only the muted member')
  t.same([...(second?.members.keys() ?? [])].sort(), [owner.id, bobId].sort())
  t.equal(upper?.room.id, bobs, 'an id in capitals is the same room')
  t.equal(malformed, null, 'a malformed id is no room, and fails no other room of the batch')
  t.equal(unknown, null, 'an unknown room is none')
})

t.test('session reads bind their ids as one array: subs with quotes, backslashes, commas and braces read their own rooms', async (t) => {
  const odd = [`q"uote${uid('')}`, `back\\slash${uid('')}`, `com,ma {brace} ${uid('')}`, `NULL`]
  const alice = await connect(node, uid('alice'))
  t.teardown(() => { alice.client.close() })
  const roomId = ((await alice.client.ack('room.create', { name: 'odd subs', type: 'GROUP', memberIds: odd })).room as { id: string }).id
  const sessions = await Promise.all(odd.map(async (id) => await connect(node, id)))
  t.teardown(() => { for (const person of sessions) person.client.close() })
  for (const [index, person] of sessions.entries()) {
    const rooms = ((person.ready.data as { rooms: Array<{ id: string }> }).rooms).map((room) => room.id)
    t.same(rooms, [roomId], `${odd[index] as string}: its room, in session.ready`)
  }
})

t.test('last-seen stamps of one turn: one upsert, and a user stamped twice keeps the later time', async (t) => {
  const users = scopeOf(node).chatUsers
  const ids = [uid('gone'), uid('gone'), uid('gone')]
  const early = new Date('2026-01-01T00:00:00.000Z')
  const late = new Date('2026-01-02T00:00:00.000Z')
  const counter = countQueries(node)
  t.teardown(() => counter.stop())
  await counter.run(async () => {
    await Promise.all([
      ...ids.map(async (id) => { await users.touchLastSeen({ id, tenant: '' }, early) }),
      users.touchLastSeen({ id: ids[0] as string, tenant: '' }, late),
      // The same sub in another tenant is another user: its own row.
      users.touchLastSeen({ id: ids[0] as string, tenant: 'other' }, late),
    ])
  })
  t.equal(counter.count, 1, 'one statement for the turn')
  const profiles = await users.profiles('', ids)
  t.same(ids.map((id) => profiles.get(id)?.lastSeen), [late.toISOString(), early.toISOString(), early.toISOString()], 'each user\'s stamp; the later of two')
  t.equal((await users.profiles('other', [ids[0] as string])).get(ids[0] as string)?.lastSeen, late.toISOString(), 'the other tenant\'s row')
})

t.test('syncs of one turn: each distinct read once, each sync its own answer', async (t) => {
  const alice = await connect(node, uid('alice'))
  const bob = await connect(node, uid('bob'))
  const carol = await connect(node, uid('carol'))
  t.teardown(() => { for (const one of [alice, bob, carol]) one.client.close() })
  const roomId = ((await alice.client.ack('room.create', { name: 'storm', type: 'GROUP', memberIds: [bob.id, carol.id] })).room as { id: string }).id
  for (const content of ['one', 'two', 'three']) await alice.client.ack('message.send', { roomId, content })
  const sync = scopeOf(node).chatMessaging.sync
  const users: ChatUser[] = [alice, bob, carol].map((person) => ({ id: person.id, tenant: '', name: null, avatar: null, roles: [], permissions: [], exp: null }))
  const cursors = [[{ roomId, seq: 0 }], [{ roomId, seq: 0 }], [{ roomId, seq: 1 }]]
  // Alone first: the answers to compare with, and the membership cache warm (no read of it below).
  const alone = []
  for (const [index, user] of users.entries()) alone.push(await sync(user, cursors[index] ?? []))
  const counter = countQueries(node)
  t.teardown(() => counter.stop())
  const together = await counter.run(async () => await Promise.all(users.map(async (user, index) => await sync(user, cursors[index] ?? []))))
  t.same(together, alone, 'the same answers as one sync at a time')
  t.same(together[2]?.rooms[0]?.events.map((event) => (event.data as { message: { content: string } }).message.content), ['two', 'three'], 'the later cursor: its own events')
  // One heads read; the two cursors of the room are two reads (the events, the messages and their
  // hydration in one statement each), where one sync at a time took two statements each.
  t.equal(counter.count, 3, 'one heads read and two distinct log reads of one statement each')
})
