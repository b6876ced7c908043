import t from 'tap'
import { startNode } from './fixtures/server.js'
import { memberRows, rest, scopeOf } from './fixtures/rooms.js'
import { connect } from './fixtures/chat.js'
import type { AuthorizeRequest } from '../plugins/core/config.js'

// The host's authorize hook: consulted for every room action, over WebSocket and REST; false or a throw
// is FORBIDDEN and changes nothing. The booking example of docs/rooms.md is the hook used here.
const confirmedBookings = new Set(['guest1:host1'])
const vetoes = new Set<string>()
const calls: AuthorizeRequest[] = []
let hookThrows = false

function hasBooking (a: string, b: string): boolean {
  return confirmedBookings.has(`${a}:${b}`) || confirmedBookings.has(`${b}:${a}`)
}

const node = await startNode(t, {
  options: {
    async authorize (request) {
      calls.push(request)
      if (hookThrows) throw new Error('the booking service is down')
      if (vetoes.has(request.action)) return false
      if (request.action === 'dm.open') return hasBooking(request.userId, (request.data as { userId: string }).userId)
      return true
    },
  },
})
const api = node.app.chat.config.apiPrefix

function codeOf (reply: { event: string, error?: { code: string } }): string {
  return reply.event === 'ack' ? 'ack' : reply.error?.code ?? 'none'
}

t.test('only users with a confirmed booking may open a direct room', async (t) => {
  const guest = await connect(node, 'guest1')
  const stranger = await connect(node, 'stranger1')
  t.equal(codeOf(await stranger.client.request('dm.open', { userId: 'host1' })), 'FORBIDDEN', 'no booking, no DM over WebSocket')
  const viaRest = await rest(node, stranger.token, 'POST', `${api}/direct/host1`)
  t.equal(viaRest.status, 403)
  t.equal(viaRest.body.code, 'FORBIDDEN', 'nor over REST')
  t.match(calls.at(-1), { action: 'dm.open', userId: stranger.id, data: { userId: 'host1' } }, 'the hook sees the action, the user and the data')
  t.same((await rest(node, stranger.token, 'GET', `${api}/rooms`)).body.rooms, [], 'nothing was created')
  t.equal(codeOf(await guest.client.request('dm.open', { userId: 'host1' })), 'ack', 'a guest with a booking may')
  t.equal((await rest(node, guest.token, 'POST', `${api}/direct/host1`)).status, 200)
  guest.client.close()
  stranger.client.close()
})

t.test('every room action consults the hook, with the room it concerns', async (t) => {
  const owner = await connect(node, 'owner2')
  const member = await connect(node, 'member2')
  calls.length = 0
  const room = (await owner.client.ack('room.create', { name: 'hooked', type: 'GROUP' })).room as { id: string }
  await member.client.ack('room.join', { roomId: room.id })
  await owner.client.ack('room.members', { roomId: room.id })
  await owner.client.ack('room.update', { roomId: room.id, name: 'still hooked' })
  await owner.client.ack('room.member.role', { roomId: room.id, userId: member.id, role: 'MODERATOR' })
  await owner.client.ack('room.member.remove', { roomId: room.id, userId: member.id })
  await owner.client.ack('room.member.add', { roomId: room.id, userIds: [member.id] })
  await member.client.ack('favorite.toggle', { type: 'ROOM', id: room.id })
  await member.client.ack('room.leave', { roomId: room.id })
  await rest(node, owner.token, 'GET', `${api}/rooms/${room.id}`)
  await owner.client.ack('room.delete', { roomId: room.id })
  // Other concerns may consult the hook too (messages, presence): only this concern's actions are compared.
  const ours = calls.filter((call) => /^(room|dm|favorite)\./.test(call.action))
  t.same(ours.map((call) => [call.action, call.userId, call.roomId]), [
    ['room.create', owner.id, undefined],
    ['room.join', member.id, room.id],
    ['room.members', owner.id, room.id],
    ['room.update', owner.id, room.id],
    ['room.member.role', owner.id, room.id],
    ['room.member.remove', owner.id, room.id],
    ['room.member.add', owner.id, room.id],
    ['favorite.toggle', member.id, room.id],
    ['room.leave', member.id, room.id],
    ['room.get', owner.id, room.id],
    ['room.delete', owner.id, room.id],
  ])
  t.match(ours[4]?.data, { userId: member.id, role: 'MODERATOR' })
  owner.client.close()
  member.client.close()
})

t.test('a veto is FORBIDDEN and changes nothing, over WebSocket and REST', async (t) => {
  const owner = await connect(node, 'owner3')
  const member = await connect(node, 'member3')
  const room = (await owner.client.ack('room.create', { name: 'guarded', type: 'GROUP', memberIds: [member.id] })).room as { id: string }
  const attempts: Array<[string, () => Promise<string>]> = [
    ['room.create', async () => codeOf(await owner.client.request('room.create', { name: 'x', type: 'GROUP' }))],
    ['room.update', async () => codeOf(await owner.client.request('room.update', { roomId: room.id, name: 'changed' }))],
    ['room.member.remove', async () => (await rest(node, owner.token, 'DELETE', `${api}/rooms/${room.id}/members/${member.id}`)).body.code],
    ['room.member.role', async () => (await rest(node, owner.token, 'PATCH', `${api}/rooms/${room.id}/members/${member.id}`, { role: 'ADMIN' })).body.code],
    ['room.leave', async () => codeOf(await member.client.request('room.leave', { roomId: room.id }))],
    ['room.delete', async () => (await rest(node, owner.token, 'DELETE', `${api}/rooms/${room.id}`)).body.code],
    ['favorite.toggle', async () => (await rest(node, member.token, 'PUT', `${api}/me/favorites/ROOM/${room.id}`)).body.code],
  ]
  for (const [action, attempt] of attempts) {
    vetoes.add(action)
    t.equal(await attempt(), 'FORBIDDEN', `${action} vetoed`)
    vetoes.delete(action)
  }
  const after = await rest(node, owner.token, 'GET', `${api}/rooms/${room.id}`)
  t.match(after.body.room, { name: 'guarded', lastSeq: 0 }, 'no event was written')
  t.same(after.body.members.map((entry: { user: { id: string }, role: string }) => [entry.user.id, entry.role]).sort(), [[member.id, 'MEMBER'], [owner.id, 'OWNER']].sort())
  t.same(await memberRows(node, room.id), { count: 2, memberCount: 2 })
  t.same((await rest(node, member.token, 'GET', `${api}/me/favorites`)).body.favorites, [])
  owner.client.close()
  member.client.close()
})

t.test('a hook that throws refuses too; the service exposes the same check to other concerns', async (t) => {
  const owner = await connect(node, 'owner4')
  const room = (await owner.client.ack('room.create', { name: 'fragile', type: 'GROUP' })).room as { id: string }
  hookThrows = true
  try {
    t.equal(codeOf(await owner.client.request('room.update', { roomId: room.id, name: 'x' })), 'FORBIDDEN')
    const user = { id: owner.id, tenant: '', name: null, avatar: null, roles: [], permissions: [], exp: null }
    await t.rejects(scopeOf(node).chatRooms.authorize(user, 'message.send', room.id, { content: 'hi' }), { code: 'FORBIDDEN' })
  } finally {
    hookThrows = false
  }
  vetoes.add('message.send')
  const user = { id: owner.id, tenant: '', name: null, avatar: null, roles: [], permissions: [], exp: null }
  await t.rejects(scopeOf(node).chatRooms.authorize(user, 'message.send', room.id), { code: 'FORBIDDEN' })
  vetoes.delete('message.send')
  await t.resolves(scopeOf(node).chatRooms.authorize(user, 'message.send', room.id))
  t.match(calls.at(-1), { action: 'message.send', userId: owner.id, roomId: room.id })
  owner.client.close()
})
