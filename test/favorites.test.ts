import t from 'tap'
import { startNode } from './fixtures/server.js'
import { receives, rest } from './fixtures/rooms.js'
import { connect } from './fixtures/chat.js'
import { TestClient } from './fixtures/ws-client.js'

// Favorites: favorite.toggle over WebSocket, /me/favorites over REST, favorites.updated to the user's
// other sockets, and session.ready's favorites.
const node = await startNode(t)
const api = node.app.chat.config.apiPrefix

function codeOf (reply: { event: string, error?: { code: string } }): string {
  return reply.event === 'ack' ? 'ack' : reply.error?.code ?? 'none'
}

t.test('favorite.toggle adds and removes; the user\'s other sockets hear favorites.updated, the toggling one the ack', async (t) => {
  const alice = await connect(node, 'alice1')
  const second = await TestClient.session(node.wsUrl, alice.token)
  const bob = await connect(node, 'bob1')
  const room = (await alice.client.ack('room.create', { name: 'best room', type: 'GROUP', avatar: 'https://x/r.png' })).room as { id: string }
  const added = await alice.client.ack('favorite.toggle', { type: 'ROOM', id: room.id })
  t.same(added.favorites, [{ type: 'ROOM', id: room.id, name: 'best room', avatar: 'https://x/r.png' }])
  t.same((await second.client.next((frame) => frame.event === 'favorites.updated')).data, added, 'the other socket hears the same list')
  t.notOk(await receives(alice.client, 'favorites.updated'), 'the toggling socket has the ack')
  t.notOk(await receives(bob.client, 'favorites.updated', () => true, 50), 'nobody else hears it')
  const both = await alice.client.ack('favorite.toggle', { type: 'USER', id: bob.id })
  t.same(both.favorites, [added.favorites, { type: 'USER', id: bob.id, name: 'Bob1', avatar: null }].flat(), 'oldest first')
  const removed = await alice.client.ack('favorite.toggle', { type: 'ROOM', id: room.id })
  t.same(removed.favorites, [{ type: 'USER', id: bob.id, name: 'Bob1', avatar: null }], 'toggling again removes it')
  t.same((await second.client.next((frame) => frame.event === 'favorites.updated' && (frame.data?.favorites as unknown[]).length === 1)).data?.favorites, removed.favorites)
  alice.client.close()
  second.client.close()
  bob.client.close()
})

t.test('favorite rules', async (t) => {
  const carol = await connect(node, 'carol1')
  const dave = await connect(node, 'dave1')
  const room = (await dave.client.ack('room.create', { name: 'not yours', type: 'GROUP' })).room as { id: string }
  t.equal(codeOf(await carol.client.request('favorite.toggle', { type: 'ROOM', id: room.id })), 'NOT_MEMBER', 'only rooms you are in')
  t.equal(codeOf(await carol.client.request('favorite.toggle', { type: 'ROOM', id: '00000000-0000-4000-8000-000000000000' })), 'NOT_FOUND')
  t.equal(codeOf(await carol.client.request('favorite.toggle', { type: 'ROOM', id: 'not-a-uuid' })), 'VALIDATION_FAILED')
  t.equal(codeOf(await carol.client.request('favorite.toggle', { type: 'USER', id: carol.id })), 'VALIDATION_FAILED', 'not yourself')
  t.equal(codeOf(await carol.client.request('favorite.toggle', { type: 'CAT', id: 'x' })), 'VALIDATION_FAILED')
  t.equal(codeOf(await carol.client.request('favorite.toggle', { type: 'USER', id: 'u'.repeat(129) })), 'VALIDATION_FAILED')
  const dm = (await carol.client.ack('dm.open', { userId: dave.id })).room as { id: string }
  const favorites = await carol.client.ack('favorite.toggle', { type: 'ROOM', id: dm.id })
  t.same(favorites.favorites, [{ type: 'ROOM', id: dm.id, name: 'Dave1', avatar: null }], 'a DIRECT room is shown as the other user')
  const ghost = await carol.client.ack('favorite.toggle', { type: 'USER', id: 'ghost' })
  t.match(ghost.favorites, [{ id: dm.id }, { type: 'USER', id: 'ghost', name: null }], 'a user the server never saw has no name yet')
  carol.client.close()
  dave.client.close()
})

t.test('REST: GET, PUT and DELETE /me/favorites; a room you left is no longer listed', async (t) => {
  const erin = await connect(node, 'erin1')
  const owner = await connect(node, 'owner1')
  const room = (await owner.client.ack('room.create', { name: 'leaving soon', type: 'GROUP', memberIds: [erin.id] })).room as { id: string }
  t.equal((await rest(node, null, 'GET', `${api}/me/favorites`)).status, 401)
  t.same((await rest(node, erin.token, 'GET', `${api}/me/favorites`)).body, { favorites: [] })
  const put = await rest(node, erin.token, 'PUT', `${api}/me/favorites/ROOM/${room.id}`)
  t.equal(put.status, 200)
  t.same(put.body.favorites, [{ type: 'ROOM', id: room.id, name: 'leaving soon', avatar: null }])
  t.ok(await receives(erin.client, 'favorites.updated', (data) => (data.favorites as unknown[]).length === 1, 2000), 'a REST change reaches every socket of the user')
  const again = await rest(node, erin.token, 'PUT', `${api}/me/favorites/ROOM/${room.id}`)
  t.same(again.body, put.body, 'PUT is idempotent')
  t.notOk(await receives(erin.client, 'favorites.updated', () => true, 100), 'and pushes nothing when nothing changed')
  t.equal((await rest(node, erin.token, 'PUT', `${api}/me/favorites/THING/x`)).status, 400)
  await rest(node, erin.token, 'PUT', `${api}/me/favorites/USER/${owner.id}`)
  const list = await rest(node, erin.token, 'GET', `${api}/me/favorites`)
  t.same(list.body.favorites.map((entry: { type: string }) => entry.type), ['ROOM', 'USER'])

  await erin.client.ack('room.leave', { roomId: room.id })
  t.same((await rest(node, erin.token, 'GET', `${api}/me/favorites`)).body.favorites.map((entry: { id: string }) => entry.id), [owner.id], 'hidden once you are not a member')
  const deleted = await rest(node, erin.token, 'DELETE', `${api}/me/favorites/USER/${owner.id}`)
  t.equal(deleted.status, 204)
  t.equal((await rest(node, erin.token, 'DELETE', `${api}/me/favorites/USER/${owner.id}`)).status, 204, 'DELETE is idempotent')
  t.same((await rest(node, erin.token, 'GET', `${api}/me/favorites`)).body.favorites, [])
  erin.client.close()
  owner.client.close()
})
