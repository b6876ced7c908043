import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { AuthorizeRequest } from '../index.js'
import { startNode } from './fixtures/server.js'
import type { Frame } from './fixtures/ws-client.js'
import { countQueries, rest } from './fixtures/rooms.js'
import { rowCounts, storedContent } from './fixtures/abuse.js'
import { connect } from './fixtures/chat.js'
import { ROOT } from './fixtures/process.js'

/** A test name that cannot break the TAP stream (line separators and controls are escaped). */
function label (text: string, max = 40): string {
  return text.slice(0, max).replace(/[^\x20-\x7e]/gu, (char) => `\\u{${(char.codePointAt(0) as number).toString(16)}}`)
}

function refusal (frame: Frame): string | undefined {
  return frame.event === 'error' ? frame.error?.code : undefined
}

const ALL = ['chats:create', 'chats:read', 'chats:join_private', 'chats:moderate']

t.test('requirePermissions: each claim opens exactly what its table says', async (t) => {
  const calls: AuthorizeRequest[] = []
  const node = await startNode(t, {
    redis: null,
    options: { requirePermissions: true, authorize: (request) => { calls.push(request); return true } },
  })
  const api = '/api'
  const owner = await connect(node, 'owner', { permissions: ['chats:create', 'chats:read'], roles: ['staff'] })
  const plain = await connect(node, 'plain')

  // chats:create: room.create and dm.open, over both transports; nothing is written without it.
  const before = await rowCounts(node)
  const created = await plain.client.request('room.create', { name: 'nope', type: 'GROUP' })
  t.equal(refusal(created), 'FORBIDDEN', 'room.create needs chats:create')
  t.match(created.error?.details, { permission: 'chats:create' }, 'the refusal names the missing permission')
  t.equal(refusal(await plain.client.request('dm.open', { userId: 'owner' })), 'FORBIDDEN', 'dm.open needs chats:create')
  t.equal((await rest(node, plain.token, 'POST', `${api}/rooms`, { name: 'nope', type: 'GROUP' })).status, 403)
  t.equal((await rest(node, plain.token, 'POST', `${api}/direct/owner`)).body.code, 'FORBIDDEN')
  t.same(await rowCounts(node), before, 'nothing was written for the refusals')
  t.notOk(calls.some((call) => call.userId === 'plain'), 'the host\'s hook is not asked once a claim refused')

  const roomId = ((await owner.client.ack('room.create', { name: 'lobby', type: 'GROUP', memberIds: ['plain', 'reader'] })).room as { id: string }).id
  t.match(calls.at(-1), { action: 'room.create', userId: 'owner', user: { id: 'owner', roles: ['staff'], permissions: ['chats:create', 'chats:read'], tenant: '' } },
    'the authorize hook sees the token\'s user: id, roles, permissions, tenant')
  const sent = (await owner.client.ack('message.send', { roomId, content: 'hello' })).message as { id: string }

  // chats:read: reading back (history, sync, members, the REST reads); live pushes are not filtered.
  for (const [event, data] of [['history.fetch', { roomId }], ['sync', { cursors: [{ roomId, seq: 0 }] }], ['room.members', { roomId }]] as const) {
    t.equal(refusal(await plain.client.request(event, data)), 'FORBIDDEN', `${event} needs chats:read`)
  }
  t.equal((await rest(node, plain.token, 'GET', `${api}/rooms/${roomId}`)).status, 403, 'GET /rooms/:roomId needs chats:read')
  t.equal((await rest(node, plain.token, 'GET', `${api}/rooms/${roomId}/messages`)).status, 403, 'GET …/messages needs chats:read')
  const reader = await connect(node, 'reader', { permissions: ['chats:read'] })
  t.equal(((await reader.client.ack('history.fetch', { roomId })).messages as unknown[]).length, 1, 'with chats:read: history')
  t.equal(((await reader.client.ack('sync', { cursors: [{ roomId, seq: 0 }] })).rooms as Array<{ events: unknown[] }>)[0]?.events.length, 1)
  t.equal(((await reader.client.ack('room.members', { roomId })).members as unknown[]).length, 3)
  t.equal((await rest(node, reader.token, 'GET', `${api}/rooms/${roomId}/messages`)).status, 200)
  t.equal(refusal(await reader.client.request('message.send', { roomId, content: 'members may still write' })), undefined)

  // A join without chats:read answers the room, but no members and no messages.
  const openRoom = ((await owner.client.ack('room.create', { name: 'open', type: 'GROUP' })).room as { id: string }).id
  await owner.client.ack('message.send', { roomId: openRoom, content: 'before you came' })
  const joined = await plain.client.ack('room.join', { roomId: openRoom })
  t.same([joined.members, joined.messages], [[], []], 'join without chats:read: empty members and messages')
  t.equal((joined.room as { id: string }).id, openRoom)

  // chats:join_private: a private room without an invitation; DIRECT rooms stay closed.
  const privateRoom = ((await owner.client.ack('room.create', { name: 'vault', type: 'GROUP', isPrivate: true })).room as { id: string }).id
  t.equal(refusal(await reader.client.request('room.join', { roomId: privateRoom })), 'FORBIDDEN', 'private without the claim: FORBIDDEN')
  const insider = await connect(node, 'insider', { permissions: ['chats:join_private', 'chats:read'] })
  const entered = await insider.client.ack('room.join', { roomId: privateRoom })
  t.equal((entered.room as { myRole: string }).myRole, 'MEMBER', 'chats:join_private joins a private room as MEMBER')
  const direct = ((await owner.client.ack('dm.open', { userId: 'reader' })).room as { id: string }).id
  t.equal(refusal(await insider.client.request('room.join', { roomId: direct })), 'FORBIDDEN', 'no claim opens a DIRECT room')

  // chats:moderate: delete others' messages and kick MEMBERs in any room of the tenant, member or not.
  t.equal(refusal(await reader.client.request('message.delete', { messageId: sent.id })), 'FORBIDDEN', 'a MEMBER cannot delete others\' messages')
  const moderator = await connect(node, 'moderator', { permissions: ['chats:moderate'] })
  await moderator.client.ack('message.delete', { messageId: sent.id })
  t.equal((await storedContent(node, sent.id))?.deleted, true, 'a non-member with chats:moderate deleted the message')
  await moderator.client.ack('room.member.remove', { roomId, userId: 'plain' })
  t.equal(refusal(await moderator.client.request('room.member.remove', { roomId, userId: 'owner' })), 'FORBIDDEN', 'but kicks MEMBERs only')
  t.equal(refusal(await moderator.client.request('room.update', { roomId, name: 'mine now' })), 'NOT_MEMBER', 'and nothing else')
  t.equal(refusal(await moderator.client.request('message.send', { roomId, content: 'hi' })), 'NOT_MEMBER')
  const foreign = await connect(node, 'foreign-mod', { permissions: ALL, tenant: 'elsewhere' })
  const kept = (await owner.client.ack('message.send', { roomId, content: 'still here' })).message as { id: string }
  t.equal(refusal(await foreign.client.request('message.delete', { messageId: kept.id })), 'NOT_FOUND', 'another tenant\'s moderator sees nothing')
  t.equal(refusal(await foreign.client.request('room.member.remove', { roomId, userId: 'reader' })), 'NOT_FOUND')

  for (const someone of [owner, plain, reader, insider, moderator, foreign]) someone.client.close()
})

t.test('claims are ignored while requirePermissions is off (the default)', async (t) => {
  const node = await startNode(t, { redis: null })
  const owner = await connect(node, 'owner')
  const roomId = ((await owner.client.ack('room.create', { name: 'vault', type: 'GROUP', isPrivate: true, memberIds: ['member'] })).room as { id: string }).id
  t.ok(roomId, 'any authenticated user creates rooms')
  const sent = (await owner.client.ack('message.send', { roomId, content: 'hello' })).message as { id: string }
  const claimer = await connect(node, 'claimer', { permissions: ALL })
  t.equal(refusal(await claimer.client.request('room.join', { roomId })), 'FORBIDDEN', 'chats:join_private grants nothing')
  t.equal(refusal(await claimer.client.request('message.delete', { messageId: sent.id })), 'NOT_FOUND', 'chats:moderate grants nothing')
  const member = await connect(node, 'member', { permissions: ['chats:moderate'] })
  t.equal(refusal(await member.client.request('message.delete', { messageId: sent.id })), 'FORBIDDEN')
  t.equal(((await member.client.ack('history.fetch', { roomId })).messages as unknown[]).length, 1, 'reading needs no claim')
  for (const someone of [owner, claimer, member]) someone.client.close()
})

t.test('text that cannot be stored is refused before any query, on both transports', async (t) => {
  // Fifty refusals in a row from one socket: the rate limits are not what this test is about.
  const high = { rate: 10000, burst: 10000 }
  const node = await startNode(t, { redis: null, options: { rateLimits: { send: high, other: high } } })
  const alice = await connect(node, 'alice')
  const bob = await connect(node, 'bob')
  const roomId = ((await alice.client.ack('room.create', { name: 'room', type: 'GROUP', memberIds: ['bob'] })).room as { id: string }).id
  const message = (await alice.client.ack('message.send', { roomId, content: 'target' })).message as { id: string }
  const before = await rowCounts(node)

  const bad = ['nul \u0000 inside', 'lone high \ud800 surrogate', 'lone low \udfff surrogate', 'reversed \udc00\ud800 pair', '\ud83d']
  for (const text of bad) {
    const cases: Array<[string, unknown, string]> = [
      ['message.send', { roomId, content: text }, 'content'],
      ['message.send', { roomId, content: 'ok', clientMsgId: text }, 'clientMsgId'],
      ['message.send', { roomId, content: 'ok', type: 'FILE', attachments: [{ url: 'https://x.example/a', name: text, size: 1, mimeType: 'text/plain' }] }, 'attachments.0.name'],
      ['message.edit', { messageId: message.id, content: text }, 'content'],
      ['reaction.add', { messageId: message.id, emoji: text }, 'emoji'],
      ['room.create', { name: text, type: 'GROUP' }, 'name'],
      ['room.update', { roomId, description: text }, 'description'],
      ['dm.open', { userId: text }, 'userId'],
      ['presence.get', { userIds: ['fine', text] }, 'userIds.1'],
      ['favorite.toggle', { type: 'USER', id: text }, 'id'],
    ]
    // A bystander's send is written meanwhile: a refused message must not fail it.
    const bystander = bob.client.request('message.send', { roomId, content: `bystander ${label(text)}` })
    for (const [event, data, field] of cases) {
      const reply = await alice.client.request(event, data)
      t.equal(refusal(reply), 'VALIDATION_FAILED', `${event} ${field} ${label(text)}`)
      t.match(reply.error?.details, [{ field }])
    }
    t.equal((await bystander).event, 'ack', 'the bystander\'s send in the same window was stored')
    const restCases: Array<[string, string, unknown]> = [
      ['POST', `/api/rooms/${roomId}/messages`, { content: text }],
      ['POST', '/api/rooms', { name: text, type: 'GROUP' }],
      ['PATCH', `/api/messages/${message.id}`, { content: text }],
    ]
    // A URL is UTF-8: an unpaired surrogate cannot travel in it, a NUL can (%00).
    if (text.includes('\u0000')) {
      restCases.push(['DELETE', `/api/rooms/${roomId}/members/${encodeURIComponent(text)}`, undefined])
      restCases.push(['GET', `/api/presence?userIds=${encodeURIComponent(text)}`, undefined])
    }
    for (const [method, path, body] of restCases) {
      const reply = await rest(node, alice.token, method, path, body)
      t.equal(reply.status, 400, `${method} ${label(path, 200)}: 400`)
      t.equal(reply.body.code, 'VALIDATION_FAILED')
    }
  }
  const after = await rowCounts(node)
  t.same({ ...after, messages: before.messages, roomEvents: before.roomEvents }, before, 'no room, member, reaction or favorite was written')
  t.equal(after.messages - before.messages, bad.length, 'only the bystanders\' messages were')

  // What is storable is stored exactly as sent: SQL and JSON metacharacters, astral characters, controls.
  const verbatim = [
    'it\'s; drop table chat.messages; --',
    'E\'\\x27\' || $$ $1 \\\\ \\u0000 \\\'',
    '{"json": "in text", "a": [1, 2]}::json',
    'emoji 😀 𝕏 family 👩‍👩‍👧 and \u2028 \u2029 \u200b \ufeff end',
    'tab\tnew\nline\rreturn \u0001 \u001f \u007f',
    '<script>alert(1)</script><img src=x onerror=alert(1)>',
  ]
  for (const content of verbatim) {
    const stored = (await alice.client.ack('message.send', { roomId, content: `${content} ` })).message as { id: string, content: string }
    t.equal(stored.content, content, `acked verbatim (trimmed): ${label(content)}`)
    t.equal((await storedContent(node, stored.id))?.content, content, 'stored verbatim')
    const pushed = await bob.client.next((frame) => frame.event === 'message.new' && (frame.data?.message as { id: string }).id === stored.id)
    t.equal((pushed.data?.message as { content: string }).content, content, 'pushed verbatim')
  }
  const history = await rest(node, bob.token, 'GET', `/api/rooms/${roomId}/messages?limit=${verbatim.length}`)
  t.same(history.body.messages.map((entry: { content: string }) => entry.content), verbatim, 'read back verbatim')
  alice.client.close()
  bob.client.close()
})

t.test('one frame cannot buy hundreds of queries: sync with 100 cursors (the most it takes) of rooms that are not yours', async (t) => {
  const node = await startNode(t, { redis: null })
  const owner = await connect(node, 'owner')
  const roomId = ((await owner.client.ack('room.create', { name: 'mine', type: 'GROUP' })).room as { id: string }).id
  await owner.client.ack('message.send', { roomId, content: 'hello' })
  const cursors: Array<{ roomId: string, seq: number }> = Array.from({ length: 99 }, () => ({ roomId: crypto.randomUUID(), seq: 0 }))
  cursors.push({ roomId, seq: 0 })
  const reply = await owner.client.ack('sync', { cursors })
  const rooms = reply.rooms as Array<{ roomId: string, events: unknown[], error?: { code: string } }>
  t.equal(rooms.filter((room) => room.error?.code === 'NOT_FOUND').length, 99, 'the 99 others (no such room): NOT_FOUND')
  t.equal(rooms.find((room) => room.roomId === roomId)?.events.length, 1, 'the user\'s own room: its events')
  const counter = countQueries(node)
  const me = { id: 'owner', tenant: '', name: 'owner', avatar: null, roles: [], permissions: [], exp: null }
  const again = await counter.run(async () => await node.app.chat.scope.chatMessaging.sync(me, cursors))
  counter.stop()
  t.equal(again.rooms.length, 100)
  // The own room: its seq, then the log (room_events and messages) and the messages' senders and reactions.
  t.ok(counter.count <= 6, `${counter.count} queries for 100 cursors`)
  owner.client.close()
})

// ---- audits of the source and the schemas ------------------------------------------------------------

interface JsonSchema { [key: string]: unknown }

/** Unbounded parts of a JSON schema: strings without maxLength, arrays without maxItems, numbers without maximum, open objects. */
function unbounded (schema: JsonSchema, path: string, openObjectsAllowed: boolean): string[] {
  const found: string[] = []
  const visit = (node: JsonSchema, at: string): void => {
    for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
      const list = node[key]
      if (Array.isArray(list)) list.forEach((item, index) => visit(item as JsonSchema, `${at}|${key}${index}`))
    }
    if ('const' in node || 'enum' in node) return
    switch (node.type) {
      case 'string':
        if (typeof node.maxLength !== 'number') found.push(`${at}: a string without maxLength`)
        break
      case 'integer': case 'number':
        if (typeof node.maximum !== 'number' && typeof node.exclusiveMaximum !== 'number') found.push(`${at}: a number without maximum`)
        break
      case 'array':
        if (typeof node.maxItems !== 'number') found.push(`${at}: an array without maxItems`)
        if (typeof node.items === 'object' && node.items !== null) visit(node.items as JsonSchema, `${at}[]`)
        break
      case 'object': {
        // A free-form payload (a custom event's data) says how many properties it takes; its size is the body limit's.
        if (!openObjectsAllowed && node.additionalProperties !== false && typeof node.maxProperties !== 'number') found.push(`${at}: an object that takes unknown properties`)
        const properties = (node.properties ?? {}) as Record<string, JsonSchema>
        for (const [name, child] of Object.entries(properties)) visit(child, `${at}.${name}`)
        break
      }
    }
  }
  visit(schema, path)
  return found
}

t.test('every event\'s and every REST route\'s input is bounded', async (t) => {
  const node = await startNode(t, { redis: null })
  const events = node.app.chat.scope.chatGateway.registeredEvents()
  t.ok(events.size >= 20, `${events.size} events`)
  const problems: string[] = []
  for (const [name, definition] of events) problems.push(...unbounded(JSON.parse(JSON.stringify(definition.schema)) as JsonSchema, name, false))
  const uuidFields: string[] = []
  const walkIds = (schema: JsonSchema, at: string): void => {
    for (const [name, child] of Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>)) {
      if (/^(roomId|messageId|replyToId)$/.test(name)) uuidFields.push(`${at}.${name}:${String(child.pattern)}:${String(child.maxLength)}`)
      if (/^(userId|userIds)$/.test(name)) {
        const item = (child.type === 'array' ? child.items : child) as JsonSchema
        if (item.minLength !== 1 || item.maxLength !== 128) problems.push(`${at}.${name}: user ids are 1..128`)
      }
      walkIds(child.type === 'array' ? child.items as JsonSchema : child, `${at}.${name}`)
    }
  }
  for (const [name, definition] of events) walkIds(JSON.parse(JSON.stringify(definition.schema)) as JsonSchema, name)
  t.ok(uuidFields.length >= 15)
  for (const field of uuidFields) t.match(field, /:\^\[0-9a-fA-F\]\{8\}-.*\$:36$/, `${field.split(':')[0] as string} is a uuid`)

  const document = await (await fetch(`${node.httpUrl}/docs/json`)).json() as { paths: Record<string, Record<string, any>> }
  let operations = 0
  for (const [path, methods] of Object.entries(document.paths)) {
    if (!path.startsWith('/api/')) continue
    for (const [method, operation] of Object.entries(methods)) {
      operations += 1
      for (const parameter of operation.parameters ?? []) problems.push(...unbounded(parameter.schema, `${method} ${path} ${String(parameter.in)} ${String(parameter.name)}`, true))
      const body = operation.requestBody?.content?.['application/json']?.schema
      if (body !== undefined) problems.push(...unbounded(body, `${method} ${path} body`, false))
    }
  }
  t.ok(operations >= 20, `${operations} REST operations`)
  t.same(problems, [], 'no unbounded input')
})

function sourceFiles (dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name)
    return statSync(join(ROOT, path)).isDirectory() ? sourceFiles(path) : /\.(ts|js)$/.test(name) ? [path] : []
  })
}

t.test('user input reaches SQL only as bound parameters', async (t) => {
  const files = ['plugins', 'routes', 'db', 'bin'].flatMap((dir) => sourceFiles(dir)).filter((file) => !file.includes('migrations'))
  const findings: string[] = []
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), 'utf8')
    for (const match of text.matchAll(/sql\.raw\(([^)]*\)?)\)/g)) {
      const argument = (match[1] as string).trim()
      // Constants of the query modules.
      if (/^[A-Z][A-Z0-9_]*$/.test(argument) || /^iso\('[a-z_.]+'\)$/.test(argument)) continue
      findings.push(`${file}: sql.raw(${argument})`)
    }
    for (const match of text.matchAll(/\.unsafe\(|sql\.identifier\((?![A-Z_]+\))|new Function\(|(?<![.\w])eval\(/g)) findings.push(`${file}: ${match[0]}`)
  }
  t.ok(files.length > 30, `${files.length} files read`)
  t.same(findings, [], 'no SQL built from strings other than constants')
})

t.test('the demo page renders user text as text', async (t) => {
  const files = sourceFiles('public').filter((file) => !file.startsWith(join('public', 'client')))
  t.ok(files.length >= 1)
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), 'utf8')
    t.notMatch(text, /\.innerHTML\s*=|\.outerHTML\s*=|insertAdjacentHTML|document\.write|(?<![.\w])eval\(|new Function\(/, `${file} has no HTML sink`)
  }
})
