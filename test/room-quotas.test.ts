import t from 'tap'
import { sql } from 'drizzle-orm'
import { rows } from '../db/client.js'
import { sharedServicesSkip, startCluster, startNode, type TestNode } from './fixtures/server.js'
import { connect, uid, type Person } from './fixtures/chat.js'
import { rest, scopeOf } from './fixtures/rooms.js'
import { TestClient, type Frame } from './fixtures/ws-client.js'

// Per-user quotas (protocol 11.2): room.create and dm.open together `quotas.roomsPerMinute` per user,
// whatever socket or REST call asks; no user in more than `quotas.maxRoomsPerUser` rooms, however they
// got there. Over either: QUOTA_EXCEEDED (429 over REST) with details.limit.

/** The rooms a user is a member of, counted in the database. */
async function roomsOf (node: TestNode, userId: string): Promise<number> {
  const result = await scopeOf(node).chatDb.execute(sql`select count(*)::int as n from chat.room_members where user_id = ${userId}`)
  return rows<{ n: number }>(result)[0]?.n ?? 0
}

function createFrom (client: TestClient, memberIds: string[]): Promise<Frame> {
  return client.request('room.create', { name: uid('room'), type: 'GROUP', memberIds })
}

t.test('the attack: one user on 5 sockets and REST, each room with the same victim, gets the minute\'s quota and no more', async (t) => {
  const node = await startNode(t)
  const api = node.app.chat.config.apiPrefix
  const limit = 30 // the default
  const victim = uid('victim')
  const attacker = await connect(node, uid('attacker'))
  const sockets = [attacker.client]
  for (let index = 1; index < 5; index += 1) sockets.push((await TestClient.session(node.wsUrl, attacker.token)).client)
  t.teardown(() => { for (const socket of sockets) socket.close() })

  const started = Date.now()
  // What a bucket of `limit` refilled at `limit` a minute can have handed out since the start.
  const allowance = (): number => limit + Math.floor((Date.now() - started) * limit / 60000)
  // 12 per socket stays inside the per-socket "other" bucket (30): only the user's quota can refuse.
  const perSocket = 12
  const [frames, replies] = await Promise.all([
    Promise.all(sockets.flatMap((socket) => Array.from({ length: perSocket }, async () => await createFrom(socket, [victim])))),
    Promise.all(Array.from({ length: perSocket }, async () => await rest(node, attacker.token, 'POST', `${api}/rooms`, { name: uid('room'), type: 'GROUP', memberIds: [victim] }))),
  ])
  const acked = frames.filter((frame) => frame.event === 'ack').length
  const created = replies.filter((reply) => reply.status === 201).length
  const total = acked + created
  t.ok(total >= limit, `the minute's ${limit} rooms are there (got ${total})`)
  // Refill is half a room a second: the attack's few seconds add a handful at most, never 5 × 30.
  t.ok(total <= allowance(), `at most the quota and its refill: ${total} of ${frames.length + replies.length}`)
  const refusedFrames = frames.filter((frame) => frame.event === 'error')
  t.ok(refusedFrames.length > 0, 'sockets were refused')
  for (const frame of refusedFrames) {
    t.match(frame.error, { code: 'QUOTA_EXCEEDED', details: { limit } }, 'a socket hears QUOTA_EXCEEDED with details.limit')
  }
  const refusedReplies = replies.filter((reply) => reply.status !== 201)
  for (const reply of refusedReplies) {
    t.equal(reply.status, 429)
    t.match(reply.body, { statusCode: 429, code: 'QUOTA_EXCEEDED', details: { limit } }, 'REST answers 429 QUOTA_EXCEEDED with details.limit')
  }
  t.equal(await roomsOf(node, victim), total, 'the victim is in exactly the rooms that were created')

  // A new socket of the same user is no way around it: the quota is the user's, not the socket's.
  for (const socket of sockets) socket.close()
  await Promise.all(sockets.map(async (socket) => await socket.closed))
  const again = await TestClient.session(node.wsUrl, attacker.token)
  t.teardown(() => again.client.close())
  const more = await Promise.all([
    ...Array.from({ length: 8 }, async () => await createFrom(again.client, [])),
    ...Array.from({ length: 4 }, async () => await again.client.request('dm.open', { userId: uid('peer') })),
  ])
  const moreAcked = more.filter((frame) => frame.event === 'ack').length
  t.ok(total + moreAcked <= allowance(), `a fresh socket gets only the refill since (${moreAcked}), room.create and dm.open together`)
  t.ok(more.some((frame) => frame.event === 'error'), 'and is refused after it')
  for (const frame of more.filter((one) => one.event === 'error')) t.match(frame.error, { code: 'QUOTA_EXCEEDED', details: { limit } })

  // Another user on the same node has a quota of their own.
  const bystander = await connect(node, uid('bystander'))
  t.teardown(() => bystander.client.close())
  t.equal((await createFrom(bystander.client, [victim])).event, 'ack', 'another user creates rooms as usual')

  const watcher = await TestClient.session(node.wsUrl, node.token(victim))
  t.teardown(() => watcher.client.close())
  t.equal((watcher.ready.data?.rooms as unknown[]).length, total + 1, 'the victim\'s session.ready lists only those rooms')
})

t.test('dm.open of an existing direct room is free; one that creates spends the quota', async (t) => {
  const node = await startNode(t, { options: { quotas: { roomsPerMinute: 3 } } })
  const api = node.app.chat.config.apiPrefix
  const alice = await connect(node, uid('alice'))
  const bob = await connect(node, uid('bob'))
  t.teardown(() => { alice.client.close(); bob.client.close() })

  const opened = await alice.client.ack('dm.open', { userId: bob.id })
  const roomId = (opened.room as { id: string }).id
  t.equal((await createFrom(alice.client, [])).event, 'ack')
  t.equal((await createFrom(alice.client, [])).event, 'ack', 'three rooms made: the quota is spent')
  t.match((await createFrom(alice.client, [])).error, { code: 'QUOTA_EXCEEDED', details: { limit: 3 } })

  for (let index = 0; index < 5; index += 1) {
    const again = await alice.client.ack('dm.open', { userId: bob.id })
    t.equal((again.room as { id: string }).id, roomId, 'the existing direct room, free')
  }
  const overRest = await rest(node, alice.token, 'POST', `${api}/direct/${bob.id}`)
  t.equal(overRest.status, 200, 'REST: the existing room (200), not refused')
  t.equal(overRest.body.room.id, roomId)
  t.match((await alice.client.request('dm.open', { userId: uid('carol') })).error, { code: 'QUOTA_EXCEEDED', details: { limit: 3 } }, 'a new direct room is refused')
  const newOverRest = await rest(node, alice.token, 'POST', `${api}/direct/${uid('dave')}`)
  t.equal(newOverRest.status, 429)
  t.match(newOverRest.body, { code: 'QUOTA_EXCEEDED', details: { limit: 3 } })

  t.equal((await bob.client.ack('dm.open', { userId: alice.id }).then((ack) => (ack.room as { id: string }).id)), roomId, 'the peer opens it too')
})

t.test('the member cap: a victim added by others, by room.create, member add, dm.open or their own join, stops at maxRoomsPerUser', async (t) => {
  const cap = 3
  const node = await startNode(t, { options: { quotas: { maxRoomsPerUser: cap, roomsPerMinute: 1000 } } })
  const api = node.app.chat.config.apiPrefix
  const victim = await connect(node, uid('victim'))
  const [mallory, trent] = await Promise.all([connect(node, uid('mallory')), connect(node, uid('trent'))])
  t.teardown(() => { for (const one of [victim, mallory, trent]) one.client.close() })

  for (let index = 0; index < cap; index += 1) t.equal((await createFrom(mallory.client, [victim.id])).event, 'ack')
  t.equal(await roomsOf(node, victim.id), cap)

  const byCreate = await createFrom(trent.client, [victim.id])
  t.match(byCreate.error, { code: 'QUOTA_EXCEEDED', details: { limit: cap, userIds: [victim.id] } }, 'room.create with the victim in memberIds is refused')
  const emptyRoom = await trent.client.ack('room.create', { name: uid('room'), type: 'GROUP' })
  const roomId = (emptyRoom.room as { id: string }).id
  t.match((await trent.client.request('room.member.add', { roomId, userIds: [victim.id] })).error, { code: 'QUOTA_EXCEEDED', details: { limit: cap } }, 'member add is refused')
  const restAdd = await rest(node, trent.token, 'POST', `${api}/rooms/${roomId}/members`, { userIds: [victim.id] })
  t.equal(restAdd.status, 429)
  t.match(restAdd.body, { code: 'QUOTA_EXCEEDED', details: { limit: cap, userIds: [victim.id] } })
  t.match((await trent.client.request('dm.open', { userId: victim.id })).error, { code: 'QUOTA_EXCEEDED' }, 'dm.open with the victim is refused')
  t.match((await victim.client.request('room.join', { roomId })).error, { code: 'QUOTA_EXCEEDED' }, 'the victim\'s own join is refused')
  t.match((await createFrom(victim.client, [])).error, { code: 'QUOTA_EXCEEDED' }, 'so is the victim\'s own room.create')
  t.equal(await roomsOf(node, victim.id), cap, 'still at the cap')
  t.equal(await roomsOf(node, trent.id), 1, 'no room row was left behind by a refused create or dm.open')

  // Others in the same request are not the refused user: adding someone else works.
  const other = uid('other')
  t.equal(((await trent.client.ack('room.member.add', { roomId, userIds: [other] })).members as unknown[]).length, 1)

  // Leaving a room frees a place.
  const [first] = rows<{ room_id: string }>(await scopeOf(node).chatDb.execute(sql`select room_id from chat.room_members where user_id = ${victim.id} limit 1`))
  await victim.client.ack('room.leave', { roomId: first?.room_id })
  t.equal(((await trent.client.ack('room.member.add', { roomId, userIds: [victim.id] })).members as unknown[]).length, 1, 'added again after leaving one')
  t.equal(await roomsOf(node, victim.id), cap)
})

t.test('the member cap counts the rooms of the user\'s tenant: the same sub in another tenant is another user', async (t) => {
  const cap = 2
  const node = await startNode(t, { options: { quotas: { maxRoomsPerUser: cap, roomsPerMinute: 1000 } } })
  // Never seen by the server, so either tenant may add them (a user who connected belongs to one tenant).
  const sub = uid('sam')
  const [ownerThere, ownerHere] = await Promise.all([connect(node, uid('boss'), { tenant: 'b' }), connect(node, uid('boss'))])
  t.teardown(() => { for (const one of [ownerThere, ownerHere]) one.client.close() })
  for (let index = 0; index < cap; index += 1) t.equal((await createFrom(ownerThere.client, [sub])).event, 'ack', 'tenant b')
  t.match((await createFrom(ownerThere.client, [sub])).error, { code: 'QUOTA_EXCEEDED', details: { limit: cap } }, 'at the cap in tenant b')
  for (let index = 0; index < cap; index += 1) t.equal((await createFrom(ownerHere.client, [sub])).event, 'ack', 'the default tenant has its own count')
  t.match((await createFrom(ownerHere.client, [sub])).error, { code: 'QUOTA_EXCEEDED', details: { limit: cap } }, 'and its own cap')
})

t.test('the member cap holds under concurrent writers on two nodes', { skip: sharedServicesSkip() }, async (t) => {
  const cap = 5
  const [a, b] = await startCluster(t, 2, { options: { quotas: { maxRoomsPerUser: cap, roomsPerMinute: 1000 } } }) as [TestNode, TestNode]
  const victim = uid('victim')
  const attackers: Person[] = await Promise.all([connect(a, uid('m1')), connect(b, uid('m2')), connect(a, uid('m3')), connect(b, uid('m4'))])
  t.teardown(() => { for (const one of attackers) one.client.close() })
  const frames = await Promise.all(attackers.flatMap((attacker) => Array.from({ length: 6 }, async () => await createFrom(attacker.client, [victim]))))
  t.equal(frames.filter((frame) => frame.event === 'ack').length, cap, 'exactly the cap succeeded across both nodes')
  for (const frame of frames.filter((one) => one.event === 'error')) t.match(frame.error, { code: 'QUOTA_EXCEEDED', details: { limit: cap } })
  t.equal(await roomsOf(a, victim), cap, 'the victim is in exactly cap rooms')
})

t.test('quotas are validated at registration', async (t) => {
  t.same((await startNode(t, { redis: null })).app.chat.config.quotas, { roomsPerMinute: 30, maxRoomsPerUser: 5000 }, 'the defaults')
  await t.rejects(startNode(t, { options: { quotas: { roomsPerMinute: 0 } } }), /invalid option "quotas.roomsPerMinute"/)
  await t.rejects(startNode(t, { options: { quotas: { maxRoomsPerUser: 1.5 } } }), /invalid option "quotas.maxRoomsPerUser"/)
  await t.rejects(startNode(t, { options: { quotas: { perHour: 1 } as never } }), /invalid option/)
})
