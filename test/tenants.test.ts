import t, { type Test } from 'tap'
import { connect, uid, type Person } from './fixtures/chat.js'
import { rest, scopeOf } from './fixtures/rooms.js'
import { onOneAndTwoNodes, startNode, type TestNode } from './fixtures/server.js'
import { until } from './fixtures/timing.js'
import type { Frame } from './fixtures/ws-client.js'
import { userKeyOf } from '../lib/user-key.js'

// Nothing crosses tenants (protocol 11.1, issue 21): a user is the pair (tenant, sub). Alice of tenant A
// makes a private room with `victim` and `carol` as members; `victim` then connects with a tenant-B
// token (a sub never seen in B), and `carol` connects with tenant B too (the same sub in two tenants).
// Every WebSocket event of the gateway's registry and every REST route of Fastify's route table is
// called by both against A's room and its message: the tables below say how, and the test fails when a
// registered event or route has no row (a new entry point must say how it is scoped).

/** What one entry point is asked against A's room and what B must get. */
interface Target {
  roomId: string
  messageId: string
  /** A user of tenant A (known: has connected). */
  aliceId: string
}

type Outcome = 'NOT_FOUND' | 'own-only' | 'offline' | 'exempt'

interface WsCase {
  data: (target: Target) => unknown
  expect: Outcome
  /** 'own-only': answers, and the ack must not mention the room; 'offline': A's alice (online) reads offline. */
  why?: string
}

const WS_CASES: Record<string, WsCase> = {
  auth: { data: () => ({}), expect: 'exempt', why: 're-authentication of the socket; names no room' },
  'presence.set': { data: () => ({ status: 'away' }), expect: 'own-only' },
  'presence.get': { data: (x) => ({ userIds: [x.aliceId] }), expect: 'offline' },
  'typing.start': { data: (x) => ({ roomId: x.roomId }), expect: 'NOT_FOUND' },
  'typing.stop': { data: (x) => ({ roomId: x.roomId }), expect: 'NOT_FOUND' },
  'room.create': { data: (x) => ({ name: 'with a stranger', type: 'GROUP', memberIds: [x.aliceId] }), expect: 'own-only', why: "ids name users of the caller's own tenant: B's alice is another user than A's (and A's alice hears nothing)" },
  'dm.open': { data: (x) => ({ userId: x.aliceId }), expect: 'own-only', why: "ids name users of the caller's own tenant: B's alice is another user than A's (and A's alice hears nothing)" },
  'room.join': { data: (x) => ({ roomId: x.roomId }), expect: 'NOT_FOUND' },
  'room.list': { data: () => ({}), expect: 'own-only' },
  'room.directory': { data: () => ({}), expect: 'own-only', why: "the caller's tenant's public rooms only: A's (a public GROUP among them) never" },
  'room.leave': { data: (x) => ({ roomId: x.roomId }), expect: 'NOT_FOUND' },
  'room.update': { data: (x) => ({ roomId: x.roomId, name: 'taken over' }), expect: 'NOT_FOUND' },
  'room.delete': { data: (x) => ({ roomId: x.roomId }), expect: 'NOT_FOUND' },
  'room.members': { data: (x) => ({ roomId: x.roomId }), expect: 'NOT_FOUND' },
  'room.member.add': { data: (x) => ({ roomId: x.roomId, userIds: [uid('friend')] }), expect: 'NOT_FOUND' },
  'room.member.remove': { data: (x) => ({ roomId: x.roomId, userId: x.aliceId }), expect: 'NOT_FOUND' },
  'room.member.role': { data: (x) => ({ roomId: x.roomId, userId: x.aliceId, role: 'MEMBER' }), expect: 'NOT_FOUND' },
  'room.ban': { data: (x) => ({ roomId: x.roomId, userId: x.aliceId }), expect: 'NOT_FOUND' },
  'room.unban': { data: (x) => ({ roomId: x.roomId, userId: x.aliceId }), expect: 'NOT_FOUND' },
  'room.bans': { data: (x) => ({ roomId: x.roomId }), expect: 'NOT_FOUND' },
  'room.mute': { data: (x) => ({ roomId: x.roomId, userId: x.aliceId }), expect: 'NOT_FOUND' },
  'room.unmute': { data: (x) => ({ roomId: x.roomId, userId: x.aliceId }), expect: 'NOT_FOUND' },
  'support.queue': { data: () => ({}), expect: 'own-only' },
  'message.report': { data: (x) => ({ messageId: x.messageId, reason: 'probe' }), expect: 'NOT_FOUND' },
  'room.reports': { data: (x) => ({ roomId: x.roomId }), expect: 'NOT_FOUND' },
  'room.report.resolve': { data: () => ({ reportId: '00000000-0000-4000-8000-000000000000', action: 'dismiss' }), expect: 'NOT_FOUND' },
  'message.pin': { data: (x) => ({ messageId: x.messageId }), expect: 'NOT_FOUND' },
  'message.unpin': { data: (x) => ({ messageId: x.messageId }), expect: 'NOT_FOUND' },
  'message.send': { data: (x) => ({ roomId: x.roomId, content: 'from B' }), expect: 'NOT_FOUND' },
  'message.edit': { data: (x) => ({ messageId: x.messageId, content: 'edited by B' }), expect: 'NOT_FOUND' },
  'message.delete': { data: (x) => ({ messageId: x.messageId }), expect: 'NOT_FOUND' },
  'reaction.add': { data: (x) => ({ messageId: x.messageId, emoji: '👍' }), expect: 'NOT_FOUND' },
  'reaction.remove': { data: (x) => ({ messageId: x.messageId, emoji: '👍' }), expect: 'NOT_FOUND' },
  'history.fetch': { data: (x) => ({ roomId: x.roomId }), expect: 'NOT_FOUND' },
  // Without roomId a search looks only in the caller's own rooms (test/search.test.ts searches across tenants).
  'message.search': { data: (x) => ({ query: 'anything', roomId: x.roomId }), expect: 'NOT_FOUND' },
  'message.read': { data: (x) => ({ roomId: x.roomId, seq: 1 }), expect: 'NOT_FOUND' },
  sync: { data: (x) => ({ cursors: [{ roomId: x.roomId, seq: 0 }] }), expect: 'NOT_FOUND' },
  'favorite.toggle': { data: (x) => ({ type: 'ROOM', id: x.roomId }), expect: 'NOT_FOUND' },
}

interface RestCase {
  path: (target: Target) => string
  body?: (target: Target) => unknown
  expect: Outcome
  why?: string
  /** A route of the service API: called with a tenant-B token holding chats:service (others get 403). */
  service?: true
}

const REST_CASES: Record<string, RestCase> = {
  'GET /docs/*': { path: () => '/docs/json', expect: 'exempt', why: 'documentation, no tenant data' },
  'GET /ws': { path: () => '/health', expect: 'exempt', why: 'the WebSocket upgrade: the events above' },
  'GET /health': { path: () => '/health', expect: 'exempt', why: 'process health' },
  'GET /ready': { path: () => '/ready', expect: 'exempt', why: 'process readiness' },
  'GET /metrics': { path: () => '/health', expect: 'exempt', why: 'counters without tenant data' },
  'GET /api/presence': { path: (x) => `/api/presence?userIds=${x.aliceId}`, expect: 'offline' },
  'GET /api/rooms': { path: () => '/api/rooms', expect: 'own-only' },
  'GET /api/rooms/directory': { path: () => '/api/rooms/directory', expect: 'own-only', why: "the caller's tenant's public rooms only: A's (a public GROUP among them) never" },
  'POST /api/rooms': { path: () => '/api/rooms', body: (x) => ({ name: 'with a stranger', type: 'GROUP', memberIds: [x.aliceId] }), expect: 'own-only', why: "ids name users of the caller's own tenant: B's alice is another user than A's (and A's alice hears nothing)" },
  'GET /api/rooms/:roomId': { path: (x) => `/api/rooms/${x.roomId}`, expect: 'NOT_FOUND' },
  'PATCH /api/rooms/:roomId': { path: (x) => `/api/rooms/${x.roomId}`, body: () => ({ name: 'taken over' }), expect: 'NOT_FOUND' },
  'DELETE /api/rooms/:roomId': { path: (x) => `/api/rooms/${x.roomId}`, expect: 'NOT_FOUND' },
  'GET /api/rooms/:roomId/members': { path: (x) => `/api/rooms/${x.roomId}/members`, expect: 'NOT_FOUND' },
  'POST /api/rooms/:roomId/members': { path: (x) => `/api/rooms/${x.roomId}/members`, body: () => ({ userIds: [uid('friend')] }), expect: 'NOT_FOUND' },
  'DELETE /api/rooms/:roomId/members/:userId': { path: (x) => `/api/rooms/${x.roomId}/members/${x.aliceId}`, expect: 'NOT_FOUND' },
  'PATCH /api/rooms/:roomId/members/:userId': { path: (x) => `/api/rooms/${x.roomId}/members/${x.aliceId}`, body: () => ({ role: 'MEMBER' }), expect: 'NOT_FOUND' },
  'GET /api/support/queue': { path: () => '/api/support/queue', expect: 'own-only' },
  'POST /api/messages/:messageId/reports': { path: (x) => `/api/messages/${x.messageId}/reports`, body: () => ({ reason: 'probe' }), expect: 'NOT_FOUND' },
  'GET /api/rooms/:roomId/reports': { path: (x) => `/api/rooms/${x.roomId}/reports`, expect: 'NOT_FOUND' },
  'POST /api/reports/:reportId/resolve': { path: () => '/api/reports/00000000-0000-4000-8000-000000000000/resolve', body: () => ({ action: 'dismiss' }), expect: 'NOT_FOUND' },
  'PUT /api/messages/:messageId/pin': { path: (x) => `/api/messages/${x.messageId}/pin`, expect: 'NOT_FOUND' },
  'DELETE /api/messages/:messageId/pin': { path: (x) => `/api/messages/${x.messageId}/pin`, expect: 'NOT_FOUND' },
  'GET /api/rooms/:roomId/bans': { path: (x) => `/api/rooms/${x.roomId}/bans`, expect: 'NOT_FOUND' },
  'PUT /api/rooms/:roomId/bans/:userId': { path: (x) => `/api/rooms/${x.roomId}/bans/${x.aliceId}`, body: () => ({}), expect: 'NOT_FOUND' },
  'DELETE /api/rooms/:roomId/bans/:userId': { path: (x) => `/api/rooms/${x.roomId}/bans/${x.aliceId}`, expect: 'NOT_FOUND' },
  'PUT /api/rooms/:roomId/mutes/:userId': { path: (x) => `/api/rooms/${x.roomId}/mutes/${x.aliceId}`, body: () => ({}), expect: 'NOT_FOUND' },
  'DELETE /api/rooms/:roomId/mutes/:userId': { path: (x) => `/api/rooms/${x.roomId}/mutes/${x.aliceId}`, expect: 'NOT_FOUND' },
  'GET /api/rooms/:roomId/messages': { path: (x) => `/api/rooms/${x.roomId}/messages`, expect: 'NOT_FOUND' },
  'POST /api/rooms/:roomId/messages': { path: (x) => `/api/rooms/${x.roomId}/messages`, body: () => ({ content: 'from B' }), expect: 'NOT_FOUND' },
  'GET /api/search': { path: (x) => `/api/search?query=anything&roomId=${x.roomId}`, expect: 'NOT_FOUND' },
  'POST /api/rooms/:roomId/read': { path: (x) => `/api/rooms/${x.roomId}/read`, body: () => ({ seq: 1 }), expect: 'NOT_FOUND' },
  'POST /api/direct/:userId': { path: (x) => `/api/direct/${x.aliceId}`, expect: 'own-only', why: "ids name users of the caller's own tenant: B's alice is another user than A's (and A's alice hears nothing)" },
  'PATCH /api/messages/:messageId': { path: (x) => `/api/messages/${x.messageId}`, body: () => ({ content: 'edited by B' }), expect: 'NOT_FOUND' },
  'DELETE /api/messages/:messageId': { path: (x) => `/api/messages/${x.messageId}`, expect: 'NOT_FOUND' },
  'POST /api/messages/:messageId/reactions': { path: (x) => `/api/messages/${x.messageId}/reactions`, body: () => ({ emoji: '👍' }), expect: 'NOT_FOUND' },
  'DELETE /api/messages/:messageId/reactions/:emoji': { path: (x) => `/api/messages/${x.messageId}/reactions/${encodeURIComponent('👍')}`, expect: 'NOT_FOUND' },
  'GET /api/me/favorites': { path: () => '/api/me/favorites', expect: 'own-only' },
  'PUT /api/me/favorites/:type/:id': { path: (x) => `/api/me/favorites/ROOM/${x.roomId}`, expect: 'NOT_FOUND' },
  // Taking a favorite off is idempotent and answers alike for any id (a left or deleted room too): it reveals nothing.
  'DELETE /api/me/favorites/:type/:id': { path: (x) => `/api/me/favorites/ROOM/${x.roomId}`, expect: 'own-only' },
  'POST /api/service/rooms': { service: true, path: () => '/api/service/rooms', body: (x) => ({ name: 'for B', type: 'GROUP', ownerId: x.aliceId }), expect: 'own-only', why: "ownerId names B's alice" },
  'PATCH /api/service/rooms/:roomId': { service: true, path: (x) => `/api/service/rooms/${x.roomId}`, body: () => ({ name: 'taken over' }), expect: 'NOT_FOUND' },
  'POST /api/service/rooms/:roomId/members': { service: true, path: (x) => `/api/service/rooms/${x.roomId}/members`, body: () => ({ userIds: [uid('friend')] }), expect: 'NOT_FOUND' },
  'DELETE /api/service/rooms/:roomId/members/:userId': { service: true, path: (x) => `/api/service/rooms/${x.roomId}/members/${x.aliceId}`, expect: 'NOT_FOUND' },
  'POST /api/service/rooms/:roomId/messages': { service: true, path: (x) => `/api/service/rooms/${x.roomId}/messages`, body: () => ({ content: 'from B' }), expect: 'NOT_FOUND' },
  'GET /api/service/rooms/:roomId/messages': { service: true, path: (x) => `/api/service/rooms/${x.roomId}/messages`, expect: 'NOT_FOUND' },
  'POST /api/service/rooms/:roomId/events': { service: true, path: (x) => `/api/service/rooms/${x.roomId}/events`, body: () => ({ event: 'probe.note', data: {} }), expect: 'NOT_FOUND' },
  'POST /api/service/users/:userId/events': { service: true, path: (x) => `/api/service/users/${x.aliceId}/events`, body: () => ({ event: 'probe.note', data: {} }), expect: 'own-only', why: "to B's alice: A's alice hears nothing" },
  'GET /api/service/presence': { service: true, path: (x) => `/api/service/presence?userIds=${x.aliceId}`, expect: 'offline' },
}

/**
 * Fastify's route table as "METHOD /path" (HEAD left out: it answers as GET), read from printRoutes'
 * tree; the documentation's many static files are one entry, /docs/*.
 */
function routesOf (node: TestNode): Set<string> {
  const tree = node.app.printRoutes({ commonPrefix: false })
  const stack: string[] = []
  const found = new Set<string>()
  for (const line of tree.split('\n')) {
    const at = line.indexOf('── ')
    if (at < 0) continue
    const depth = Math.floor(at / 4)
    const match = /^(\S+) \(([^)]*)\)/.exec(line.slice(at + 3))
    if (match === null) continue
    stack.length = depth
    stack.push(match[1] as string)
    const path = stack.join('')
    for (const method of (match[2] as string).split(',').map((one) => one.trim())) {
      if (method === 'HEAD') continue
      found.add(`${method} ${path.startsWith('/docs') ? '/docs/*' : path.startsWith('/metrics') ? '/metrics' : path}`)
    }
  }
  return found
}

t.test('the tables cover every registered event and route', async (t) => {
  const node = await startNode(t)
  const events = [...scopeOf(node).chatGateway.registeredEvents().keys()]
  t.same(events.filter((event) => WS_CASES[event] === undefined), [], 'every WebSocket event has a tenant case')
  const routes = routesOf(node)
  t.same([...routes].filter((route) => REST_CASES[route] === undefined), [], 'every REST route has a tenant case')
  t.same(Object.keys(REST_CASES).filter((route) => !routes.has(route)), [], 'and the REST table names only real routes')
  t.comment(`covered: ${events.length} WebSocket events, ${routes.size} routes`)
})

/** Whether anything in the frames names the room or its content. */
function leaks (frames: readonly Frame[], target: Target, secret: string): string[] {
  return frames.map((frame) => JSON.stringify(frame)).filter((text) => text.includes(target.roomId) || text.includes(target.messageId) || text.includes(secret))
}

async function walk (t: Test, nodeA: TestNode, nodeB: TestNode): Promise<void> {
  const secret = uid('secret')
  const alice = await connect(nodeA, uid('alice'), { tenant: 'A' })
  const carolId = uid('carol')
  const carolA = await connect(nodeA, carolId, { tenant: 'A' })
  const victimId = uid('victim')
  // A SUPPORT room: B's support staff (chats:support) would see it in their queue if the tenant were forgotten.
  const created = await alice.client.ack('room.create', { name: 'A only', type: 'SUPPORT', isPrivate: true, memberIds: [victimId, carolId] })
  const roomId = (created.room as { id: string }).id
  // The member of the room's own tenant is told (room.added reaches the sockets of the room's tenant).
  await carolA.client.next((frame) => frame.event === 'room.added' && JSON.stringify(frame).includes(roomId), 10_000)
  const second = ((await alice.client.ack('room.create', { name: 'A again', type: 'GROUP', memberIds: [carolId] })).room as { id: string }).id
  await carolA.client.next((frame) => frame.event === 'room.added' && JSON.stringify(frame).includes(second), 10_000)
  const sent = await alice.client.ack('message.send', { roomId, content: secret })
  const target: Target = { roomId, messageId: (sent.message as { id: string }).id, aliceId: alice.id }

  // Support staff of B (chats:support): the support queue and a SUPPORT room's join must stay B's too.
  const victim = await connect(nodeB, victimId, { tenant: 'B', permissions: ['chats:support'] })
  const carolB = await connect(nodeB, carolId, { tenant: 'B', permissions: ['chats:support'] })
  // A service of tenant B (the service API's grant): its routes act for tenant B only.
  const serviceB = nodeB.token(uid('booking'), { tenant: 'B', permissions: ['chats:service'] })
  const strangers: Array<[string, Person]> = [['victim (tenant B, never seen in A)', victim], ['carol (the same sub in tenant B)', carolB]]
  // A's public GROUP `second` is in A's directory, never in B's (the walk's leak check looks for the SUPPORT room).
  t.ok(JSON.stringify(await carolA.client.ack('room.directory', {})).includes(second), "A's directory lists A's public room")
  for (const [who, person] of strangers) {
    const directory = [await person.client.ack('room.directory', {}), (await rest(nodeB, person.token, 'GET', '/api/rooms/directory')).body]
    t.notOk(JSON.stringify(directory).includes(second), `${who}: B's directory (WebSocket and REST) has no room of A`)
    t.same((person.ready.data as { rooms: unknown[] }).rooms, [], `${who}: session.ready has no room of tenant A`)
    t.same(leaks([person.ready], target, secret), [], `${who}: nothing of A's room in session.ready`)
  }

  for (const [who, person] of strangers) {
    for (const [event, test] of Object.entries(WS_CASES)) {
      if (test.expect === 'exempt') continue
      const reply = await person.client.request(event, test.data(target))
      if (event === 'sync') {
        const rooms = (reply.data as { rooms: Array<{ error?: { code: string }, events: unknown[] }> } | undefined)?.rooms ?? []
        t.equal(rooms[0]?.error?.code, 'NOT_FOUND', `${who}: sync answers NOT_FOUND for A's room`)
        t.same(rooms[0]?.events, [], `${who}: and no event of it`)
      } else if (test.expect === 'NOT_FOUND') {
        t.equal(reply.error?.code, 'NOT_FOUND', `${who}: ${event} is NOT_FOUND`)
      } else if (test.expect === 'offline') {
        t.same((reply.data as { users?: unknown[] } | undefined)?.users, [{ userId: alice.id, status: 'offline', lastSeen: null }], `${who}: ${event} reads A's alice (online) as B's alice: offline, never seen`)
      } else {
        t.equal(reply.event, 'ack', `${who}: ${event} answers`)
      }
      // sync echoes the room id the caller named; nothing else of the room may be in any reply.
      const seen = event === 'sync' ? leaks([reply], { ...target, roomId: secret }, secret) : leaks([reply], target, secret)
      t.same(seen, [], `${who}: ${event} reveals nothing of A's room`)
    }
    for (const [route, test] of Object.entries(REST_CASES)) {
      if (test.expect === 'exempt') continue
      const method = route.split(' ')[0] as string
      if (test.service === true) {
        const refused = await rest(nodeB, person.token, method, test.path(target), test.body?.(target))
        t.equal(refused.status, 403, `${who}: ${route} is 403 without chats:service`)
      }
      const reply = await rest(nodeB, test.service === true ? serviceB : person.token, method, test.path(target), test.body?.(target))
      if (test.expect === 'NOT_FOUND') t.equal(reply.status, 404, `${who}: ${route} is 404`)
      else if (test.expect === 'offline') t.same((reply.body as { users?: unknown[] }).users, [{ userId: alice.id, status: 'offline', lastSeen: null }], `${who}: ${route} reads A's alice as offline`)
      else t.ok([200, 201, 202, 204].includes(reply.status), `${who}: ${route} answers`)
      t.same(leaks([{ event: 'rest', data: reply.body }], target, secret), [], `${who}: ${route} reveals nothing of A's room`)
    }
  }

  // Ids name users of the caller's tenant: what B did with "alice" made rooms for B's alice, and A's
  // alice heard nothing of them. A adding carol again or opening a direct room with victim acts on A's
  // users, never on the sockets of B (checked with the pushes below).
  t.same(alice.client.frames.filter((frame) => frame.event === 'room.added' || frame.event === 'probe.note'), [], 'A\'s alice: no room.added or custom event from B naming her sub')
  const dm = await alice.client.ack('dm.open', { userId: victimId })
  const dmId = (dm.room as { id: string }).id

  // Live: A's room goes on; its members of tenant A hear it, B's sockets do not.
  await alice.client.ack('typing.start', { roomId })
  const later = uid('later')
  await alice.client.ack('message.send', { roomId, content: later })
  await carolA.client.next((frame) => frame.event === 'message.new' && JSON.stringify(frame).includes(later), 10_000)
  // Another message through node B's own path, to be sure B's node has delivered what it would.
  const probe = await connect(nodeB, uid('probe'), { tenant: 'B' })
  const probeRoom = (await probe.client.ack('room.create', { name: 'B', type: 'GROUP', memberIds: [victimId, carolId] })).room as { id: string }
  await probe.client.ack('message.send', { roomId: probeRoom.id, content: 'hello B' })
  // The sub's per-user frames of tenant A's rooms reach carol's tenant-A socket, not her tenant-B one
  // (a user frame addressed to the room's tenant): unread.updated when she reads in another room of A.
  await alice.client.ack('message.send', { roomId: second, content: 'read me' })
  await carolA.client.ack('message.read', { roomId: second, seq: 1 })
  await probe.client.ack('message.send', { roomId: probeRoom.id, content: 'after the read' })
  await until('carol of tenant B to hear B\'s own room again', () => carolB.client.frames.some((frame) => frame.event === 'message.new' && JSON.stringify(frame).includes('after the read')), { timeoutMs: 10_000 })
  t.same(carolB.client.frames.filter((frame) => JSON.stringify(frame).includes(second)).map((frame) => frame.event), [], 'carol of tenant B: no unread.updated of tenant A\'s room')
  for (const [who, person] of strangers) {
    await until(`${who} to hear B's own room`, () => person.client.frames.some((frame) => frame.event === 'message.new' && JSON.stringify(frame).includes(probeRoom.id)), { timeoutMs: 10_000 })
    t.same(leaks(person.client.frames, target, secret).concat(leaks(person.client.frames, target, later), leaks(person.client.frames, { ...target, roomId: dmId }, secret)), [], `${who}: no push, typing or room.added of A's rooms`)
    const sockets = scopeOfConnections(nodeB, person.id)
    t.ok(sockets.length > 0 && sockets.every((rooms) => rooms.has(probeRoom.id)), `${who}: B's sockets are found, subscribed to B's room`)
    t.notOk(sockets.some((rooms) => rooms.has(roomId)), `${who}: no socket of B is subscribed to A's room`)
  }
  for (const person of [alice, carolA, victim, carolB, probe]) person.client.close()
}

/** The rooms each tenant-B socket of the sub listens to on the node (the hub counts users by key). */
function scopeOfConnections (node: TestNode, userId: string): Array<ReadonlySet<string>> {
  return [...scopeOf(node).chatHub.connectionsOf(userKeyOf({ id: userId, tenant: 'B' }))].map((connection) => connection.rooms)
}

// Every event from one socket in a few hundred ms: past the default 30/s of `other`, which is not under test.
onOneAndTwoNodes(t, 'nothing of tenant A reaches tenant B', walk, { options: { rateLimits: { other: { rate: 1000, burst: 1000 } } } })
