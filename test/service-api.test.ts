import t, { type Test } from 'tap'
import { connect, uid } from './fixtures/chat.js'
import { rest } from './fixtures/rooms.js'
import { onOneAndTwoNodes, startNode, type TestNode } from './fixtures/server.js'
import { until } from './fixtures/timing.js'
import { ChatService, onBookingCancelled, onBookingConfirmed } from '../examples/booking-service/booking.js'

// The service API (protocol 11.5, issue 22): a token with chats:service drives its tenant's rooms over
// REST through the same service methods as the socket events. tenants.test.ts checks that it never
// reaches another tenant; here, what it does.

async function bookingFlow (t: Test, nodeA: TestNode, nodeB: TestNode): Promise<void> {
  const tenant = 'market'
  const studentId = uid('student')
  const tutorId = uid('tutor')
  const student = await connect(nodeA, studentId, { tenant })
  const tutor = await connect(nodeB, tutorId, { tenant })
  t.teardown(() => { student.client.close(); tutor.client.close() })
  const token = nodeA.token(uid('booking'), { tenant, permissions: ['chats:service'] })
  const chat = new ChatService(nodeA.httpUrl, token)

  const booking = { bookingId: uid('b'), studentId, tutorId, when: 'Monday 10:00' }
  const roomId = await onBookingConfirmed(chat, booking)
  const added = await student.client.next((frame) => frame.event === 'room.added', 10_000)
  t.equal((added.data as { room: { id: string, myRole: string } }).room.myRole, 'MEMBER', 'the student is added')
  const system = await tutor.client.next((frame) => frame.event === 'message.new' && (frame.data as { message: { type: string } }).message.type === 'SYSTEM', 10_000)
  t.match(system.data, { message: { roomId, content: 'Booking confirmed for Monday 10:00.', sender: { id: 'system' } } }, 'the tutor (another node) gets the SYSTEM message')
  const members = (await tutor.client.ack('room.members', { roomId })).members as Array<{ user: { id: string }, role: string }>
  t.same(members.map((member) => [member.user.id, member.role]).sort(), [[studentId, 'MEMBER'], [tutorId, 'OWNER']].sort(), 'the tutor owns it')
  await onBookingConfirmed(chat, booking).catch(() => {})

  // As a named member, history, custom events, presence.
  const asTutor = await chat.call<{ message: { sender: { id: string } } }>('POST', `/rooms/${roomId}/messages`, { type: 'TEXT', senderId: tutorId, content: 'See you Monday' })
  t.equal(asTutor.message.sender.id, tutorId, 'posted as the tutor')
  const stranger = await rest(nodeA, token, 'POST', `/api/service/rooms/${roomId}/messages`, { type: 'TEXT', senderId: uid('nobody'), content: 'hi' })
  t.equal((stranger.body as { code: string }).code, 'NOT_MEMBER', 'a named sender must be a member')
  const history = await chat.call<{ messages: Array<{ content: string }> }>('GET', `/rooms/${roomId}/messages`)
  t.same(history.messages.map((message) => message.content).filter((content) => content.startsWith('Booking')), ['Booking confirmed for Monday 10:00.'], 'a retried confirmation posted its message once')
  await chat.call('POST', `/rooms/${roomId}/events`, { event: 'booking.reminder', data: { in: '1h' } })
  t.match((await student.client.next((frame) => frame.event === 'booking.reminder', 10_000)).data, { in: '1h' }, 'a custom room event is pushed')
  await chat.call('POST', `/users/${tutorId}/events`, { event: 'booking.paid', data: { bookingId: booking.bookingId } })
  t.ok(await tutor.client.next((frame) => frame.event === 'booking.paid', 10_000), 'a custom user event reaches the user on their node')
  const protocolEvent = await rest(nodeA, token, 'POST', `/api/service/rooms/${roomId}/events`, { event: 'message.new', data: {} })
  t.equal(protocolEvent.status, 400, 'a custom event may not pass for a protocol event')
  const presence = await chat.call<{ users: Array<{ userId: string, status: string }> }>('GET', `/presence?userIds=${studentId},${uid('absent')}`)
  t.same(presence.users.map((user) => user.status), ['online', 'offline'], 'presence of the tenant\'s users, no shared room needed')

  await onBookingCancelled(chat, { roomId, bookingId: booking.bookingId })
  t.match((await student.client.next((frame) => frame.event === 'room.updated', 10_000)).data, { roomId, room: { frozen: true } }, 'the student hears the room closed on cancel')
  await until('the student can no longer post, on his node', async () => (await student.client.request('message.send', { roomId, content: 'still here?' })).error?.code === 'FORBIDDEN', { timeoutMs: 2000, everyMs: 50 })
  const kept = await student.client.ack('history.fetch', { roomId }) as { messages: Array<{ content: string }> }
  t.equal(kept.messages.at(-1)?.content, 'Booking cancelled.', 'but still reads the conversation, ending with the cancellation')
}

onOneAndTwoNodes(t, 'a booking service: confirm, remind, cancel', bookingFlow)

t.test('the service API needs the chats:service grant, whatever requirePermissions says', async (t) => {
  const node = await startNode(t)
  const plain = node.token(uid('someone'))
  const reply = await rest(node, plain, 'POST', '/api/service/rooms', { name: 'x', type: 'GROUP', ownerId: 'someone' })
  t.equal(reply.status, 403)
  t.match(reply.body, { code: 'FORBIDDEN', message: /chats:service/ })
  t.equal((await rest(node, null, 'GET', '/api/service/presence?userIds=a')).status, 401, 'no token: 401')
})
