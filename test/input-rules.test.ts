import { readFile } from 'node:fs/promises'
import t from 'tap'
import { startNode } from './fixtures/server.js'
import { connect, groupRoom } from './fixtures/chat.js'
import { rest } from './fixtures/rooms.js'
import { sleep } from './fixtures/timing.js'
import { TestClient, type Frame } from './fixtures/ws-client.js'

// Issue 20, item 8: the smaller input rules, each over the WebSocket and REST where both exist.

t.test('the reserved system user cannot be opened as a direct room nor named as a member', async (t) => {
  const node = await startNode(t)
  const alice = await connect(node, 'alice')
  const bob = await connect(node, 'bob')

  const dm = await alice.client.request('dm.open', { userId: 'system' })
  t.equal(dm.error?.code, 'VALIDATION_FAILED', 'dm.open of system over the socket')
  t.match(dm.error?.details, [{ field: 'userId' }])
  const restDm = await rest(node, alice.token, 'POST', '/api/direct/system')
  t.equal(restDm.status, 400, 'POST /api/direct/system')
  t.equal(restDm.body.code, 'VALIDATION_FAILED')

  const created = await alice.client.request('room.create', { name: 'with system', type: 'GROUP', memberIds: ['bob', 'system'] })
  t.equal(created.error?.code, 'VALIDATION_FAILED', 'room.create naming system in memberIds')
  const restCreated = await rest(node, alice.token, 'POST', '/api/rooms', { name: 'with system', type: 'GROUP', memberIds: ['system'] })
  t.equal(restCreated.body.code, 'VALIDATION_FAILED', 'POST /api/rooms naming system')

  const roomId = await groupRoom(alice, ['bob'])
  const added = await alice.client.request('room.member.add', { roomId, userIds: ['system'] })
  t.equal(added.error?.code, 'VALIDATION_FAILED', 'room.member.add of system')
  const restAdded = await rest(node, alice.token, 'POST', `/api/rooms/${roomId}/members`, { userIds: ['system'] })
  t.equal(restAdded.body.code, 'VALIDATION_FAILED', 'POST members naming system')

  const rooms = await rest(node, alice.token, 'GET', '/api/rooms')
  t.equal(rooms.body.rooms.length, 1, 'no room was created with system in it')
  t.equal((await alice.client.ack('dm.open', { userId: 'bob' }) as { room: { type: string } }).room.type, 'DIRECT', 'another user still opens')
  const system = await node.app.chat.sendSystemMessage(roomId, 'the server still posts')
  t.ok(system, 'the server\'s own API is unaffected')
  alice.client.close()
  bob.client.close()
})

t.test('attachment URLs are http(s) only', async (t) => {
  const node = await startNode(t)
  const alice = await connect(node, 'alice')
  const roomId = await groupRoom(alice, [])
  const attachment = (url: string): Record<string, unknown> => ({ url, name: 'a.txt', size: 1, mimeType: 'text/plain' })
  for (const url of ['javascript:alert(1)', 'JavaScript:alert(1)', 'data:text/html,<script>alert(1)</script>', 'vbscript:x', '//evil.example/a', 'file:///etc/passwd', 'https://', 'https:// x']) {
    const sent = await alice.client.request('message.send', { roomId, content: 'file', type: 'FILE', attachments: [attachment(url)] })
    t.equal(sent.error?.code, 'VALIDATION_FAILED', `socket refuses ${url}`)
    t.match(sent.error?.details, [{ field: 'attachments.0.url' }])
    const posted = await rest(node, alice.token, 'POST', `/api/rooms/${roomId}/messages`, { content: 'file', type: 'FILE', attachments: [attachment(url)] })
    t.equal(posted.status, 400, `REST refuses ${url}`)
  }
  for (const url of ['https://files.example/a.txt', 'http://files.example/a?b=c#d', 'HTTPS://FILES.EXAMPLE/A']) {
    const ack = await alice.client.ack('message.send', { roomId, content: 'file', type: 'FILE', attachments: [attachment(url)] })
    t.equal((ack.message as { attachments: Array<{ url: string }> }).attachments[0]?.url, url, `${url} is stored`)
  }
  const history = await rest(node, alice.token, 'GET', `/api/rooms/${roomId}/messages`)
  t.equal(history.body.messages.length, 3, 'only the http(s) attachments were stored')
  alice.client.close()
})

t.test('a reaction is one emoji or a :shortcode:', async (t) => {
  const node = await startNode(t)
  const alice = await connect(node, 'alice')
  const roomId = await groupRoom(alice, [])
  const message = (await alice.client.ack('message.send', { roomId, content: 'react to me' })).message as { id: string }
  for (const emoji of ['hello', '👍👍', '👍 ', 'a', ':not a code:', '::', `:${'x'.repeat(40)}:`, '<img src=x>']) {
    const reply = await alice.client.request('reaction.add', { messageId: message.id, emoji })
    t.equal(reply.error?.code, 'VALIDATION_FAILED', `socket refuses ${JSON.stringify(emoji)}`)
    const posted = await rest(node, alice.token, 'POST', `/api/messages/${message.id}/reactions`, { emoji })
    t.equal(posted.status, 400, `REST refuses ${JSON.stringify(emoji)}`)
  }
  const accepted = ['👍', '❤️', '👍🏽', '👩‍👩‍👧', '🇫🇷', '1️⃣', ':thumbsup:', ':+1:']
  for (const emoji of accepted) await alice.client.ack('reaction.add', { messageId: message.id, emoji })
  const posted = await rest(node, alice.token, 'POST', `/api/messages/${message.id}/reactions`, { emoji: ':party_parrot:' })
  t.equal(posted.status, 200)
  t.same(posted.body.reactions.map((reaction: { emoji: string }) => reaction.emoji), [...accepted, ':party_parrot:'], 'every valid emoji stored, nothing else')
  alice.client.close()
})

t.test('REST: unknown query and body fields are refused on every route', async (t) => {
  const node = await startNode(t)
  const alice = await connect(node, 'alice')
  const roomId = await groupRoom(alice, [])
  const message = (await alice.client.ack('message.send', { roomId, content: 'one' })).message as { id: string }
  const cases: Array<[string, string, unknown?]> = [
    ['GET', '/api/rooms?page=2'],
    ['GET', `/api/rooms/${roomId}?expand=all`],
    ['GET', `/api/rooms/${roomId}/messages?limit=5&page=2`],
    ['GET', '/api/presence?userIds=alice&extra=1'],
    ['GET', '/api/me/favorites?sort=name'],
    ['POST', `/api/rooms/${roomId}/messages?draft=1`, { content: 'x' }],
    ['DELETE', `/api/messages/${message.id}?force=true`],
    ['POST', '/api/rooms', { name: 'x', type: 'GROUP', color: 'red' }],
    ['POST', `/api/rooms/${roomId}/messages`, { content: 'x', pinned: true }],
  ]
  for (const [method, path, body] of cases) {
    const reply = await rest(node, alice.token, method, path, body)
    t.equal(reply.status, 400, `${method} ${path}${body === undefined ? '' : ` ${JSON.stringify(body)}`}`)
    t.equal(reply.body?.code, 'VALIDATION_FAILED')
  }
  t.match((await rest(node, alice.token, 'GET', '/api/rooms?page=2')).body.message, /page/, 'the message names the field')
  const history = await rest(node, alice.token, 'GET', `/api/rooms/${roomId}/messages?limit=5`)
  t.equal(history.status, 200, 'known query fields still work')
  t.equal(history.body.messages.length, 1)
  t.equal((await rest(node, alice.token, 'GET', '/api/presence?userIds=alice')).status, 200)
  t.equal((await rest(node, alice.token, 'GET', '/api/messages/nope?x=1')).status, 404, 'an unknown route is still 404')
  alice.client.close()
})

t.test('any room.join of a DIRECT room is FORBIDDEN, a member\'s too', async (t) => {
  const node = await startNode(t)
  const alice = await connect(node, 'alice')
  const bob = await connect(node, 'bob')
  const carol = await connect(node, 'carol')
  const roomId = ((await alice.client.ack('dm.open', { userId: 'bob' })).room as { id: string }).id
  for (const person of [alice, bob, carol]) {
    const joined = await person.client.request('room.join', { roomId })
    t.equal(joined.error?.code, 'FORBIDDEN', `${person.id}: room.join`)
    const restJoined = await rest(node, person.token, 'POST', `/api/rooms/${roomId}/members`, {})
    t.equal(restJoined.status, 403, `${person.id}: REST join`)
    t.equal(restJoined.body.code, 'FORBIDDEN')
  }
  const group = await groupRoom(alice, [])
  t.ok((await alice.client.ack('room.join', { roomId: group })).room, 'a member\'s join of a group room is still acked')
  for (const person of [alice, bob, carol]) person.client.close()
})

t.test('DELETE of a reaction answers 204 with no body, as every DELETE', async (t) => {
  const node = await startNode(t)
  const alice = await connect(node, 'alice')
  const roomId = await groupRoom(alice, [])
  const message = (await alice.client.ack('message.send', { roomId, content: 'react' })).message as { id: string }
  await alice.client.ack('reaction.add', { messageId: message.id, emoji: '👍' })
  const response = await fetch(`${node.httpUrl}/api/messages/${message.id}/reactions/${encodeURIComponent('👍')}`, {
    method: 'DELETE', headers: { authorization: `Bearer ${alice.token}` },
  })
  t.equal(response.status, 204)
  t.equal(await response.text(), '', 'no body')
  const pushed = await alice.client.next((frame) => frame.event === 'reaction.updated')
  t.same(pushed.data?.reactions, [], 'the removal was done and pushed')
  const again = await rest(node, alice.token, 'DELETE', `/api/messages/${message.id}/reactions/${encodeURIComponent('👍')}`)
  t.equal(again.status, 204, 'idempotent')
  const spec = await rest(node, null, 'GET', '/docs/json')
  const responses = spec.body.paths['/api/messages/{messageId}/reactions/{emoji}'].delete.responses
  t.ok(responses['204'], 'the OpenAPI document says 204')
  t.notOk(responses['200'], 'and no 200')
  alice.client.close()
})

t.test('a send refused by the user budget spends no token of the socket\'s bucket', async (t) => {
  // The socket bucket never refills within the test; the user budget refills a token every 200 ms.
  const node = await startNode(t, { redis: null, options: { rateLimits: { send: { rate: 0.001, burst: 2 }, userSend: { rate: 5, burst: 1 } } } })
  const { client } = await TestClient.session(node.wsUrl, node.token('dora'))
  const codeOf = (frame: Frame): string | undefined => frame.error?.code
  // Invalid sends (no data): they pass or fail the buckets, then stop at the schema without a write.
  const [first, second] = await Promise.all([client.request('message.send', {}), client.request('message.send', {})])
  t.equal(codeOf(first as Frame), 'VALIDATION_FAILED', 'the first send passes both buckets')
  t.equal(codeOf(second as Frame), 'RATE_LIMITED', 'the second is refused by the user budget')
  await sleep(600)
  const third = await client.request('message.send', {})
  t.equal(codeOf(third), 'VALIDATION_FAILED', 'the socket still has its second token: the refusal did not spend it')
  client.close()
})

t.test('docs/protocol.md lists the per-user send budget among the differences', async (t) => {
  const protocol = await readFile(new URL('../docs/protocol.md', import.meta.url), 'utf8')
  t.match(protocol, /per-user send budget/i)
  t.match(protocol, /rateLimits\.userSend/)
})
