import t from 'tap'
import { startNode } from './fixtures/server.js'
import { countQueries, memberRows, peopleOn, receives, scopeOf, storeMessage } from './fixtures/rooms.js'
import { type Person, uid } from './fixtures/chat.js'
import { type Frame, TestClient } from './fixtures/ws-client.js'

// The rules of the rooms concern over WebSocket, on one node. REST: rooms-rest.test.ts; several nodes:
// rooms-cluster.test.ts; session.ready: rooms-session.test.ts.
const node = await startNode(t)

const { people, closeAll } = peopleOn(node)

async function createRoom (owner: Person, data: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const ack = await owner.client.ack('room.create', { name: 'room', type: 'GROUP', ...data })
  return ack.room as Record<string, any>
}

function errorCode (reply: Frame): string | undefined {
  return reply.event === 'error' ? reply.error?.code : `ack:${JSON.stringify(reply.data)}`
}

t.test('room.create: the creator is OWNER, initial members MEMBER, lastSeq 0; room.added to every socket but the creating one', async (t) => {
  const [alice, bob] = await people('alice', 'bob')
  const aliceSecond = await TestClient.session(node.wsUrl, alice.token)
  const bobSecond = await TestClient.session(node.wsUrl, bob.token)
  const room = await createRoom(alice, { name: '  general  ', description: 'talk', memberIds: [bob.id, bob.id, alice.id], isPrivate: true, maxMembers: 10 })
  t.match(room, { type: 'GROUP', name: 'general', description: 'talk', isPrivate: true, maxMembers: 10, myRole: 'OWNER', memberCount: 2, lastSeq: 0, lastReadSeq: 0, unreadCount: 0, lastMessage: null, createdBy: alice.id })
  for (const client of [bob.client, bobSecond.client]) {
    const added = await client.next((frame) => frame.event === 'room.added')
    t.match(added.data?.room, { id: room.id, myRole: 'MEMBER', lastSeq: 0, lastReadSeq: 0 }, 'each socket of the member hears room.added')
  }
  t.match((await aliceSecond.client.next((frame) => frame.event === 'room.added')).data?.room, { id: room.id, myRole: 'OWNER' }, "the creator's other socket too")
  t.notOk(await receives(alice.client, 'room.added'), 'the creating socket has the ack instead')
  const members = await alice.client.ack('room.members', { roomId: room.id })
  t.same((members.members as Array<{ user: { id: string }, role: string }>).map((member) => [member.user.id, member.role]).sort(),
    [[alice.id, 'OWNER'], [bob.id, 'MEMBER']].sort())
  closeAll(alice, bob)
  aliceSecond.client.close()
  bobSecond.client.close()
})

t.test('room.create refuses bad input with VALIDATION_FAILED', async (t) => {
  const [alice] = await people('alice')
  const cases: Array<[string, Record<string, unknown>]> = [
    ['DIRECT is opened with dm.open', { name: 'x', type: 'DIRECT' }],
    ['unknown type', { name: 'x', type: 'CHAT' }],
    ['name over 100 characters', { name: 'n'.repeat(101), type: 'GROUP' }],
    ['blank name', { name: '   ', type: 'GROUP' }],
    ['description over 1000 characters', { name: 'x', type: 'GROUP', description: 'd'.repeat(1001) }],
    ['more initial members than maxMembers', { name: 'x', type: 'GROUP', maxMembers: 2, memberIds: ['u1', 'u2'] }],
    ['a user id over 128 characters', { name: 'x', type: 'GROUP', memberIds: ['u'.repeat(129)] }],
    ['an unknown field', { name: 'x', type: 'GROUP', color: 'red' }],
  ]
  for (const [label, data] of cases) t.equal(errorCode(await alice.client.request('room.create', data)), 'VALIDATION_FAILED', label)
  t.equal(errorCode(await alice.client.request('room.join', { roomId: 'not-a-uuid' })), 'VALIDATION_FAILED', 'a malformed room id is refused before any query')
  t.equal(errorCode(await alice.client.request('room.join', { roomId: '00000000-0000-4000-8000-000000000000' })), 'NOT_FOUND', 'an unknown room')
  closeAll(alice)
})

t.test('member events take the room\'s next seqs: 1, 2, 3, … without gaps', async (t) => {
  const [owner, joiner, invitee1, invitee2] = await people('owner', 'joiner', 'inv', 'inv')
  const room = await createRoom(owner)
  const join = await joiner.client.ack('room.join', { roomId: room.id })
  t.equal((join.room as { lastReadSeq: number }).lastReadSeq, 1, 'a new member has read up to their join')
  await owner.client.ack('room.member.add', { roomId: room.id, userIds: [invitee1.id, invitee2.id] })
  await owner.client.ack('room.member.role', { roomId: room.id, userId: joiner.id, role: 'MODERATOR' })
  await owner.client.ack('room.update', { roomId: room.id, name: 'renamed' })
  await joiner.client.ack('room.member.remove', { roomId: room.id, userId: invitee1.id })
  await invitee2.client.ack('room.leave', { roomId: room.id })
  const expected = ['room.member_joined', 'room.member_joined', 'room.member_joined', 'room.member_updated', 'room.updated', 'room.member_left', 'room.member_left']
  const seen: Frame[] = []
  for (let index = 0; index < expected.length; index += 1) {
    seen.push(await owner.client.next((frame) => frame.data?.roomId === room.id && typeof frame.data?.seq === 'number'))
  }
  t.same(seen.map((frame) => frame.event), expected)
  t.same(seen.map((frame) => frame.data?.seq), [1, 2, 3, 4, 5, 6, 7])
  t.match(seen[0]?.data, { user: { id: joiner.id, name: 'Joiner' + joiner.id.slice(6) }, role: 'MEMBER' })
  t.match(seen[3]?.data, { member: { user: { id: joiner.id }, role: 'MODERATOR' } })
  t.match(seen[4]?.data, { room: { id: room.id, name: 'renamed', lastSeq: 5 } })
  t.match(seen[5]?.data, { userId: invitee1.id, by: joiner.id })
  t.match(seen[6]?.data, { userId: invitee2.id })
  t.notOk('by' in (seen[6]?.data ?? {}), 'leaving is not a kick')
  // The durable log holds the same events, so sync replays what was pushed.
  const stored = await scopeOf(node).chatRoomLog.eventsAfter(room.id, 0, 100)
  t.same(stored.map((event) => [event.seq, event.event]), expected.map((event, index) => [index + 1, event]))
  const get = await owner.client.ack('room.join', { roomId: room.id })
  t.equal((get.room as { lastSeq: number }).lastSeq, 7)
  closeAll(owner, joiner, invitee1, invitee2)
})

t.test('new members are subscribed: the joiner and an invitee hear their own member_joined and what follows', async (t) => {
  const [owner, joiner, invitee] = await people('owner', 'joiner', 'inv')
  const joinerSecond = await TestClient.session(node.wsUrl, joiner.token)
  const room = await createRoom(owner)
  await joiner.client.ack('room.join', { roomId: room.id })
  t.match((await joiner.client.next((frame) => frame.event === 'room.member_joined')).data, { roomId: room.id, seq: 1, user: { id: joiner.id } })
  const added = await joinerSecond.client.next((frame) => frame.event === 'room.added')
  t.match(added.data?.room, { id: room.id, lastSeq: 1, lastReadSeq: 1, myRole: 'MEMBER' }, 'the joiner\'s other socket gets room.added')
  t.match((await joinerSecond.client.next((frame) => frame.event === 'room.member_joined')).data, { seq: 1 }, 'room.added comes before member_joined')
  await owner.client.ack('room.member.add', { roomId: room.id, userIds: [invitee.id] })
  t.match((await invitee.client.next((frame) => frame.event === 'room.added')).data?.room, { id: room.id, lastSeq: 2, lastReadSeq: 2 })
  t.match((await invitee.client.next((frame) => frame.event === 'room.member_joined')).data, { seq: 2, user: { id: invitee.id } })
  await owner.client.ack('room.update', { roomId: room.id, description: 'now with all of us' })
  for (const client of [joiner.client, joinerSecond.client, invitee.client]) {
    t.match((await client.next((frame) => frame.event === 'room.updated')).data, { seq: 3, room: { description: 'now with all of us' } })
  }
  const again = await joiner.client.ack('room.join', { roomId: room.id })
  t.equal((again.room as { lastSeq: number }).lastSeq, 3, 'joining again is idempotent')
  t.notOk(await receives(owner.client, 'room.member_joined', (data) => data.seq === 4), 'and takes no seq')
  closeAll(owner, joiner, invitee)
  joinerSecond.client.close()
})

t.test('private rooms admit by invitation only; DIRECT rooms admit no one', async (t) => {
  const [owner, outsider, guest] = await people('owner', 'outsider', 'guest')
  const room = await createRoom(owner, { isPrivate: true })
  t.equal(errorCode(await outsider.client.request('room.join', { roomId: room.id })), 'FORBIDDEN', 'joining a private room')
  t.equal(errorCode(await outsider.client.request('room.members', { roomId: room.id })), 'NOT_MEMBER', 'reading it')
  t.equal(errorCode(await outsider.client.request('room.member.add', { roomId: room.id, userIds: [outsider.id] })), 'NOT_MEMBER', 'inviting oneself')
  const added = await owner.client.ack('room.member.add', { roomId: room.id, userIds: [guest.id] })
  t.same((added.members as Array<{ user: { id: string } }>).map((member) => member.user.id), [guest.id], 'the invitation is the way in')
  t.equal(errorCode(await guest.client.request('room.member.add', { roomId: room.id, userIds: [outsider.id] })), 'FORBIDDEN', 'a MEMBER cannot invite')
  await owner.client.ack('room.member.role', { roomId: room.id, userId: guest.id, role: 'MODERATOR' })
  await guest.client.ack('room.member.add', { roomId: room.id, userIds: [outsider.id] })
  t.ok(await receives(outsider.client, 'room.added', (data) => (data.room as { id: string }).id === room.id, 2000), 'a MODERATOR can invite')
  const again = await owner.client.ack('room.member.add', { roomId: room.id, userIds: [outsider.id, guest.id] })
  t.same(again.members, [], 'adding members again adds no one')

  const dm = (await owner.client.ack('dm.open', { userId: outsider.id })).room as { id: string }
  t.equal(errorCode(await guest.client.request('room.join', { roomId: dm.id })), 'FORBIDDEN', 'joining a DIRECT room')
  t.equal(errorCode(await owner.client.request('room.member.add', { roomId: dm.id, userIds: [guest.id] })), 'FORBIDDEN', 'adding to a DIRECT room')
  t.equal(errorCode(await owner.client.request('room.leave', { roomId: dm.id })), 'FORBIDDEN', 'leaving a DIRECT room')
  t.equal(errorCode(await owner.client.request('room.member.remove', { roomId: dm.id, userId: outsider.id })), 'FORBIDDEN', 'kicking from a DIRECT room')
  t.equal(errorCode(await owner.client.request('room.update', { roomId: dm.id, name: 'x' })), 'FORBIDDEN', 'renaming a DIRECT room')
  t.equal(errorCode(await owner.client.request('room.delete', { roomId: dm.id })), 'FORBIDDEN', 'deleting a DIRECT room')
  t.equal(errorCode(await owner.client.request('room.member.role', { roomId: dm.id, userId: outsider.id, role: 'ADMIN' })), 'FORBIDDEN', 'roles in a DIRECT room')
  t.same((await memberRows(node, dm.id)), { count: 2, memberCount: 2 }, 'exactly two members')
  closeAll(owner, outsider, guest)
})

t.test('dm.open: one room per pair, whoever opens it, also when both open it at once', async (t) => {
  const [alice, bob] = await people('alice', 'bob')
  const [fromAlice, fromBob] = await Promise.all([
    alice.client.ack('dm.open', { userId: bob.id }),
    bob.client.ack('dm.open', { userId: alice.id }),
  ])
  const roomA = fromAlice.room as Record<string, any>
  const roomB = fromBob.room as Record<string, any>
  t.equal(roomA.id, roomB.id, 'both sockets got the same room')
  t.match(roomA, { type: 'DIRECT', name: 'Bob' + bob.id.slice(3), peerId: bob.id, memberCount: 2, lastSeq: 0, myRole: 'MEMBER' })
  t.match(roomB, { name: 'Alice' + alice.id.slice(5), peerId: alice.id })
  const count = await scopeOf(node).chatDb.execute(
    (await import('drizzle-orm')).sql`select count(*)::int as n from chat.rooms where type = 'DIRECT' and created_by in (${alice.id}, ${bob.id})`)
  const rows = Array.isArray(count) ? count : (count as unknown as { rows: Array<{ n: number }> }).rows
  t.equal((rows[0] as { n: number }).n, 1, 'one row in the database')
  const later = await alice.client.ack('dm.open', { userId: bob.id })
  t.equal((later.room as { id: string }).id, roomA.id, 'opening it again finds it')
  t.equal(errorCode(await alice.client.request('dm.open', { userId: alice.id })), 'VALIDATION_FAILED', 'not with yourself')
  closeAll(alice, bob)
})

t.test('dm.open pushes room.added to the other user', async (t) => {
  const [alice, bob] = await people('alice', 'bob')
  const room = (await alice.client.ack('dm.open', { userId: bob.id })).room as { id: string }
  const added = await bob.client.next((frame) => frame.event === 'room.added')
  t.match(added.data?.room, { id: room.id, type: 'DIRECT', peerId: alice.id, name: 'Alice' + alice.id.slice(5) })
  closeAll(alice, bob)
})

t.test('5 concurrent joins into maxMembers 3 leave exactly 3 members', async (t) => {
  const [owner] = await people('owner')
  const joiners = await people('j', 'j', 'j', 'j', 'j')
  const room = await createRoom(owner, { maxMembers: 3 })
  const replies = await Promise.all(joiners.map((joiner) => joiner.client.request('room.join', { roomId: room.id })))
  const codes = replies.map((reply) => reply.event === 'ack' ? 'ack' : reply.error?.code)
  t.equal(codes.filter((code) => code === 'ack').length, 2, 'two joined next to the owner')
  t.equal(codes.filter((code) => code === 'ROOM_FULL').length, 3, 'the others heard ROOM_FULL')
  t.same(await memberRows(node, room.id), { count: 3, memberCount: 3 })
  const members = await owner.client.ack('room.members', { roomId: room.id })
  t.equal((members.members as unknown[]).length, 3)
  const seqs: number[] = []
  for (let index = 0; index < 2; index += 1) seqs.push((await owner.client.next((frame) => frame.event === 'room.member_joined')).data?.seq as number)
  t.same(seqs.sort(), [1, 2], 'refused joins took no seq')
  t.equal(errorCode(await owner.client.request('room.member.add', { roomId: room.id, userIds: [uid('late')] })), 'ROOM_FULL', 'adding is bounded too')
  t.equal(errorCode(await owner.client.request('room.update', { roomId: room.id, maxMembers: 2 })), 'VALIDATION_FAILED', 'the limit cannot go below the members')
  closeAll(owner, ...joiners)
})

t.test('kicking needs a strictly higher role: a MEMBER cannot kick, a MODERATOR cannot kick an ADMIN', async (t) => {
  const [owner, admin, moderator, member, other] = await people('owner', 'admin', 'mod', 'member', 'other')
  const room = await createRoom(owner, { memberIds: [admin.id, moderator.id, member.id, other.id] })
  await owner.client.ack('room.member.role', { roomId: room.id, userId: admin.id, role: 'ADMIN' })
  await owner.client.ack('room.member.role', { roomId: room.id, userId: moderator.id, role: 'MODERATOR' })
  const kick = (by: Person, who: Person): Promise<Frame> => by.client.request('room.member.remove', { roomId: room.id, userId: who.id })
  t.equal(errorCode(await kick(member, other)), 'FORBIDDEN', 'a MEMBER cannot kick a MEMBER')
  t.equal(errorCode(await kick(moderator, admin)), 'FORBIDDEN', 'a MODERATOR cannot kick an ADMIN')
  t.equal(errorCode(await kick(moderator, owner)), 'FORBIDDEN', 'nor the OWNER')
  t.equal(errorCode(await kick(admin, owner)), 'FORBIDDEN', 'an ADMIN cannot kick the OWNER')
  t.equal(errorCode(await member.client.request('room.member.remove', { roomId: room.id, userId: uid('nobody') })), 'NOT_FOUND', 'kicking a non-member')
  t.equal((await kick(moderator, member)).event, 'ack', 'a MODERATOR kicks a MEMBER')
  t.match((await member.client.next((frame) => frame.event === 'room.removed')).data, { roomId: room.id }, 'the kicked user hears room.removed')
  t.equal((await kick(admin, moderator)).event, 'ack', 'an ADMIN kicks a MODERATOR')
  t.equal((await kick(owner, admin)).event, 'ack', 'the OWNER kicks an ADMIN')
  t.same(await memberRows(node, room.id), { count: 2, memberCount: 2 })
  // The kicked are unsubscribed: the next room event reaches only the members.
  await owner.client.ack('room.update', { roomId: room.id, name: 'after the purge' })
  t.ok(await receives(other.client, 'room.updated', (data) => data.roomId === room.id, 2000), 'a member hears it')
  for (const gone of [member, moderator, admin]) {
    t.notOk(await receives(gone.client, 'room.updated', (data) => data.roomId === room.id, 100), `${gone.id} does not`)
    t.equal(errorCode(await gone.client.request('room.members', { roomId: room.id })), 'NOT_MEMBER')
  }
  closeAll(owner, admin, moderator, member, other)
})

t.test('roles: below your own; ADMIN and OWNER by the OWNER, who hands over and becomes ADMIN', async (t) => {
  const [owner, admin, member, other] = await people('owner', 'admin', 'member', 'other')
  const room = await createRoom(owner, { memberIds: [admin.id, member.id, other.id] })
  const setRole = (by: Person, who: Person, role: string): Promise<Frame> => by.client.request('room.member.role', { roomId: room.id, userId: who.id, role })
  t.equal(errorCode(await setRole(member, other, 'MODERATOR')), 'FORBIDDEN', 'a MEMBER sets no roles')
  t.equal((await setRole(owner, admin, 'ADMIN')).event, 'ack')
  t.equal(errorCode(await setRole(admin, member, 'ADMIN')), 'FORBIDDEN', 'an ADMIN cannot make an ADMIN')
  t.equal((await setRole(admin, member, 'MODERATOR')).event, 'ack', 'an ADMIN sets roles below their own')
  t.equal(errorCode(await setRole(member, other, 'MEMBER')), 'FORBIDDEN', 'a MODERATOR sets no roles')
  t.equal(errorCode(await setRole(admin, owner, 'MEMBER')), 'FORBIDDEN', 'nobody demotes the OWNER')
  t.equal(errorCode(await setRole(admin, admin, 'MEMBER')), 'FORBIDDEN', 'nor their own role')
  t.equal(errorCode(await setRole(admin, owner, 'OWNER')), 'FORBIDDEN', 'only the OWNER hands over')
  t.equal(errorCode(await member.client.request('room.update', { roomId: room.id, name: 'y' })), 'FORBIDDEN', 'a MODERATOR cannot update the room')
  t.equal(errorCode(await admin.client.request('room.delete', { roomId: room.id })), 'FORBIDDEN', 'an ADMIN cannot delete it')
  t.equal(errorCode(await owner.client.request('room.leave', { roomId: room.id })), 'CONFLICT', 'the OWNER does not leave while others remain')
  const handed = await owner.client.ack('room.member.role', { roomId: room.id, userId: admin.id, role: 'OWNER' })
  t.match(handed.member, { user: { id: admin.id }, role: 'OWNER' })
  const updates: Frame[] = []
  while (updates.length < 4) updates.push(await other.client.next((frame) => frame.event === 'room.member_updated'))
  t.same(updates.map((frame) => frame.data?.seq), [1, 2, 3, 4])
  updates.splice(0, 2)
  t.match(updates.map((frame) => frame.data?.member), [{ user: { id: admin.id }, role: 'OWNER' }, { user: { id: owner.id }, role: 'ADMIN' }], 'one event per member, in order')
  t.equal((updates[1]?.data?.seq as number) - (updates[0]?.data?.seq as number), 1)
  const members = (await other.client.ack('room.members', { roomId: room.id })).members as Array<{ user: { id: string }, role: string }>
  t.same(members.filter((entry) => entry.role === 'OWNER').map((entry) => entry.user.id), [admin.id], 'exactly one OWNER')
  t.equal((await owner.client.request('room.leave', { roomId: room.id })).event, 'ack', 'the former owner may leave now')
  closeAll(owner, admin, member, other)
})

t.test('the last member leaving as OWNER ends the room; room.delete removes it for everyone', async (t) => {
  const [owner, member] = await people('owner', 'member')
  const memberSecond = await TestClient.session(node.wsUrl, member.token)
  const solo = await createRoom(owner)
  await owner.client.ack('room.leave', { roomId: solo.id })
  t.equal(errorCode(await owner.client.request('room.join', { roomId: solo.id })), 'NOT_FOUND', 'a room without members is gone')

  const room = await createRoom(owner, { memberIds: [member.id] })
  await storeMessage(node, room.id, owner.id, 'soon gone')
  await owner.client.ack('room.delete', { roomId: room.id })
  for (const client of [member.client, memberSecond.client]) {
    t.match((await client.next((frame) => frame.event === 'room.removed')).data, { roomId: room.id }, 'every socket of every member hears room.removed')
  }
  t.notOk(await receives(owner.client, 'room.removed', () => true, 100), 'the deleting socket has the ack')
  t.equal(errorCode(await member.client.request('room.members', { roomId: room.id })), 'NOT_FOUND')
  t.same(await memberRows(node, room.id), { count: 0, memberCount: null })
  t.same(await scopeOf(node).chatRooms.roomIdsOf({ id: member.id, tenant: '' }), [], 'the membership cache forgot it')
  t.equal(scopeOf(node).chatHub.roomConnections(room.id).size, 0, 'no socket stays subscribed')
  closeAll(owner, member)
  memberSecond.client.close()
})

t.test('room.join answers {room, members, messages}: the latest page in the Message shape, ascending', async (t) => {
  const [owner, reader] = await people('owner', 'reader')
  const room = await createRoom(owner)
  const first = await storeMessage(node, room.id, owner.id, 'first', { reactions: [{ userId: owner.id, emoji: '👍' }, { userId: 'x', emoji: '👍' }, { userId: owner.id, emoji: '🎉' }] })
  await storeMessage(node, room.id, owner.id, 'secret', { deleted: true })
  await storeMessage(node, room.id, owner.id, 'a reply', { replyToId: first.id })
  for (let index = 0; index < 55; index += 1) await storeMessage(node, room.id, owner.id, `filler ${index}`)
  const join = await reader.client.ack('room.join', { roomId: room.id })
  const messages = join.messages as Array<Record<string, any>>
  t.equal(messages.length, 50, 'one page of 50')
  t.same(messages.map((message) => message.seq), Array.from({ length: 50 }, (_, index) => index + 9), 'the latest, ascending')
  t.match(join.room, { lastSeq: 59, lastReadSeq: 59, unreadCount: 0, lastMessage: { content: 'filler 54', seq: 58 } })
  t.equal((join.members as unknown[]).length, 2)
  const early = await owner.client.ack('room.join', { roomId: room.id })
  const all = early.messages as Array<Record<string, any>>
  const byContent = new Map(all.map((message) => [message.content, message]))
  t.notOk(byContent.has('first'), 'older messages are not in the page')
  // A smaller room shows the shape of each kind of message.
  const small = await createRoom(owner)
  const one = await storeMessage(node, small.id, owner.id, 'first', { reactions: [{ userId: owner.id, emoji: '👍' }, { userId: 'x', emoji: '👍' }, { userId: owner.id, emoji: '🎉' }] })
  await storeMessage(node, small.id, owner.id, 'secret', { deleted: true })
  await storeMessage(node, small.id, reader.id, 'a reply', { replyToId: one.id })
  const page = (await reader.client.ack('room.join', { roomId: small.id })).messages as Array<Record<string, any>>
  t.match(page[0], { id: one.id, roomId: small.id, seq: 1, sender: { id: owner.id, name: 'Owner' + owner.id.slice(5), avatar: null }, type: 'TEXT', content: 'first', attachments: [] })
  // Reactions stored in one transaction share their timestamp, so only the grouping is compared.
  const reactions = [...(page[0]?.reactions as Array<{ emoji: string, count: number, userIds: string[] }>)].sort((a, b) => b.count - a.count)
  t.same(reactions.map((reaction) => ({ ...reaction, userIds: [...reaction.userIds].sort() })),
    [{ emoji: '👍', count: 2, userIds: [owner.id, 'x'].sort() }, { emoji: '🎉', count: 1, userIds: [owner.id] }])
  t.match(page[0]?.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  t.notOk('deletedAt' in (page[0] ?? {}), 'optional fields are absent, not null')
  t.match(page[1], { seq: 2, content: '', reactions: [] })
  t.match(page[1]?.deletedAt, /Z$/, 'a deleted message keeps its place and loses its content')
  t.match(page[2], { seq: 3, content: 'a reply', replyTo: { id: one.id, seq: 1, senderId: owner.id, excerpt: 'first' } })
  closeAll(owner, reader)
})

t.test('a send costs no database read once the membership cache is warm', async (t) => {
  const [owner, member] = await people('owner', 'member')
  const room = await createRoom(owner, { memberIds: [member.id] })
  const rooms = scopeOf(node).chatRooms
  await rooms.requireMember(room.id, { id: member.id, tenant: '' })
  await rooms.roomIdsOf({ id: member.id, tenant: '' })
  const queries = countQueries(node)
  try {
    await queries.run(async () => {
      for (let index = 0; index < 100; index += 1) {
        const membership = await rooms.requireMember(room.id, { id: member.id, tenant: '' })
        t.equal(membership.role, 'MEMBER')
        t.ok(rooms.can(membership.role, 'message.send'))
      }
      t.same((await rooms.memberIds(room.id)).sort(), [member.id, owner.id].sort())
      t.ok((await rooms.roomIdsOf({ id: member.id, tenant: '' })).includes(room.id))
    })
    t.equal(queries.count, 0, 'no query on the hot path')
    await owner.client.ack('room.member.role', { roomId: room.id, userId: member.id, role: 'MODERATOR' })
    queries.reset()
    await queries.run(async () => {
      t.equal((await rooms.requireMember(room.id, { id: member.id, tenant: '' })).role, 'MODERATOR', 'a role change invalidates the entry')
    })
    t.ok(queries.count <= 1, 'which is read again, once')
    const afterReload = queries.count
    await queries.run(() => rooms.requireMember(room.id, { id: member.id, tenant: '' }))
    t.equal(queries.count, afterReload, 'and then comes from the cache again')
  } finally {
    queries.stop()
  }
  await t.rejects(rooms.requireMember(room.id, { id: uid('stranger'), tenant: '' }), { code: 'NOT_MEMBER' })
  await t.rejects(rooms.membership('00000000-0000-4000-8000-000000000000', { id: member.id, tenant: '' }), { code: 'NOT_FOUND' })
  t.same(await rooms.memberIds('00000000-0000-4000-8000-000000000000'), [], 'no members for an unknown room')
  closeAll(owner, member)
})

t.test('setting the role a member already has changes nothing and takes no seq', async (t) => {
  const [owner, member] = await people('owner', 'member')
  const room = await createRoom(owner, { memberIds: [member.id] })
  const same = await owner.client.ack('room.member.role', { roomId: room.id, userId: member.id, role: 'MEMBER' })
  t.match(same.member, { user: { id: member.id }, role: 'MEMBER' })
  t.notOk(await receives(member.client, 'room.member_updated', () => true, 100))
  const after = await owner.client.ack('room.join', { roomId: room.id })
  t.equal((after.room as { lastSeq: number }).lastSeq, 0)
  closeAll(owner, member)
})

t.test('after a broker outage a node re-aligns its sockets\' subscriptions with the database', async (t) => {
  const [owner, member] = await people('owner', 'member')
  const kept = await createRoom(owner, { memberIds: [member.id] })
  const lost = await createRoom(owner, { memberIds: [member.id] })
  const hub = scopeOf(node).chatHub
  const socket = [...hub.connectionsOf(member.id)][0]
  if (socket === undefined) throw new Error('no socket')
  // As if a subscribe control had been lost, and a kick's unsubscribe control too.
  await hub.unsubscribe(socket, kept.id)
  await scopeOf(node).chatDb.execute((await import('drizzle-orm')).sql`delete from chat.room_members where room_id = ${lost.id} and user_id = ${member.id}`)
  scopeOf(node).chatRooms.cache.clear()
  t.notOk(socket.rooms.has(kept.id))
  t.ok(socket.rooms.has(lost.id))
  await scopeOf(node).chatRooms.reconcileSubscriptions()
  t.ok(socket.rooms.has(kept.id), 'a room the user is in is subscribed again')
  t.notOk(socket.rooms.has(lost.id), 'a room the user is no longer in is dropped')
  await owner.client.ack('room.update', { roomId: kept.id, name: 'back' })
  t.ok(await receives(member.client, 'room.updated', (data) => data.roomId === kept.id, 2000))
  closeAll(owner, member)
})
