import t, { type Test } from 'tap'
import { sql } from 'drizzle-orm'
import { rows } from '../db/client.js'
import { connect, groupRoom, uid, type Person } from './fixtures/chat.js'
import { rest, scopeOf } from './fixtures/rooms.js'
import { onOneAndTwoNodes, startNode, type TestNode } from './fixtures/server.js'
import { clientFor } from './fixtures/chat-client.js'
import { until } from './fixtures/timing.js'

// Moderation (protocol 11.3, issue 23): bans, mutes, slow mode, frozen rooms and CHANNELs, each over the
// WebSocket and REST, on one node and across two (the moderator on A, the moderated on B).

function close (t: Test, ...people: Person[]): void {
  t.teardown(() => { for (const person of people) person.client.close() })
}

async function feedTypes (node: TestNode, roomId: string): Promise<string[]> {
  const found = await scopeOf(node).chatDb.execute(sql`
    select type from (select 0 as part, id as n, type from chat.feed where room_id = ${roomId}
      union all select 1, staged_id, type from chat.feed_outbox where room_id = ${roomId}) entries order by part, n`)
  return rows<{ type: string }>(found).map((row) => row.type)
}

onOneAndTwoNodes(t, 'a ban removes the member, keeps them out of join and add until lifted, and replays in sync', async (t, nodeA, nodeB) => {
  const owner = await connect(nodeA, uid('owner'))
  const mod = await connect(nodeA, uid('mod'))
  const bob = await connect(nodeB, uid('bob'))
  const watcher = await connect(nodeB, uid('watcher'))
  close(t, owner, mod, bob, watcher)
  const roomId = await groupRoom(owner, [mod.id, bob.id, watcher.id])
  await owner.client.ack('room.member.role', { roomId, userId: mod.id, role: 'MODERATOR' })

  const removed = bob.client.next((frame) => frame.event === 'room.removed' && frame.data?.roomId === roomId)
  const left = watcher.client.next((frame) => frame.event === 'room.member_left' && frame.data?.userId === bob.id)
  const { ban } = await mod.client.ack('room.ban', { roomId, userId: bob.id, reason: 'spam' }) as { ban: { userId: string, by: string, until: string | null, reason: string } }
  t.same([ban.userId, ban.by, ban.until, ban.reason], [bob.id, mod.id, null, 'spam'], 'the ack: a permanent ban by the moderator')
  t.equal((await removed).data?.reason, 'banned', 'bob is told why he lost the room')
  const leftData = (await left).data ?? {}
  t.same([leftData.banned, leftData.by], [true, mod.id], 'the room hears member_left with banned: true')

  t.equal((await bob.client.request('room.join', { roomId })).error?.code, 'BANNED', 'bob cannot rejoin')
  t.equal((await owner.client.request('room.member.add', { roomId, userIds: [bob.id] })).error?.code, 'BANNED', 'nor be added')
  const byRest = await rest(nodeB, owner.token, 'POST', `/api/rooms/${roomId}/members`, { userIds: [bob.id] })
  t.same([byRest.status, byRest.body?.code], [403, 'BANNED'], 'nor over REST')

  const bans = await rest(nodeB, mod.token, 'GET', `/api/rooms/${roomId}/bans`)
  t.same((bans.body as { bans: Array<{ userId: string }> }).bans.map((row) => row.userId), [bob.id], 'room.bans / GET bans lists it')
  t.equal((await watcher.client.request('room.bans', { roomId })).error?.code, 'FORBIDDEN', 'a MEMBER may not read the bans')

  const lifted = watcher.client.next((frame) => frame.event === 'room.ban_lifted' && frame.data?.userId === bob.id)
  const unban = await rest(nodeB, mod.token, 'DELETE', `/api/rooms/${roomId}/bans/${bob.id}`)
  t.equal(unban.status, 204, 'lifted over REST')
  await lifted
  await bob.client.ack('room.join', { roomId })
  t.pass('bob joins again once the ban is lifted')

  const synced = await watcher.client.ack('sync', { cursors: [{ roomId, seq: 0 }] }) as { rooms: Array<{ events: Array<{ event: string, data: Record<string, unknown> }> }> }
  const names = synced.rooms[0]?.events.map((event) => event.event) ?? []
  t.ok(names.includes('room.ban_lifted') && synced.rooms[0]?.events.some((event) => event.event === 'room.member_left' && event.data.banned === true), 'the ban and its lifting replay in sync')
})

onOneAndTwoNodes(t, 'who may ban whom; a timed ban ends by itself; a ban before joining', async (t, nodeA, nodeB) => {
  const owner = await connect(nodeA, uid('owner'))
  const admin = await connect(nodeA, uid('admin'))
  const mod = await connect(nodeB, uid('mod'))
  const member = await connect(nodeB, uid('member'))
  const stranger = await connect(nodeB, uid('stranger'))
  close(t, owner, admin, mod, member, stranger)
  const roomId = await groupRoom(owner, [admin.id, mod.id, member.id])
  await owner.client.ack('room.member.role', { roomId, userId: admin.id, role: 'ADMIN' })
  await owner.client.ack('room.member.role', { roomId, userId: mod.id, role: 'MODERATOR' })

  t.equal((await mod.client.request('room.ban', { roomId, userId: admin.id })).error?.code, 'FORBIDDEN', 'a MODERATOR cannot ban an ADMIN')
  t.equal((await member.client.request('room.ban', { roomId, userId: stranger.id })).error?.code, 'FORBIDDEN', 'a MEMBER bans no one')
  t.equal((await mod.client.request('room.ban', { roomId, userId: mod.id })).error?.code, 'FORBIDDEN', 'nor oneself')
  t.equal((await mod.client.request('room.ban', { roomId, userId: 'system' })).error?.code, 'VALIDATION_FAILED', 'the server\'s user is reserved')
  t.equal((await mod.client.request('room.ban', { roomId, userId: member.id, durationSec: 0 })).error?.code, 'VALIDATION_FAILED', 'a duration of at least a second')

  const heard = member.client.next((frame) => frame.event === 'room.member_banned' && frame.data?.userId === stranger.id)
  const timed = await rest(nodeA, admin.token, 'PUT', `/api/rooms/${roomId}/bans/${stranger.id}`, { durationSec: 1 })
  t.equal(timed.status, 200, 'an ADMIN bans a non-member for a second over REST')
  t.ok(typeof timed.body?.ban?.until === 'string', 'with its end')
  t.equal((await heard).data?.by, admin.id, 'the room hears room.member_banned')
  t.equal((await stranger.client.request('room.join', { roomId })).error?.code, 'BANNED', 'the stranger cannot join meanwhile')
  await until('the timed ban ends by itself', async () => (await stranger.client.request('room.join', { roomId })).error === undefined, { timeoutMs: 5000, everyMs: 200 })
  t.same(((await rest(nodeA, owner.token, 'GET', `/api/rooms/${roomId}/bans`)).body as { bans: unknown[] }).bans, [], 'an ended ban is not listed')
})

onOneAndTwoNodes(t, 'a muted member reads but cannot send, edit, react or type, on every node, until unmuted or it ends', async (t, nodeA, nodeB) => {
  const owner = await connect(nodeA, uid('owner'))
  const bob = await connect(nodeB, uid('bob'))
  close(t, owner, bob)
  const roomId = await groupRoom(owner, [bob.id])
  const sent = await bob.client.ack('message.send', { roomId, content: 'before' }) as { message: { id: string } }

  const updated = bob.client.next((frame) => frame.event === 'room.member_updated' && frame.data?.action === 'muted')
  const muted = await rest(nodeA, owner.token, 'PUT', `/api/rooms/${roomId}/mutes/${bob.id}`, { reason: 'calm down' })
  t.equal(muted.status, 200)
  t.equal(muted.body?.member?.mutedUntil, '9999-12-31T00:00:00.000Z', 'muted until unmuted')
  t.equal(((await updated).data?.member as { mutedUntil?: string }).mutedUntil, '9999-12-31T00:00:00.000Z', 'the room hears member_updated with mutedUntil')
  // The invalidation reaches node B within a second: bob's next send there is refused.
  await until('bob\'s send is refused on his node', async () => (await bob.client.request('message.send', { roomId, content: 'x' })).error?.code === 'MUTED', { timeoutMs: 1000, everyMs: 50 })
  t.equal((await bob.client.request('message.edit', { messageId: sent.message.id, content: 'edited' })).error?.code, 'MUTED', 'no edit')
  t.equal((await bob.client.request('reaction.add', { messageId: sent.message.id, emoji: '👍' })).error?.code, 'MUTED', 'no reaction')
  t.equal((await bob.client.request('typing.start', { roomId })).error?.code, 'MUTED', 'no typing')
  const restSend = await rest(nodeB, bob.token, 'POST', `/api/rooms/${roomId}/messages`, { content: 'over REST' })
  t.same([restSend.status, restSend.body?.code], [403, 'MUTED'], 'nor over REST')
  const history = await bob.client.ack('history.fetch', { roomId }) as { messages: unknown[] }
  t.equal(history.messages.length, 1, 'he still reads; nothing of his was written')

  const unmuted = await owner.client.ack('room.unmute', { roomId, userId: bob.id }) as { member: { mutedUntil?: string } }
  t.notOk('mutedUntil' in unmuted.member, 'unmuted')
  await until('bob sends again', async () => (await bob.client.request('message.send', { roomId, content: 'after' })).error === undefined, { timeoutMs: 1000, everyMs: 50 })

  await owner.client.ack('room.mute', { roomId, userId: bob.id, durationSec: 1 })
  await until('muted for a second', async () => (await bob.client.request('message.send', { roomId, content: 'x' })).error?.code === 'MUTED', { timeoutMs: 1000, everyMs: 50 })
  await until('the mute ends by itself', async () => (await bob.client.request('message.send', { roomId, content: 'free' })).error === undefined, { timeoutMs: 5000, everyMs: 200 })
  t.equal((await bob.client.request('room.mute', { roomId, userId: owner.id })).error?.code, 'FORBIDDEN', 'a MEMBER mutes no one')
  t.same(await feedTypes(nodeA, roomId), [], 'feed off: nothing staged')
})

onOneAndTwoNodes(t, 'slow mode: one send per member per slowModeSec, across two sockets; moderators exempt', async (t, nodeA, nodeB) => {
  const owner = await connect(nodeA, uid('owner'))
  const bobId = uid('bob')
  const bobA = await connect(nodeA, bobId)
  const bobB = await connect(nodeB, bobId)
  close(t, owner, bobA, bobB)
  const roomId = await groupRoom(owner, [bobId])
  const { room } = await rest(nodeA, owner.token, 'PATCH', `/api/rooms/${roomId}`, { slowModeSec: 30 }).then((reply) => reply.body as { room: { slowModeSec: number } })
  t.equal(room.slowModeSec, 30, 'set over REST')
  await until('both nodes know', async () => {
    const entry = await scopeOf(nodeB).chatRooms.cache.room(roomId)
    return entry?.room.slowModeSec === 30
  }, { timeoutMs: 2000 })
  // A send the batch refuses (a thread root that does not exist) wrote nothing: the turn is handed back.
  const unwritten = await bobA.client.request('message.send', { roomId, content: 'lost', threadRootId: '00000000-0000-4000-8000-000000000000' })
  t.equal(unwritten.error?.code, 'NOT_FOUND', 'a send refused by its batch')
  await until('its turn is handed back', async () => (await scopeOf(nodeA).chatRedis?.exists(`${scopeOf(nodeA).chatConfig.redisPrefix}slow:${roomId}:${bobId}`) ?? 0) === 0, { timeoutMs: 2000, everyMs: 20 })
  const answers = await Promise.all([
    bobA.client.request('message.send', { roomId, content: 'one' }),
    bobB.client.request('message.send', { roomId, content: 'two' }),
  ])
  const codes = answers.map((answer) => answer.error?.code ?? 'ok').sort()
  t.same(codes, ['RATE_LIMITED', 'ok'], 'two sockets at once: one send, one refusal')
  const refused = answers.find((answer) => answer.error !== undefined)
  t.ok(((refused?.error?.details as { retryAfterMs?: number }).retryAfterMs ?? 0) > 0, 'with retryAfterMs')
  const overRest = await rest(nodeB, bobB.token, 'POST', `/api/rooms/${roomId}/messages`, { content: 'three' })
  t.same([overRest.status, overRest.body?.code], [429, 'RATE_LIMITED'], 'a REST send in the same turn is refused too')
  await owner.client.ack('message.send', { roomId, content: 'owner 1' })
  await owner.client.ack('message.send', { roomId, content: 'owner 2' })
  t.pass('the OWNER is exempt')
  const history = await owner.client.ack('history.fetch', { roomId }) as { messages: unknown[] }
  t.equal(history.messages.length, 3, 'one of bob\'s, two of the owner\'s')
})

onOneAndTwoNodes(t, 'a frozen room and a CHANNEL take posts from ADMIN and above; members still read and react', async (t, nodeA, nodeB) => {
  const owner = await connect(nodeA, uid('owner'))
  const bob = await connect(nodeB, uid('bob'))
  close(t, owner, bob)
  const roomId = await groupRoom(owner, [bob.id])
  const before = await bob.client.ack('message.send', { roomId, content: 'hi' }) as { message: { id: string } }
  const { room } = await owner.client.ack('room.update', { roomId, frozen: true }) as { room: { frozen: boolean } }
  t.equal(room.frozen, true)
  await until('bob is refused on his node', async () => (await bob.client.request('message.send', { roomId, content: 'x' })).error?.code === 'FORBIDDEN', { timeoutMs: 1000, everyMs: 50 })
  const frozenRest = await rest(nodeB, bob.token, 'POST', `/api/rooms/${roomId}/messages`, { content: 'over REST' })
  t.same([frozenRest.status, frozenRest.body?.code], [403, 'FORBIDDEN'], 'and over REST')
  await bob.client.ack('reaction.add', { messageId: before.message.id, emoji: '👍' })
  await owner.client.ack('message.send', { roomId, content: 'the owner speaks' })
  await owner.client.ack('room.update', { roomId, frozen: false })
  await until('thawed', async () => (await bob.client.request('message.send', { roomId, content: 'back' })).error === undefined, { timeoutMs: 1000, everyMs: 50 })

  const channel = (await owner.client.ack('room.create', { name: uid('news'), type: 'CHANNEL', memberIds: [bob.id] }) as { room: { id: string } }).room.id
  const post = await owner.client.ack('message.send', { roomId: channel, content: 'news' }) as { message: { id: string } }
  t.equal((await bob.client.request('message.send', { roomId: channel, content: 'me too' })).error?.code, 'FORBIDDEN', 'a MEMBER does not post in a CHANNEL')
  t.equal((await bob.client.request('typing.start', { roomId: channel })).error?.code, 'FORBIDDEN', 'nor types there')
  await bob.client.ack('reaction.add', { messageId: post.message.id, emoji: '👍' })
  t.pass('but reacts')
})

onOneAndTwoNodes(t, 'the feed names moderation actions', async (t, nodeA, nodeB) => {
  const owner = await connect(nodeA, uid('owner'))
  const bob = await connect(nodeB, uid('bob'))
  const carol = uid('carol')
  close(t, owner, bob)
  const roomId = await groupRoom(owner, [bob.id])
  await owner.client.ack('room.mute', { roomId, userId: bob.id })
  await owner.client.ack('room.unmute', { roomId, userId: bob.id })
  await owner.client.ack('room.ban', { roomId, userId: bob.id })
  await owner.client.ack('room.ban', { roomId, userId: carol })
  await owner.client.ack('room.unban', { roomId, userId: carol })
  t.same(await feedTypes(nodeA, roomId), ['room.created', 'member.muted', 'member.unmuted', 'member.banned', 'member.banned', 'member.unbanned'])
}, { options: { feed: {} } })

onOneAndTwoNodes(t, 'reports reach the moderators live, not the room; resolved by dismissing or deleting', async (t, nodeA, nodeB) => {
  const owner = await connect(nodeA, uid('owner'))
  const mod = await connect(nodeA, uid('mod'))
  const bob = await connect(nodeB, uid('bob'))
  const carol = await connect(nodeB, uid('carol'))
  close(t, owner, mod, bob, carol)
  const roomId = await groupRoom(owner, [mod.id, bob.id, carol.id])
  await owner.client.ack('room.member.role', { roomId, userId: mod.id, role: 'MODERATOR' })
  const rude = await bob.client.ack('message.send', { roomId, content: 'something rude' }) as { message: { id: string } }
  const fine = await bob.client.ack('message.send', { roomId, content: 'something fine' }) as { message: { id: string } }

  const toMod = mod.client.next((frame) => frame.event === 'message.reported' && frame.data?.roomId === roomId)
  const toOwner = owner.client.next((frame) => frame.event === 'message.reported' && frame.data?.roomId === roomId)
  const { report } = await carol.client.ack('message.report', { messageId: rude.message.id, reason: 'rude' }) as { report: { id: string, status: string, reporterId: string, excerpt: string } }
  t.same([report.status, report.reporterId, report.excerpt], ['open', carol.id, 'something rude'], 'the ack: an open report')
  t.equal(((await toMod).data?.report as { id: string }).id, report.id, 'the moderator (on the other node) hears it live')
  t.equal(((await toOwner).data?.report as { id: string }).id, report.id, 'so does the owner: every MODERATOR and above, in one publish')
  t.notOk(await receivesReport(bob), 'the reported member does not')
  const byRest = await rest(nodeB, bob.token, 'POST', `/api/messages/${fine.message.id}/reports`, { reason: 'testing' })
  t.equal(byRest.status, 201, 'a report over REST')
  t.equal((await carol.client.request('message.report', { messageId: fine.message.id, reason: '' })).error?.code, 'VALIDATION_FAILED', 'a reason is required')

  t.equal((await carol.client.request('room.reports', { roomId })).error?.code, 'FORBIDDEN', 'a MEMBER does not read reports')
  const open = await rest(nodeA, mod.token, 'GET', `/api/rooms/${roomId}/reports`)
  t.same((open.body as { reports: Array<{ messageId: string }> }).reports.map((one) => one.messageId), [fine.message.id, rude.message.id], 'the open queue, newest first')

  const dismissed = await mod.client.ack('room.report.resolve', { reportId: (byRest.body as { report: { id: string } }).report.id, action: 'dismiss' }) as { report: { status: string } }
  t.equal(dismissed.report.status, 'dismissed')
  const deleted = bob.client.next((frame) => frame.event === 'message.deleted' && frame.data?.messageId === rude.message.id)
  const actioned = await rest(nodeA, mod.token, 'POST', `/api/reports/${report.id}/resolve`, { action: 'delete' })
  t.same([actioned.status, actioned.body?.report?.status, actioned.body?.report?.excerpt], [200, 'actioned', ''], 'resolved by deleting the message')
  await deleted
  t.pass('the room hears the deletion like any moderator delete')
  t.same(((await mod.client.ack('room.reports', { roomId })) as { reports: unknown[] }).reports, [], 'nothing open any more')
})

async function receivesReport (person: Person): Promise<boolean> {
  try {
    await person.client.next((frame) => frame.event === 'message.reported', 300)
    return true
  } catch {
    return false
  }
}

onOneAndTwoNodes(t, 'pins: a moderator pins, the room hears room.updated with pinnedMessageIds, in sync too', async (t, nodeA, nodeB) => {
  const owner = await connect(nodeA, uid('owner'))
  const bob = await connect(nodeB, uid('bob'))
  close(t, owner, bob)
  const roomId = await groupRoom(owner, [bob.id])
  const first = await bob.client.ack('message.send', { roomId, content: 'pin me' }) as { message: { id: string } }
  const second = await owner.client.ack('message.send', { roomId, content: 'and me' }) as { message: { id: string } }
  t.equal((await bob.client.request('message.pin', { messageId: first.message.id })).error?.code, 'FORBIDDEN', 'a MEMBER does not pin in a group')

  const heard = bob.client.next((frame) => frame.event === 'room.updated' && frame.data?.roomId === roomId)
  const ack = await owner.client.ack('message.pin', { messageId: first.message.id }) as { seq: number }
  t.ok(ack.seq > 0, 'the pin took a seq')
  t.same(((await heard).data?.room as { pinnedMessageIds: string[] }).pinnedMessageIds, [first.message.id], 'bob hears it on his node')
  t.equal((await rest(nodeB, owner.token, 'PUT', `/api/messages/${second.message.id}/pin`)).status, 200, 'pinned over REST')
  t.same(((await owner.client.ack('message.pin', { messageId: first.message.id })) as { seq?: number }).seq, undefined, 'pinning again changes nothing')
  await owner.client.ack('message.unpin', { messageId: first.message.id })
  const room = await rest(nodeB, bob.token, 'GET', `/api/rooms/${roomId}`)
  t.same((room.body as { room: { pinnedMessageIds: string[] } }).room.pinnedMessageIds, [second.message.id], 'the room shows what is pinned')
  const synced = await bob.client.ack('sync', { cursors: [{ roomId, seq: 0 }] }) as { rooms: Array<{ events: Array<{ event: string }> }> }
  t.equal(synced.rooms[0]?.events.filter((event) => event.event === 'room.updated').length, 3, 'the three pin changes replay in sync')

  const peer = await connect(nodeA, uid('peer'))
  close(t, peer)
  const dm = ((await peer.client.ack('dm.open', { userId: bob.id })) as { room: { id: string } }).room.id
  const hello = await peer.client.ack('message.send', { roomId: dm, content: 'hello' }) as { message: { id: string } }
  await bob.client.ack('message.pin', { messageId: hello.message.id })
  t.pass('any member pins in a DIRECT room')
})

t.test('the client\'s typed moderation methods', async (t) => {
  const node = await startNode(t)
  const ownerId = uid('owner')
  const bobId = uid('bob')
  const owner = clientFor(t, node, ownerId)
  const bob = clientFor(t, node, bobId)
  await owner.connect()
  await bob.connect()
  const { room } = await owner.createRoom({ name: 'moderated', type: 'GROUP', memberIds: [bobId] })
  const { message } = await bob.sendMessage(room.id, 'hello', { mentions: [ownerId] })
  t.same(message.mentions, [ownerId], 'sendMessage takes mentions')
  const { member } = await owner.mute(room.id, bobId, { durationSec: 60 })
  t.ok(member.mutedUntil !== undefined, 'mute')
  await t.rejects(bob.react(message.id, '👍'), { code: 'MUTED' }, 'a muted member\'s reaction rejects with MUTED')
  await owner.unmute(room.id, bobId)
  const { report } = await bob.report(message.id, 'testing the client')
  t.equal((await owner.reports(room.id)).reports[0]?.id, report.id, 'report and reports')
  t.equal((await owner.resolveReport(report.id, 'dismiss')).report.status, 'dismissed', 'resolveReport')
  t.ok((await owner.pin(message.id)).seq !== undefined, 'pin')
  await owner.unpin(message.id)
  t.equal((await owner.ban(room.id, bobId, { reason: 'done' })).ban.reason, 'done', 'ban')
  t.equal((await owner.bans(room.id)).bans.length, 1, 'bans')
  await owner.unban(room.id, bobId)
  t.same((await owner.bans(room.id)).bans, [], 'unban')
})

onOneAndTwoNodes(t, 'SUPPORT rooms: the customer\'s, with staff who hold chats:support; a queue of the open ones', async (t, nodeA, nodeB) => {
  const tenant = uid('shop')
  const customer = await connect(nodeA, uid('customer'), { tenant })
  const agent = await connect(nodeB, uid('agent'), { tenant, permissions: ['chats:support'] })
  const other = await connect(nodeB, uid('other'), { tenant })
  const foreignAgent = await connect(nodeB, uid('agent'), { tenant: uid('elsewhere'), permissions: ['chats:support'] })
  close(t, customer, agent, other, foreignAgent)
  const { room } = await customer.client.ack('room.create', { name: 'my order is late', type: 'SUPPORT', isPrivate: false }) as { room: { id: string, isPrivate: boolean, status: string } }
  t.same([room.isPrivate, room.status], [true, 'open'], 'a SUPPORT room is private and open')

  const queue = await agent.client.ack('support.queue', {}) as { rooms: Array<{ id: string }> }
  t.same(queue.rooms.map((one) => one.id), [room.id], 'the agent sees it in the queue')
  t.equal((await other.client.request('support.queue', {})).error?.code, 'FORBIDDEN', 'a user without chats:support has no queue')
  t.same(((await rest(nodeB, foreignAgent.token, 'GET', '/api/support/queue')).body as { rooms: unknown[] }).rooms, [], 'staff of another tenant see none of it')
  t.equal((await foreignAgent.client.request('room.join', { roomId: room.id })).error?.code, 'NOT_FOUND', 'nor may join it')
  t.equal((await other.client.request('room.join', { roomId: room.id })).error?.code, 'FORBIDDEN', 'an ordinary user may not join')

  const joined = customer.client.next((frame) => frame.event === 'room.member_joined' && (frame.data?.user as { id: string }).id === agent.id)
  const join = await agent.client.ack('room.join', { roomId: room.id }) as { room: { myRole: string } }
  t.equal(join.room.myRole, 'MODERATOR', 'the agent enters as MODERATOR')
  t.equal((await joined).data?.role, 'MODERATOR', 'the customer sees the agent join')
  await agent.client.ack('message.send', { roomId: room.id, content: 'how can I help?' })

  const closed = await agent.client.ack('room.update', { roomId: room.id, status: 'closed' }) as { room: { status: string } }
  t.equal(closed.room.status, 'closed', 'the agent closes it')
  t.same(((await agent.client.ack('support.queue', {})) as { rooms: unknown[] }).rooms, [], 'a closed room leaves the queue')
  t.equal((await agent.client.request('room.update', { roomId: room.id, name: 'renamed' })).error?.code, 'FORBIDDEN', 'the rest of room.update stays ADMIN\'s')
  const group = await groupRoom(customer, [])
  t.equal((await customer.client.request('room.update', { roomId: group, status: 'closed' })).error?.code, 'VALIDATION_FAILED', 'only SUPPORT rooms have a status')
})
