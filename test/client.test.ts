import t from 'tap'
import { randomUUID } from 'node:crypto'
import { WebSocket } from 'ws'
import { ChatClient, ChatClientError, backoffDelay, tokenExpiry, type StateChange } from '../client/index.js'
import { startNode } from './fixtures/server.js'
import { clientFor, connectionsOf, dropSockets, interceptReply, nextState, record, TokenGate } from './fixtures/chat-client.js'
import { sleep, until, within } from './fixtures/timing.js'
import { uid } from './fixtures/chat.js'

const node = await startNode(t)

t.test('backoff: exponential ceiling, full jitter, capped', async (t) => {
  const options = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2 }
  t.equal(backoffDelay(0, options, () => 0.999), 99)
  t.equal(backoffDelay(3, options, () => 0.999), 799)
  t.equal(backoffDelay(4, options, () => 0.999), 999, 'capped at maxDelayMs')
  t.equal(backoffDelay(30, options, () => 0.5), 500, 'never past the cap however many attempts')
  t.equal(backoffDelay(5, options, () => 0), 0, 'full jitter reaches down to zero')
  const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(2, options)))
  t.ok(spread.size > 10, 'random delays spread')
  t.ok([...spread].every((delay) => delay >= 0 && delay < 400), 'every delay within [0, 400)')
})

t.test('requests resolve with the ack\'s data; refusals reject with a typed ChatClientError', async (t) => {
  const a = uid('alice')
  const b = uid('bob')
  const alice = clientFor(t, node, a)
  const ready = await alice.connect()
  t.equal(ready.user.id, a)
  t.equal(alice.state, 'open')
  const { room } = await alice.createRoom({ name: 'general', type: 'GROUP', memberIds: [b] })
  t.equal(room.type, 'GROUP')

  const bob = clientFor(t, node, b)
  const bobReady = await bob.connect()
  t.same(bobReady.rooms.map((r) => r.id), [room.id])
  const bobNew = record(bob, 'message.new')
  const bobUpdated = record(bob, 'message.updated')
  const bobReactions = record(bob, 'reaction.updated')

  const { message } = await alice.sendMessage(room.id, 'hello')
  t.equal(message.content, 'hello')
  t.equal(message.seq, 1)
  t.match(message.clientMsgId, /^[0-9a-f-]{36}$/, 'every send carries a clientMsgId')
  await until('bob gets the message', () => bobNew.length === 1)
  t.equal(bobNew[0]?.message.id, message.id)

  const edited = await alice.editMessage(message.id, 'hello!')
  t.equal(edited.message.content, 'hello!')
  const reacted = await bob.react(message.id, '👍')
  t.same(reacted.reactions.map((r) => r.emoji), ['👍'])
  await until('bob gets the edit', () => bobUpdated.length === 1)
  const page = await bob.history(room.id)
  t.same(page.messages.map((m) => m.content), ['hello!'])
  t.equal(page.hasMore, false)
  const read = await bob.markRead(room.id, 1)
  t.equal(read.lastReadSeq, 1)
  t.same(await bob.request('presence.get', { userIds: [a] }), { users: [{ userId: a, status: 'online', lastSeen: null }] }, 'the generic request is typed and resolves with the ack')
  t.equal(bobReactions.length, 0, 'bob\'s own reaction is acked to him, not pushed back')

  const notFound = await alice.sendMessage(randomUUID(), 'nowhere').catch((error: unknown) => error)
  t.ok(notFound instanceof ChatClientError, 'a refused send rejects with a ChatClientError')
  t.match((notFound as ChatClientError).code, /^(NOT_FOUND|NOT_MEMBER)$/)
  t.equal(alice.pendingSends, 0, 'a refused send leaves the outbox')
  const invalid = await alice.editMessage('not-a-uuid', 'x').catch((error: unknown) => error) as ChatClientError
  t.equal(invalid.code, 'VALIDATION_FAILED')
  t.match(invalid.details, [{ field: 'messageId' }], 'the server\'s details come along')
  const unknown = await alice.request('no.such.event', {}).catch((error: unknown) => error) as ChatClientError
  t.equal(unknown.code, 'UNKNOWN_EVENT')
})

t.test('threads and search through the typed methods: sendMessage and history with threadRootId, searchMessages paged by its cursor', async (t) => {
  const a = uid('alice')
  const b = uid('bob')
  const alice = clientFor(t, node, a)
  const bob = clientFor(t, node, b)
  await alice.connect()
  await bob.connect()
  const { room } = await alice.createRoom({ name: 'search', type: 'GROUP', memberIds: [b] })
  const { room: own } = await alice.createRoom({ name: 'own', type: 'GROUP' })
  const word = `quince${randomUUID().slice(0, 8)}`
  const { message: root } = await alice.sendMessage(room.id, `the ${word} question`)
  const { message: reply } = await bob.sendMessage(room.id, `a ${word} answer`, { threadRootId: root.id })
  t.equal(reply.threadRootId, root.id, 'the reply is in the thread')
  const { message: mine } = await alice.sendMessage(own.id, `${word} ${word} alone`)
  t.same((await alice.history(room.id)).messages.map((m) => m.id), [root.id], 'the timeline leaves the reply out')
  const thread = await alice.history(room.id, { threadRootId: root.id })
  t.same(thread.messages.map((m) => m.id), [reply.id], 'the thread pages its replies')

  const found = await alice.searchMessages({ query: word })
  t.same(found.messages.map((m) => m.id), [mine.id, reply.id, root.id], 'best rank first, then newest first')
  t.equal(found.nextCursor, null)
  t.equal(found.messages[1]?.threadRootId, root.id, 'a reply comes with its root')
  t.same((await bob.searchMessages({ query: word })).messages.map((m) => m.id), [reply.id, root.id], 'bob finds nothing of the room he is not in')
  t.same((await alice.searchMessages({ query: word, roomId: own.id })).messages.map((m) => m.id), [mine.id], 'roomId: one room')
  const first = await alice.searchMessages({ query: word, limit: 2 })
  t.same(first.messages.map((m) => m.id), [mine.id, reply.id])
  t.type(first.nextCursor, 'string', 'a cursor for the next page')
  const second = await alice.searchMessages({ query: word, limit: 2, cursor: first.nextCursor as string })
  t.same(second.messages.map((m) => m.id), [root.id], 'the next page goes on where the first ended')
  t.equal(second.nextCursor, null)
  const refused = await bob.searchMessages({ query: word, roomId: own.id }).catch((error: unknown) => error) as ChatClientError
  t.equal(refused.code, 'NOT_MEMBER', 'a room one is not in is refused with a ChatClientError')
})

t.test('a request without a reply rejects with TIMEOUT; one cut off rejects with DISCONNECTED', async (t) => {
  const a = uid('alice')
  const alice = clientFor(t, node, a, { requestTimeoutMs: 300 })
  await alice.connect()
  const { room } = await alice.createRoom({ name: 'quiet', type: 'GROUP' })
  const swallowed = interceptReply(node, a, 'history.fetch', 'swallow')
  const started = Date.now()
  const timedOut = await alice.history(room.id).catch((error: unknown) => error) as ChatClientError
  await swallowed
  t.equal(timedOut.code, 'TIMEOUT')
  t.ok(Date.now() - started >= 290, 'after requestTimeoutMs')
  t.equal(alice.state, 'open', 'a timeout does not drop the connection')
  t.same((await alice.history(room.id)).messages, [], 'the next request is answered')

  const cut = interceptReply(node, a, 'room.members', 'cut')
  const cutOff = await alice.members(room.id).catch((error: unknown) => error) as ChatClientError
  await cut
  t.equal(cutOff.code, 'DISCONNECTED', 'a request whose socket closed before the reply: it may or may not have happened')
})

t.test('typed listeners get pushes: typing and presence', async (t) => {
  const a = uid('alice')
  const b = uid('bob')
  const alice = clientFor(t, node, a)
  await alice.connect()
  const { room } = await alice.createRoom({ name: 'chatty', type: 'GROUP', memberIds: [b] })
  const bob = clientFor(t, node, b)
  await bob.connect()
  const typing = record(alice, 'typing')
  const presence = record(alice, 'presence')
  await bob.typingStart(room.id)
  await until('alice sees bob typing', () => typing.length >= 1)
  t.match(typing[0], { roomId: room.id, userId: b, isTyping: true })
  await bob.typingStop(room.id)
  await until('alice sees bob stop', () => typing.length >= 2)
  t.match(typing[1], { roomId: room.id, userId: b, isTyping: false })
  await bob.setPresence('away')
  await until('alice sees bob away', () => presence.some((e) => e.userId === b && e.status === 'away'))
  t.match(presence.filter((e) => e.userId === b).at(-1), { userId: b, status: 'away' }, 'the latest word on bob is away')
})

t.test('reconnects after the server drops the socket, with backoff, asking the token provider again', async (t) => {
  const b = uid('bob')
  const gate = new TokenGate((call) => node.token(b, { name: 'Bob' }, 3600 + call))
  const bob = clientFor(t, node, b, { token: gate.provider, reconnect: { initialDelayMs: 200, maxDelayMs: 1000 }, random: () => 0.5 })
  const states: StateChange[] = record(bob, 'state')
  const readies = record(bob, 'session.ready')
  await bob.connect()
  t.equal(gate.calls, 1)
  const firstExp = connectionsOf(node, b)[0]?.user?.exp
  t.equal(dropSockets(node, b), 1)
  const closed = await nextState(bob, (s) => s.state === 'closed')
  t.equal(closed.willReconnect, true)
  t.equal(closed.reconnectInMs, 100, 'half of the first ceiling with random 0.5')
  await nextState(bob, (s) => s.state === 'open')
  t.equal(gate.calls, 2, 'the token provider was called again for the reconnect')
  t.equal(readies.length, 2)
  const connections = connectionsOf(node, b)
  t.equal(connections.length, 1, 'one socket again')
  t.not(connections[0]?.user?.exp, firstExp, 'the new socket authenticated with the new token')
  t.same(states.map((s) => s.state), ['connecting', 'open', 'closed', 'connecting', 'open'])

  // The server is unreachable for a while: the ceiling doubles per failed attempt, and resets on success.
  dropSockets(node, b)
  await nextState(bob, (s) => s.state === 'open')
  const delays = states.filter((s) => s.state === 'closed').map((s) => s.reconnectInMs)
  t.same(delays, [100, 100], 'a successful session resets the backoff')
})

t.test('refreshes the token of an open socket before it expires', async (t) => {
  const b = uid('bob')
  let calls = 0
  const bob = clientFor(t, node, b, {
    token: () => {
      calls += 1
      return node.token(b, {}, 2 + calls)
    },
  })
  const states = record(bob, 'state')
  await bob.connect()
  const exp = tokenExpiry(node.token(b, {}, 3))
  t.ok(exp !== null, 'the client reads exp from a JWT')
  await sleep(3500)
  t.ok(calls >= 2, 'the provider was asked for a fresh token before exp')
  t.same(states.map((s) => s.state), ['connecting', 'open'], 'the socket outlived its first token: no 4401, no reconnect')
  t.ok((connectionsOf(node, b)[0]?.user?.exp ?? 0) > (exp ?? Infinity), 'the server took the refreshed token')
})

t.test('a refused token (4401): a static token stops the client, a provider with a new token earns a reconnect', async (t) => {
  const b = uid('bob')

  const fixed = new ChatClient({ url: node.wsUrl, token: 'not-a-jwt', WebSocket, reconnect: { initialDelayMs: 10, maxDelayMs: 20 } })
  t.teardown(() => fixed.close())
  const fixedStates = record(fixed, 'state')
  const errors = record(fixed, 'error')
  const refused = await within(fixed.connect(), 3000, 'the refused connect').catch((error: unknown) => error) as ChatClientError
  t.equal(refused.code, 'UNAUTHENTICATED')
  await sleep(300)
  t.same(fixedStates.map((s) => [s.state, s.code, s.willReconnect]), [['connecting', undefined, undefined], ['closed', 4401, false]], 'no reconnect after 4401 with a static token')
  t.equal(errors[0]?.code, 'UNAUTHENTICATED')
  const late = await fixed.history(randomUUID()).catch((error: unknown) => error) as ChatClientError
  t.equal(late.code, 'CLOSED', 'a stopped client refuses requests at once')

  let calls = 0
  const tokens = ['expired', node.token(b, { name: 'Bob' }, -10), node.token(b, { name: 'Bob' })]
  const provided = clientFor(t, node, b, { token: () => tokens[calls++] ?? 'none', reconnect: { initialDelayMs: 10, maxDelayMs: 20 } })
  const providedStates = record(provided, 'state')
  const ready = await provided.connect()
  t.equal(ready.user.id, b)
  t.equal(calls, 3, 'asked again after each refusal, each time for a new token')
  t.same(providedStates.filter((s) => s.state === 'closed').map((s) => [s.code, s.willReconnect]), [[4401, true], [4401, true]])

  let sameCalls = 0
  const stubborn = clientFor(t, node, b, { token: () => { sameCalls += 1; return 'still-not-a-jwt' } })
  const stubbornStates = record(stubborn, 'state')
  await t.rejects(within(stubborn.connect(), 3000, 'the refused connect'), { code: 'UNAUTHENTICATED' })
  await sleep(200)
  t.equal(sameCalls, 2, 'the provider yielded the same token: no reconnect')
  t.equal(stubbornStates.filter((s) => s.state === 'connecting').length, 1)
})

t.test('close() is clean and final: no reconnect, waiting requests reject with CLOSED', async (t) => {
  const a = uid('alice')
  const alice = clientFor(t, node, a)
  const states = record(alice, 'state')
  await alice.connect()
  const { room } = await alice.createRoom({ name: 'bye', type: 'GROUP' })
  const swallowed = interceptReply(node, a, 'history.fetch', 'swallow')
  const pending = alice.history(room.id).catch((error: unknown) => error)
  await swallowed
  await alice.close()
  t.equal(((await pending) as ChatClientError).code, 'CLOSED')
  await until('the server saw the socket close', () => connectionsOf(node, a).length === 0)
  await sleep(300)
  t.same(states.map((s) => [s.state, s.willReconnect]), [['connecting', undefined], ['open', undefined], ['closed', false]])
  t.equal(alice.state, 'closed')
  t.equal(connectionsOf(node, a).length, 0, 'still no socket')
})
