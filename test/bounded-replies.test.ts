import t from 'tap'
import { Type } from 'typebox'
import { WebSocket } from 'ws'
import { startNode, type TestNode } from './fixtures/server.js'
import { connect, groupRoom, uid, type Person } from './fixtures/chat.js'
import { rest, scopeOf, storeMessages } from './fixtures/rooms.js'
import { clientFor, dropSockets, nextState, record, TokenGate } from './fixtures/chat-client.js'
import { until, within } from './fixtures/timing.js'
import { TestClient } from './fixtures/ws-client.js'
import { resolveConfig } from '../plugins/core/config.js'

// Issue 20, item 1: one frame used to buy a 135.9 MB ack (500 cursors, duplicates allowed, no total cap),
// and the 1 MiB buffer limit was checked before a write, so that one huge frame passed it.

const MIB = 1048576
// Rooms are made over the socket, many of them: the `other` bucket and the room quota must not be what
// the test measures.
const roomy = { rateLimits: { other: { rate: 1000, burst: 1000 } }, quotas: { roomsPerMinute: 10000 } }
const node = await startNode(t, { options: roomy })
const small = await startNode(t, { options: { ...roomy, maxReplyBytes: 65536, syncMaxEvents: 50 } })

/** The UTF-8 size of every reply frame a test client receives, by request id. */
function replySizes (client: TestClient): Map<string, number> {
  const sizes = new Map<string, number>()
  client.socket.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString()) as { id?: string }
    if (frame.id !== undefined) sizes.set(frame.id, data.length)
  })
  return sizes
}

/** `count` GROUP rooms of `owner`, each with `memberIds`. */
async function rooms (owner: Person, count: number, memberIds: string[] = []): Promise<string[]> {
  const ids: string[] = []
  for (let index = 0; index < count; index += 1) ids.push(await groupRoom(owner, memberIds))
  return ids
}

interface SyncEntry { roomId: string, events: Array<{ event: string, data: { seq: number } }>, lastSeq: number, hasMore: boolean, resync?: boolean }

/**
 * Syncs `roomIds` from seq 0 the way the contract says a client continues: a room cut short from its last
 * event's seq, a room the reply had no room for from where it was asked. Returns every ack (its size and
 * entries) and the events per room in the order received.
 */
async function syncAll (person: Person, roomIds: string[]): Promise<{ acks: Array<{ bytes: number, events: number }>, seqs: Map<string, number[]> }> {
  const sizes = replySizes(person.client)
  const seqs = new Map(roomIds.map((roomId) => [roomId, [] as number[]]))
  const acks: Array<{ bytes: number, events: number }> = []
  let cursors = roomIds.map((roomId) => ({ roomId, seq: 0 }))
  while (cursors.length > 0) {
    if (acks.length > 200) throw new Error('sync does not converge')
    const reply = await person.client.request('sync', { cursors })
    if (reply.event !== 'ack') throw new Error(`sync failed: ${JSON.stringify(reply.error)}`)
    const entries = (reply.data as { rooms: SyncEntry[] }).rooms
    acks.push({ bytes: sizes.get(reply.id as string) as number, events: entries.reduce((sum, entry) => sum + entry.events.length, 0) })
    const asked = new Map(cursors.map((cursor) => [cursor.roomId, cursor.seq]))
    cursors = []
    for (const entry of entries) {
      for (const event of entry.events) seqs.get(entry.roomId)?.push(event.data.seq)
      if (!entry.hasMore) continue
      const last = entry.events[entry.events.length - 1]
      cursors.push({ roomId: entry.roomId, seq: last === undefined ? asked.get(entry.roomId) as number : last.data.seq })
    }
  }
  return { acks, seqs }
}

const range = (n: number): number[] => Array.from({ length: n }, (_, index) => index + 1)

t.test('options: maxReplyBytes and syncMaxEvents are validated at registration', async (t) => {
  t.equal(resolveConfig({}).maxReplyBytes, MIB)
  t.equal(resolveConfig({}).syncMaxEvents, 1000)
  t.throws(() => resolveConfig({ maxReplyBytes: 65535 }), /maxReplyBytes/)
  t.throws(() => resolveConfig({ syncMaxEvents: 0 }), /syncMaxEvents/)
  t.equal(resolveConfig({ maxReplyBytes: 65536, syncMaxEvents: 10 }).syncMaxEvents, 10)
})

t.test('the attack frame: 500 cursors are refused with a small reply; a room twice is refused', async (t) => {
  const owner = await connect(node, uid('owner'))
  t.teardown(() => owner.client.close())
  const [roomId] = await rooms(owner, 1) as [string]
  await storeMessages(node, roomId, owner.id, range(200).map(() => 'x'.repeat(1000)))
  const sizes = replySizes(owner.client)

  const attack = await owner.client.request('sync', { cursors: Array.from({ length: 500 }, () => ({ roomId, seq: 0 })) })
  t.equal(attack.event, 'error')
  t.equal(attack.error?.code, 'VALIDATION_FAILED')
  t.match(attack.error?.message, /cursors/)
  t.ok((sizes.get(attack.id as string) as number) < 4096, `a small refusal (${sizes.get(attack.id as string) as number} bytes)`)

  const twice = await owner.client.request('sync', { cursors: [{ roomId, seq: 0 }, { roomId, seq: 5 }] })
  t.equal(twice.error?.code, 'VALIDATION_FAILED', 'a room twice is refused')
  t.match(twice.error?.details, [{ field: 'cursors.1.roomId' }])

  const hundredAndOne = await owner.client.request('sync', { cursors: Array.from({ length: 101 }, () => ({ roomId: crypto.randomUUID(), seq: 0 })) })
  t.equal(hundredAndOne.error?.code, 'VALIDATION_FAILED', '101 cursors are refused')
  const hundred = await owner.client.request('sync', { cursors: Array.from({ length: 100 }, () => ({ roomId: crypto.randomUUID(), seq: 0 })) })
  t.equal(hundred.event, 'ack', '100 cursors of distinct rooms are answered')
})

t.test('100 cursors over rooms with many large events: every ack <= maxReplyBytes and <= syncMaxEvents, and hasMore gets everything once, in order', async (t) => {
  const owner = await connect(node, uid('owner'))
  t.teardown(() => owner.client.close())
  const roomIds = await rooms(owner, 100)
  const PER_ROOM = 40
  // Two-byte characters: the bytes are counted, not the characters.
  const content = 'ü'.repeat(400) + 'x'.repeat(600)
  for (const roomId of roomIds) await storeMessages(node, roomId, owner.id, range(PER_ROOM).map(() => content))

  const { acks, seqs } = await syncAll(owner, roomIds)
  const largest = Math.max(...acks.map((ack) => ack.bytes))
  t.ok(acks.length > 4, `the ${PER_ROOM * roomIds.length} events (${(PER_ROOM * roomIds.length * 1.4 / 1024).toFixed(1)} MiB of content) take ${acks.length} acks`)
  t.ok(acks.every((ack) => ack.bytes <= MIB), `every ack frame is at most maxReplyBytes (largest ${largest} bytes)`)
  t.ok(acks.every((ack) => ack.events <= 1000), 'every ack holds at most syncMaxEvents events')
  t.ok(largest > MIB * 0.9, 'an ack is filled close to the limit, not cut far below it')
  for (const roomId of roomIds) t.same(seqs.get(roomId), range(PER_ROOM), `room ${roomId}: every event exactly once, in seq order`)
})

t.test('syncMaxEvents caps the events of one ack over all its rooms', async (t) => {
  const owner = await connect(small, uid('owner'))
  t.teardown(() => owner.client.close())
  const roomIds = await rooms(owner, 3)
  for (const roomId of roomIds) await storeMessages(small, roomId, owner.id, range(70).map((n) => `m${n}`))
  const { acks, seqs } = await syncAll(owner, roomIds)
  t.same(acks.map((ack) => ack.events), [50, 50, 50, 50, 10], 'at most 50 events in each ack, filled in cursor order')
  for (const roomId of roomIds) t.same(seqs.get(roomId), range(70), 'every event exactly once, in order')
})

t.test('an event larger than any reply is answered as beyond the window (resync), the rest still flows', async (t) => {
  const owner = await connect(small, uid('owner'))
  t.teardown(() => owner.client.close())
  const [big, other] = await rooms(owner, 2) as [string, string]
  // A message past 64 KiB (maxMessageLength allows it up to 100,000 characters).
  await storeMessages(small, big, owner.id, ['ü'.repeat(40000)])
  await storeMessages(small, other, owner.id, ['one', 'two'])
  const reply = await owner.client.ack('sync', { cursors: [{ roomId: big, seq: 0 }, { roomId: other, seq: 0 }] })
  const [first, second] = (reply as { rooms: SyncEntry[] }).rooms
  t.match(first, { roomId: big, events: [], hasMore: false, resync: true, lastSeq: 1 })
  t.same(second?.events.map((event) => event.data.seq), [1, 2])
})

t.test('history.fetch is cut to fit maxReplyBytes, keeping the messages nearest the cursor', async (t) => {
  const owner = await connect(small, uid('owner'))
  t.teardown(() => owner.client.close())
  const [roomId] = await rooms(owner, 1) as [string]
  await storeMessages(small, roomId, owner.id, range(100).map((n) => `${n} `.padEnd(2000, 'x')))
  const sizes = replySizes(owner.client)
  const latest = await owner.client.request('history.fetch', { roomId, limit: 100 })
  const page = latest.data as { messages: Array<{ seq: number }>, hasMore: boolean }
  t.ok((sizes.get(latest.id as string) as number) <= 65536, 'the page fits in maxReplyBytes')
  t.ok(page.messages.length > 10 && page.messages.length < 100, `cut short (${page.messages.length} messages)`)
  t.equal(page.messages.at(-1)?.seq, 100, 'the latest page keeps the newest')
  t.equal(page.hasMore, true)
  const forward = (await owner.client.ack('history.fetch', { roomId, after: 0, limit: 100 })) as typeof page
  t.equal(forward.messages[0]?.seq, 1, 'paging forward keeps the oldest')
  t.equal(forward.hasMore, true)
  const restPage = await rest(small, owner.token, 'GET', `/api/rooms/${roomId}/messages?limit=100`)
  t.equal(restPage.body.messages.length, page.messages.length, 'REST pages the same way')
})

t.test('room.members is paged (offset, limit, hasMore, nextOffset); room.join and GET /rooms/:roomId cap their members', async (t) => {
  const owner = await connect(node, uid('owner'))
  const joiner = await connect(node, uid('joiner'))
  t.teardown(() => { owner.client.close(); joiner.client.close() })
  const roomId = await groupRoom(owner, [])
  const added: string[] = []
  for (let batch = 0; batch < 3; batch += 1) {
    const ids = Array.from({ length: 100 }, () => uid('m'))
    await owner.client.ack('room.member.add', { roomId, userIds: ids })
    added.push(...ids)
  }
  const all = [owner.id, ...added]

  const seen: string[] = []
  let offset: number | null = 0
  const pages: number[] = []
  while (offset !== null) {
    const page = await owner.client.ack('room.members', { roomId, offset, limit: 120 }) as { members: Array<{ user: { id: string } }>, hasMore: boolean, nextOffset: number | null }
    pages.push(page.members.length)
    seen.push(...page.members.map((member) => member.user.id))
    t.equal(page.hasMore, page.nextOffset !== null)
    offset = page.nextOffset
  }
  t.same(pages, [120, 120, 61])
  // Members added together joined at the same time: oldest first, then by id.
  t.equal(new Set(seen).size, all.length, 'no member twice')
  t.same([...seen].sort(), [...all].sort(), 'every member')
  t.equal(seen[0], owner.id, 'oldest first')
  const first = await owner.client.ack('room.members', { roomId }) as { members: unknown[], hasMore: boolean, nextOffset: number }
  t.match(first, { hasMore: true, nextOffset: 100 }, 'the default page is 100')
  t.equal(first.members.length, 100)
  const tooMany = await owner.client.request('room.members', { roomId, limit: 501 })
  t.equal(tooMany.error?.code, 'VALIDATION_FAILED', 'at most 500 a page')

  const joined = await joiner.client.ack('room.join', { roomId }) as { members: unknown[], membersHasMore: boolean }
  t.equal(joined.members.length, 100, 'room.join answers the first 100 members')
  t.equal(joined.membersHasMore, true)

  const one = await rest(node, owner.token, 'GET', `/api/rooms/${roomId}`)
  t.equal(one.status, 200)
  t.equal(one.body.members.length, 100)
  t.equal(one.body.membersHasMore, true)
  const restPage = await rest(node, owner.token, 'GET', `/api/rooms/${roomId}/members?offset=300&limit=10`)
  t.equal(restPage.status, 200)
  t.same(restPage.body.members.map((member: { user: { id: string } }) => member.user.id), [...seen, joiner.id].slice(300), 'REST pages the same list')
  t.match(restPage.body, { hasMore: false, nextOffset: null })
})

t.test('a reply that would still pass maxReplyBytes is refused with REPLY_TOO_LARGE, not written', async (t) => {
  scopeOf(small).chatGateway.on('test.huge', {
    schema: Type.Object({}),
    handler: () => ({ blob: 'x'.repeat(70000) }),
  })
  const person = await connect(small, uid('huge'))
  t.teardown(() => person.client.close())
  const sizes = replySizes(person.client)
  const reply = await person.client.request('test.huge', {})
  t.equal(reply.event, 'error')
  t.equal(reply.error?.code, 'REPLY_TOO_LARGE')
  t.ok((sizes.get(reply.id as string) as number) < 1024, 'the refusal is small')
  person.client.send({ event: 'ping', id: 'still-open' })
  await person.client.next((frame) => frame.event === 'pong' && frame.id === 'still-open')
  t.pass('the socket stays open')
})

t.test('the buffer limit holds for one large frame: a reply larger than maxBufferedBytes closes with 1013', async (t) => {
  const tight = await startNode(t, { options: { maxBufferedBytes: 65536 } })
  const person = await connect(tight, uid('reader'))
  const [roomId] = await rooms(person, 1) as [string]
  await storeMessages(tight, roomId, person.id, range(100).map(() => 'y'.repeat(3000)))
  // About 330 KB in one frame, on a socket with nothing buffered: the frame itself is over the limit.
  person.client.send({ event: 'history.fetch', id: 'big', data: { roomId, limit: 100 } })
  const closed = await within(person.client.closed, 10000, 'the socket closed')
  t.equal(closed.code, 1013, 'the slow-consumer close')
  t.notOk(person.client.frames.some((frame) => frame.id === 'big'), 'the frame was not written')
})

t.test('the client follows hasMore (rooms cut short and rooms the reply had no room for) and resumes with every event, once, in order', async (t) => {
  const a = uid('alice')
  const b = uid('bob')
  const alice = clientFor(t, small, a)
  await alice.connect()
  const roomIds: string[] = []
  for (let index = 0; index < 3; index += 1) roomIds.push((await alice.createRoom({ name: `r${index}`, type: 'GROUP', memberIds: [b] })).room.id)
  const gate = new TokenGate((call) => small.token(b, { name: 'Bob' }, 3600 + call))
  const bob = clientFor(t, small, b, { token: gate.provider })
  await bob.connect()
  await until('bob tracks the rooms', () => roomIds.every((roomId) => bob.cursor(roomId) === 0))
  const news = record<{ roomId: string, seq: number }>(bob, 'message.new')
  const synced = record(bob, 'synced')

  gate.shut()
  const down = nextState(bob, (change) => change.state === 'connecting')
  dropSockets(small, b)
  await down
  // While bob is away: 120 events in each room, more than two full acks (syncMaxEvents 50).
  for (const roomId of roomIds) await storeMessages(small, roomId, a, range(120).map((n) => `while away ${n}`))
  gate.open()
  await until('bob resumed', () => synced.length >= 1, { timeoutMs: 10000 })
  for (const roomId of roomIds) {
    t.same(news.filter((event) => event.roomId === roomId).map((event) => event.seq), range(120), 'every missed event, once, in seq order')
    t.equal(bob.cursor(roomId), 120)
  }
})

t.test('session.ready stays within maxReplyBytes: the most recently active rooms, roomsHasMore, the rest by room.list; the client gets them all', async (t) => {
  const owner = await connect(small, uid('owner'))
  t.teardown(() => owner.client.close())
  const roomIds = await rooms(owner, 40)
  // A last message of 3,000 characters makes each room's summary about 3.5 kB: 40 of them pass 64 KiB.
  for (const roomId of roomIds) await storeMessages(small, roomId, owner.id, ['z'.repeat(3000)])

  // A socket of its own, listened to before it opens: session.ready may come in the upgrade's own read.
  const raw = new WebSocket(small.wsUrl, { headers: { authorization: `Bearer ${owner.token}` } })
  t.teardown(() => raw.close())
  const readyFrame = await new Promise<Buffer>((resolve) => {
    raw.on('message', (data: Buffer) => { if (data.toString().startsWith('{"event":"session.ready"')) resolve(data) })
  })
  const readyBytes = readyFrame.length
  const ready = (JSON.parse(readyFrame.toString()) as { data: { rooms: Array<{ id: string }>, roomsHasMore?: boolean } }).data
  const client = await TestClient.connect(small.wsUrl, { token: owner.token })
  t.teardown(() => client.close())
  t.ok(readyBytes > 0 && readyBytes <= 65536, `session.ready is ${readyBytes} bytes`)
  t.equal(ready.roomsHasMore, true)
  t.ok(ready.rooms.length > 5 && ready.rooms.length < 40, `${ready.rooms.length} rooms in it`)
  const listed = [...ready.rooms.map((room) => room.id)]
  let offset: number | null = ready.rooms.length
  while (offset !== null) {
    const page = await client.ack('room.list', { offset }) as { rooms: Array<{ id: string }>, nextOffset: number | null }
    listed.push(...page.rooms.map((room) => room.id))
    offset = page.nextOffset
  }
  t.same([...listed].sort(), [...roomIds].sort(), 'session.ready and room.list together: every room once')

  // REST's list is the same pages: never one body past maxReplyBytes, every room once by nextOffset.
  const restListed: string[] = []
  let restOffset: number | null = 0
  while (restOffset !== null) {
    const response = await fetch(`${small.httpUrl}/api/rooms?offset=${restOffset}&limit=500`, { headers: { authorization: `Bearer ${owner.token}` } })
    const text = await response.text()
    t.equal(response.status, 200)
    t.ok(Buffer.byteLength(text) <= 65536, `GET /api/rooms?offset=${restOffset}: ${Buffer.byteLength(text)} bytes`)
    const page = JSON.parse(text) as { rooms: Array<{ id: string }>, hasMore: boolean, nextOffset: number | null }
    t.ok(page.rooms.length > 0, 'a page is never empty while rooms remain')
    restListed.push(...page.rooms.map((room) => room.id))
    restOffset = page.nextOffset
  }
  t.same([...restListed].sort(), [...roomIds].sort(), 'GET /api/rooms pages: every room once')

  const chat = clientFor(t, small, owner.id)
  await chat.connect()
  t.ok(roomIds.every((roomId) => chat.cursor(roomId) === 1), 'the client tracks every room after connect()')
})
