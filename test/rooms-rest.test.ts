import t from 'tap'
import { startNode } from './fixtures/server.js'
import { memberRows, peopleOn, receives, rest } from './fixtures/rooms.js'
import type { Person } from './fixtures/chat.js'
import { TestClient } from './fixtures/ws-client.js'

// The rules of rooms over REST (protocol section 9): the same service as the WebSocket events, and the
// same pushes to sockets.
const node = await startNode(t)
const api = node.app.chat.config.apiPrefix

const { people, closeAll } = peopleOn(node)

async function createRoom (owner: Person, data: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const reply = await rest(node, owner.token, 'POST', `${api}/rooms`, { name: 'room', type: 'GROUP', ...data })
  if (reply.status !== 201) throw new Error(`create failed: ${JSON.stringify(reply.body)}`)
  return reply.body.room
}

t.test('authentication and validation', async (t) => {
  const [alice] = await people('alice')
  const unauthenticated = await rest(node, null, 'GET', `${api}/rooms`)
  t.equal(unauthenticated.status, 401)
  t.equal(unauthenticated.body.code, 'UNAUTHENTICATED')
  const badId = await rest(node, alice.token, 'GET', `${api}/rooms/not-a-uuid`)
  t.equal(badId.status, 400)
  t.equal(badId.body.code, 'VALIDATION_FAILED', 'a malformed room id never reaches SQL')
  const badBody = await rest(node, alice.token, 'POST', `${api}/rooms`, { name: 'x', type: 'DIRECT' })
  t.equal(badBody.body.code, 'VALIDATION_FAILED', 'DIRECT rooms are opened at /direct')
  const longName = await rest(node, alice.token, 'POST', `${api}/rooms`, { name: 'x'.repeat(101), type: 'GROUP' })
  t.equal(longName.status, 400)
  const unknown = await rest(node, alice.token, 'GET', `${api}/rooms/00000000-0000-4000-8000-000000000000`)
  t.equal(unknown.status, 404)
  t.equal(unknown.body.code, 'NOT_FOUND')
  t.same(Object.keys(unknown.body).sort(), ['code', 'error', 'message', 'statusCode'], "Fastify's error shape")
  closeAll(alice)
})

t.test('create, list, get, update, delete; every REST write reaches the sockets like a WebSocket one', async (t) => {
  const [alice, bob] = await people('alice', 'bob')
  const room = await createRoom(alice, { name: 'plans', memberIds: [bob.id] })
  t.match(room, { name: 'plans', type: 'GROUP', myRole: 'OWNER', lastSeq: 0, memberCount: 2 })
  t.match((await alice.client.next((frame) => frame.event === 'room.added')).data?.room, { id: room.id, myRole: 'OWNER' }, 'a REST create reaches every socket of the creator')
  t.match((await bob.client.next((frame) => frame.event === 'room.added')).data?.room, { id: room.id, myRole: 'MEMBER' })

  const list = await rest(node, bob.token, 'GET', `${api}/rooms`)
  t.equal(list.status, 200)
  t.same(list.body.rooms.map((entry: { id: string }) => entry.id), [room.id])
  const one = await rest(node, bob.token, 'GET', `${api}/rooms/${room.id}`)
  t.match(one.body, { room: { id: room.id, myRole: 'MEMBER' } })
  t.same(one.body.members.map((member: { user: { id: string }, role: string }) => [member.user.id, member.role]).sort(), [[alice.id, 'OWNER'], [bob.id, 'MEMBER']].sort())

  const refused = await rest(node, bob.token, 'PATCH', `${api}/rooms/${room.id}`, { name: 'mine now' })
  t.equal(refused.status, 403)
  t.equal(refused.body.code, 'FORBIDDEN', 'a MEMBER cannot update the room')
  const updated = await rest(node, alice.token, 'PATCH', `${api}/rooms/${room.id}`, { name: 'better plans', maxMembers: 10, description: null })
  t.equal(updated.status, 200)
  t.match(updated.body.room, { name: 'better plans', maxMembers: 10, lastSeq: 1 })
  for (const client of [alice.client, bob.client]) {
    t.match((await client.next((frame) => frame.event === 'room.updated')).data, { roomId: room.id, seq: 1, room: { name: 'better plans' } }, 'room.updated reaches every socket, the caller\'s included')
  }

  const notOwner = await rest(node, bob.token, 'DELETE', `${api}/rooms/${room.id}`)
  t.equal(notOwner.body.code, 'FORBIDDEN')
  const deleted = await rest(node, alice.token, 'DELETE', `${api}/rooms/${room.id}`)
  t.equal(deleted.status, 204)
  for (const client of [alice.client, bob.client]) {
    t.match((await client.next((frame) => frame.event === 'room.removed')).data, { roomId: room.id })
  }
  t.equal((await rest(node, bob.token, 'GET', `${api}/rooms/${room.id}`)).status, 404)
  closeAll(alice, bob)
})

t.test('members: join with {}, add with {userIds}, leave or kick with DELETE, roles with PATCH', async (t) => {
  const [owner, joiner, invitee, moderator] = await people('owner', 'joiner', 'inv', 'mod')
  const room = await createRoom(owner, { memberIds: [moderator.id] })
  const join = await rest(node, joiner.token, 'POST', `${api}/rooms/${room.id}/members`, {})
  t.equal(join.status, 200)
  t.match(join.body, { room: { id: room.id, myRole: 'MEMBER', lastSeq: 1, lastReadSeq: 1 }, messages: [] })
  t.equal(join.body.members.length, 3)
  t.match((await joiner.client.next((frame) => frame.event === 'room.added')).data?.room, { id: room.id }, 'a REST join pushes room.added to the joiner\'s sockets')
  t.match((await joiner.client.next((frame) => frame.event === 'room.member_joined')).data, { seq: 1, user: { id: joiner.id } }, 'and subscribes them')

  const notAllowed = await rest(node, joiner.token, 'POST', `${api}/rooms/${room.id}/members`, { userIds: [invitee.id] })
  t.equal(notAllowed.body.code, 'FORBIDDEN', 'a MEMBER cannot add')
  const role = await rest(node, owner.token, 'PATCH', `${api}/rooms/${room.id}/members/${moderator.id}`, { role: 'MODERATOR' })
  t.equal(role.status, 200)
  t.match(role.body.member, { user: { id: moderator.id }, role: 'MODERATOR' })
  const badRole = await rest(node, owner.token, 'PATCH', `${api}/rooms/${room.id}/members/${moderator.id}`, { role: 'KING' })
  t.equal(badRole.body.code, 'VALIDATION_FAILED')
  const added = await rest(node, moderator.token, 'POST', `${api}/rooms/${room.id}/members`, { userIds: [invitee.id, joiner.id] })
  t.equal(added.status, 200)
  t.same(added.body.members.map((member: { user: { id: string } }) => member.user.id), [invitee.id], 'only the new member is listed')
  t.match((await invitee.client.next((frame) => frame.event === 'room.added')).data?.room, { id: room.id, lastSeq: 3, lastReadSeq: 3 })

  const memberKick = await rest(node, joiner.token, 'DELETE', `${api}/rooms/${room.id}/members/${invitee.id}`)
  t.equal(memberKick.status, 403)
  t.equal(memberKick.body.code, 'FORBIDDEN', 'a MEMBER cannot kick')
  await rest(node, owner.token, 'PATCH', `${api}/rooms/${room.id}/members/${joiner.id}`, { role: 'ADMIN' })
  const upward = await rest(node, moderator.token, 'DELETE', `${api}/rooms/${room.id}/members/${joiner.id}`)
  t.equal(upward.body.code, 'FORBIDDEN', 'a MODERATOR cannot kick an ADMIN')
  const kick = await rest(node, moderator.token, 'DELETE', `${api}/rooms/${room.id}/members/${invitee.id}`)
  t.equal(kick.status, 204, 'a MODERATOR kicks a MEMBER')
  t.match((await invitee.client.next((frame) => frame.event === 'room.removed')).data, { roomId: room.id })
  const leave = await rest(node, joiner.token, 'DELETE', `${api}/rooms/${room.id}/members/${joiner.id}`)
  t.equal(leave.status, 204, 'your own id leaves')
  t.match((await joiner.client.next((frame) => frame.event === 'room.removed')).data, { roomId: room.id }, 'a REST leave reaches the leaver\'s sockets too')
  const ownerLeave = await rest(node, owner.token, 'DELETE', `${api}/rooms/${room.id}/members/${owner.id}`)
  t.equal(ownerLeave.status, 409)
  t.equal(ownerLeave.body.code, 'CONFLICT')
  t.same(await memberRows(node, room.id), { count: 2, memberCount: 2 })
  closeAll(owner, joiner, invitee, moderator)
})

t.test('private rooms refuse REST joins; non-members get NOT_MEMBER', async (t) => {
  const [owner, outsider] = await people('owner', 'outsider')
  const room = await createRoom(owner, { isPrivate: true })
  const join = await rest(node, outsider.token, 'POST', `${api}/rooms/${room.id}/members`, {})
  t.equal(join.status, 403)
  t.equal(join.body.code, 'FORBIDDEN')
  const read = await rest(node, outsider.token, 'GET', `${api}/rooms/${room.id}`)
  t.equal(read.body.code, 'NOT_MEMBER')
  const open = await createRoom(owner)
  const patch = await rest(node, outsider.token, 'PATCH', `${api}/rooms/${open.id}`, { name: 'x' })
  t.equal(patch.body.code, 'NOT_MEMBER')
  closeAll(owner, outsider)
})

t.test('POST /direct/:userId: one room per pair under concurrency, 201 then 200', async (t) => {
  const [alice, bob] = await people('alice', 'bob')
  const [fromAlice, fromBob, fromSocket] = await Promise.all([
    rest(node, alice.token, 'POST', `${api}/direct/${bob.id}`),
    rest(node, bob.token, 'POST', `${api}/direct/${alice.id}`),
    bob.client.ack('dm.open', { userId: alice.id }),
  ])
  const ids = new Set([fromAlice.body.room.id, fromBob.body.room.id, (fromSocket.room as { id: string }).id])
  t.equal(ids.size, 1, 'REST and WebSocket opened one room')
  t.same([fromAlice.status, fromBob.status].sort(), fromAlice.status === 201 || fromBob.status === 201 ? [200, 201] : [200, 200])
  t.match(fromAlice.body.room, { type: 'DIRECT', peerId: bob.id, memberCount: 2 })
  const again = await rest(node, alice.token, 'POST', `${api}/direct/${bob.id}`)
  t.equal(again.status, 200)
  const self = await rest(node, alice.token, 'POST', `${api}/direct/${alice.id}`)
  t.equal(self.body.code, 'VALIDATION_FAILED')
  const join = await rest(node, alice.token, 'POST', `${api}/rooms/${fromAlice.body.room.id}/members`, { userIds: ['carol'] })
  t.equal(join.body.code, 'FORBIDDEN', 'no adds into a DIRECT room')
  closeAll(alice, bob)
})

t.test('5 concurrent REST joins into maxMembers 3 leave exactly 3 members', async (t) => {
  const [owner] = await people('owner')
  const joiners = await people('j', 'j', 'j', 'j', 'j')
  const room = await createRoom(owner, { maxMembers: 3 })
  const replies = await Promise.all(joiners.map((joiner) => rest(node, joiner.token, 'POST', `${api}/rooms/${room.id}/members`, {})))
  t.same(replies.map((reply) => reply.status).sort(), [200, 200, 409, 409, 409])
  t.same(replies.filter((reply) => reply.status === 409).map((reply) => reply.body.code), ['ROOM_FULL', 'ROOM_FULL', 'ROOM_FULL'])
  t.same(await memberRows(node, room.id), { count: 3, memberCount: 3 })
  closeAll(owner, ...joiners)
})

t.test('a REST join reaches every socket of the joiner, none excepted', async (t) => {
  const [owner, joiner] = await people('owner', 'joiner')
  const second = await TestClient.session(node.wsUrl, joiner.token)
  const room = await createRoom(owner)
  await rest(node, joiner.token, 'POST', `${api}/rooms/${room.id}/members`, {})
  for (const client of [joiner.client, second.client]) t.ok(await receives(client, 'room.added', (data) => (data.room as { id: string }).id === room.id, 2000))
  closeAll(owner, joiner)
  second.client.close()
})
