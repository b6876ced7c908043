import t from 'tap'
import { sql } from 'drizzle-orm'
import { rows } from '../db/client.js'
import type { AuthorizeRequest } from '../plugins/core/config.js'
import { RedisBroker } from '../lib/broker/redis.js'
import { InvalidationRetry, type Invalidation } from '../plugins/rooms/invalidation-retry.js'
import { INVALIDATE_CHANNEL } from '../plugins/rooms/membership-sync.js'
import { connect, groupRoom, uid, type Person } from './fixtures/chat.js'
import { hasRedisServer, RedisServer } from './fixtures/redis-server.js'
import { rest, scopeOf } from './fixtures/rooms.js'
import { randomPrefix, startCluster, startNode, type TestNode } from './fixtures/server.js'
import { until } from './fixtures/timing.js'

// Membership is enforced by the database where it writes (protocol 11.2): a member removed on one node
// gets nothing committed on any node, whatever that node's membership cache says, Redis or not.

interface Stored {
  /** Messages of `senderId` in the room. */
  sent: number
  reactions: number
  /** The room's last_seq, and the highest seq any message or room event took (they must agree). */
  lastSeq: number
  highestSeq: number
}

async function storedOf (node: TestNode, roomId: string, senderId: string): Promise<Stored> {
  const [row] = rows<{ sent: number, reactions: number, last_seq: number, highest: number }>(await scopeOf(node).chatDb.execute(sql`select
      (select count(*)::int from chat.messages where room_id = ${roomId} and sender_id = ${senderId}) as sent,
      (select count(*)::int from chat.reactions r join chat.messages m on m.id = r.message_id where m.room_id = ${roomId}) as reactions,
      (select last_seq from chat.rooms where id = ${roomId}) as last_seq,
      greatest((select coalesce(max(seq), 0) from chat.messages where room_id = ${roomId}),
               (select coalesce(max(seq), 0) from chat.room_events where room_id = ${roomId}))::int as highest`))
  return { sent: row?.sent ?? -1, reactions: row?.reactions ?? -1, lastSeq: row?.last_seq ?? -1, highestSeq: row?.highest ?? -1 }
}

async function contentOf (node: TestNode, messageId: string): Promise<string | null> {
  const [row] = rows<{ content: string }>(await scopeOf(node).chatDb.execute(sql`select content from chat.messages where id = ${messageId}`))
  return row?.content ?? null
}

async function readyStatus (node: TestNode): Promise<number> {
  return (await rest(node, null, 'GET', '/ready')).status
}

/** The error code of a request's reply, or 'ack' when it was acknowledged. */
async function outcome (person: Person, event: string, data: unknown): Promise<string> {
  const reply = await person.client.request(event, data)
  return reply.event === 'ack' ? 'ack' : reply.error?.code ?? 'error without a code'
}

const clusterSkip = (): string | false => {
  if ((process.env.DATABASE_URL ?? '') === '') return 'two nodes need a shared Postgres: set DATABASE_URL'
  if (!hasRedisServer()) return 'needs a redis-server binary: the test starts and SIGKILLs its own'
  return false
}

t.test('Redis SIGKILLed, the owner on node A kicks V: V on node B gets nothing written and reads nothing, then and after Redis is back', { skip: clusterSkip() }, async (t) => {
  const redis = await RedisServer.start(t)
  // 22 sends from V's one socket: the send bucket (burst 20) must not be what the test measures.
  const [nodeA, nodeB] = await startCluster(t, 2, { redis: redis.url, options: { rateLimits: { send: { rate: 100, burst: 100 } } } })
  if (nodeA === undefined || nodeB === undefined) throw new Error('cluster did not start')
  const owner = await connect(nodeA, uid('owner'))
  const victim = await connect(nodeB, uid('victim'))
  const witness = await connect(nodeB, uid('witness'))
  t.teardown(() => { owner.client.close(); victim.client.close(); witness.client.close() })
  const roomId = await groupRoom(owner, [victim.id, witness.id])
  // V was a member: a message of theirs to edit and react to, and node B's cache warmed with the room.
  const first = (await victim.client.ack('message.send', { roomId, content: 'while a member', clientMsgId: 'v-0' })).message as { id: string }
  t.equal(await outcome(victim, 'history.fetch', { roomId }), 'ack', 'before: V reads the history on node B')
  t.equal(await outcome(victim, 'typing.start', { roomId }), 'ack', 'before: V types on node B')
  const before = await storedOf(nodeB, roomId, victim.id)
  t.equal(before.sent, 1, 'before: V\'s message is stored')

  await redis.stop()
  await until('both nodes to see Redis gone', async () => await readyStatus(nodeA) === 503 && await readyStatus(nodeB) === 503, { timeoutMs: 10000, everyMs: 25 })
  await owner.client.ack('room.member.remove', { roomId, userId: victim.id })
  t.notOk(redis.running, 'the kick is committed on node A while Redis is down')

  const sends = await Promise.all(Array.from({ length: 20 }, (_, i) => outcome(victim, 'message.send', { roomId, content: `kicked ${i}`, clientMsgId: `v-kicked-${i}` })))
  t.same([...new Set(sends)], ['NOT_MEMBER'], 'every one of 20 sends on node B is refused NOT_MEMBER')
  t.equal(await outcome(victim, 'message.send', { roomId, content: 'a retry of the first', clientMsgId: 'v-kicked-0' }), 'NOT_MEMBER', 'and so is a retry of one of them')
  t.equal(await outcome(victim, 'history.fetch', { roomId }), 'NOT_MEMBER', 'history.fetch is refused on node B')
  t.equal(await outcome(victim, 'typing.start', { roomId }), 'NOT_MEMBER', 'typing is refused on node B')
  t.not(await outcome(victim, 'message.edit', { messageId: first.id, content: 'edited after the kick' }), 'ack', 'an edit is refused')
  t.not(await outcome(victim, 'reaction.add', { messageId: first.id, emoji: '👍' }), 'ack', 'a reaction is refused')
  t.not(await outcome(victim, 'message.read', { roomId, seq: 1 }), 'ack', 'a read mark is refused')
  t.not(await outcome(victim, 'message.delete', { messageId: first.id }), 'ack', 'a delete is refused')

  // Node B never heard of the kick, but it drops subscriptions the database no longer backs: V's socket
  // stops getting the room's pushes, even those sent on node B itself.
  const victimSubscribed = (): boolean => [...scopeOf(nodeB).chatHub.roomConnections(roomId)].some((connection) => connection.userId === victim.id)
  await until('V\'s socket on node B to lose the room', () => !victimSubscribed(), { timeoutMs: 10000, everyMs: 50 })
  const fromWitness = (await witness.client.ack('message.send', { roomId, content: 'not for V', clientMsgId: 'w-1' })).message as { id: string }
  // The push to V's socket, had there been one, was written before the witness's ack, so before this reply.
  await victim.client.request('history.fetch', { roomId })
  t.notOk(victim.client.frames.some((frame) => frame.event === 'message.new' && (frame.data?.message as { id?: string } | undefined)?.id === fromWitness.id),
    'V is not pushed a message sent on node B after the kick')
  t.notOk(redis.running, '(all of it while Redis is still down)')

  const during = await storedOf(nodeB, roomId, victim.id)
  t.equal(during.sent, 1, 'nothing V sent after the kick is stored')
  t.equal(during.reactions, 0, 'no reaction stored')
  t.equal(await contentOf(nodeB, first.id), 'while a member', 'the message is neither edited nor deleted')
  t.equal(during.lastSeq, during.highestSeq, 'no seq was taken for a refused write')

  // ---- Redis back ----
  await redis.restart()
  await until('both nodes ready again', async () => await readyStatus(nodeA) === 200 && await readyStatus(nodeB) === 200, { timeoutMs: 20000, everyMs: 50 })
  t.equal(await outcome(victim, 'message.send', { roomId, content: 'after the restart', clientMsgId: 'v-after' }), 'NOT_MEMBER', 'after: a send on node B is still refused')
  t.equal(await outcome(victim, 'history.fetch', { roomId }), 'NOT_MEMBER', 'after: history.fetch on node B is still refused')
  t.equal(await outcome(owner, 'message.send', { roomId, content: 'the owner goes on', clientMsgId: 'o-after' }), 'ack', 'after: the owner sends')

  // Added again on node A: node B hears of it (its cache follows the database again) and V writes.
  await owner.client.ack('room.member.add', { roomId, userIds: [victim.id] })
  t.equal(await outcome(victim, 'message.send', { roomId, content: 'back in', clientMsgId: 'v-back' }), 'ack', 'added again: V sends on node B')
  t.equal(await outcome(victim, 'history.fetch', { roomId }), 'ack', 'and reads the history')
  const after = await storedOf(nodeB, roomId, victim.id)
  t.equal(after.sent, 2, 'V has exactly the two messages sent as a member')
  t.equal(after.lastSeq, after.highestSeq, 'the room\'s seq and its log agree')
})

t.test('one node (the embedded defaults or DATABASE_URL): a write racing a kick is not committed', async (t) => {
  // The host's authorize hook runs after the cache said "member": the kick it makes then commits before
  // the write reaches the database, which is the race a kick on another node (or a stale cache) opens.
  const kickDuring = new Set<string>()
  let node: TestNode | undefined
  const authorize = async (request: AuthorizeRequest): Promise<boolean> => {
    if (request.roomId !== undefined && kickDuring.has(request.action)) {
      kickDuring.delete(request.action)
      await (node as TestNode).app.chat.removeMember(request.roomId, request.userId)
    }
    return true
  }
  node = await startNode(t, { redis: null, options: { authorize } })
  const owner = await connect(node, uid('owner'))
  const victim = await connect(node, uid('victim'))
  t.teardown(() => { owner.client.close(); victim.client.close() })

  const rejoin = async (roomId: string): Promise<void> => { await owner.client.ack('room.member.add', { roomId, userIds: [victim.id] }) }
  const roomId = await groupRoom(owner, [victim.id])
  const first = (await victim.client.ack('message.send', { roomId, content: 'while a member', clientMsgId: 'v-0' })).message as { id: string }

  kickDuring.add('message.send')
  t.equal(await outcome(victim, 'message.send', { roomId, content: 'racing the kick', clientMsgId: 'v-race' }), 'NOT_MEMBER', 'a send racing a kick is refused NOT_MEMBER')
  let stored = await storedOf(node, roomId, victim.id)
  t.equal(stored.sent, 1, 'and not stored')
  t.equal(stored.lastSeq, stored.highestSeq, 'no seq taken for it')

  await rejoin(roomId)
  kickDuring.add('message.edit')
  t.not(await outcome(victim, 'message.edit', { messageId: first.id, content: 'edited racing the kick' }), 'ack', 'an edit racing a kick is refused')
  t.equal(await contentOf(node, first.id), 'while a member', 'and not written')

  await rejoin(roomId)
  kickDuring.add('reaction.add')
  t.not(await outcome(victim, 'reaction.add', { messageId: first.id, emoji: '👍' }), 'ack', 'a reaction racing a kick is refused')
  await rejoin(roomId)
  kickDuring.add('message.delete')
  t.not(await outcome(victim, 'message.delete', { messageId: first.id }), 'ack', 'a delete racing a kick is refused')
  stored = await storedOf(node, roomId, victim.id)
  t.equal(stored.reactions, 0, 'no reaction written')
  t.equal(await contentOf(node, first.id), 'while a member', 'the message is not deleted')
  t.equal(stored.lastSeq, stored.highestSeq, 'the room\'s seq and its log agree')

  // The server's own sends are not a member's: they still go through.
  const system = await node.app.chat.sendSystemMessage(roomId, 'an announcement')
  t.equal(system.sender.id, 'system', 'a SYSTEM message from the host\'s code is written')
  await rejoin(roomId)
  t.equal(await outcome(victim, 'message.send', { roomId, content: 'back in', clientMsgId: 'v-back' }), 'ack', 'a member again: V sends')
})

t.test('an invalidation whose publish fails while Redis is down is published again, merged, once it is back', { skip: !hasRedisServer() && 'needs a redis-server binary' }, async (t) => {
  const redis = await RedisServer.start(t)
  const prefix = randomPrefix()
  const publisher = new RedisBroker({ url: redis.url, prefix, onError: () => {} })
  const watcher = new RedisBroker({ url: redis.url, prefix, onError: () => {} })
  t.teardown(async () => { await publisher.close(); await watcher.close() })
  await Promise.all([publisher.ready(), watcher.ready()])
  const heard: Invalidation[] = []
  await watcher.subscribe(INVALIDATE_CHANNEL, (payload) => { heard.push(JSON.parse(payload) as Invalidation) })
  let watcherBack = false
  watcher.onReconnect(() => { watcherBack = true })

  let failures = 0
  const retry = new InvalidationRetry(async (change) => {
    // Once Redis is back, held back until the watcher has resubscribed, so that it cannot miss the publish
    // that succeeds; while Redis is down the publish itself fails.
    if (redis.running && !watcherBack) throw new Error('the watcher is not back yet')
    await publisher.publish(INVALIDATE_CHANNEL, JSON.stringify(change))
  }, () => { failures += 1 })
  t.teardown(() => retry.close())

  await redis.stop()
  retry.add({ rooms: ['r1'], users: ['u1'] })
  retry.add({ rooms: ['r2'], deleted: ['r3'] })
  await until('two failed publishes while Redis is down', () => failures >= 2, { timeoutMs: 10000, everyMs: 25 })
  t.ok(retry.pending, 'the invalidation is still pending')
  await redis.restart()
  await until('the retried invalidation to arrive', () => heard.length > 0, { timeoutMs: 20000, everyMs: 25 })
  t.same(heard, [{ rooms: ['r1', 'r2'], users: ['u1'], deleted: ['r3'] }], 'one message, the two invalidations merged')
  t.notOk(retry.pending, 'nothing left pending')
})
