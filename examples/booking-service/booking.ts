/**
 * A booking service (a tutoring marketplace's) that opens the conversation between a student and a tutor
 * when a booking is confirmed, through the chat's service API (protocol 11.5). Its token carries the
 * `chats:service` permission and the marketplace's tenant; it talks plain HTTP and JSON.
 *
 *   const chat = new ChatService('http://127.0.0.1:3000', serviceToken)
 *   const roomId = await onBookingConfirmed(chat, { bookingId: 'b-42', studentId: 'stu-1', tutorId: 'tut-9', when: '…' })
 *   await onBookingCancelled(chat, { roomId, bookingId: 'b-42' })
 */
export interface Booking {
  bookingId: string
  studentId: string
  tutorId: string
  when: string
}

export class ChatService {
  constructor (private readonly baseUrl: string, private readonly token: string) {}

  async call<T> (method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.baseUrl}/api/service${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    })
    const text = await response.text()
    if (!response.ok) throw new Error(`chat ${method} ${path}: ${response.status} ${text}`)
    return (text.length === 0 ? null : JSON.parse(text)) as T
  }
}

/** Confirmed: a private room with both people, the tutor as its owner, and a SYSTEM message saying why. */
export async function onBookingConfirmed (chat: ChatService, booking: Booking): Promise<string> {
  const { room } = await chat.call<{ room: { id: string } }>('POST', '/rooms', {
    name: `Lesson ${booking.bookingId}`, type: 'GROUP', isPrivate: true, ownerId: booking.tutorId, memberIds: [booking.studentId],
  })
  // The booking id makes the message idempotent: a retried confirmation posts it once.
  await chat.call('POST', `/rooms/${room.id}/messages`, { content: `Booking confirmed for ${booking.when}.`, clientMsgId: `confirmed-${booking.bookingId}` })
  return room.id
}

/**
 * Cancelled: a SYSTEM message, then the room is closed to new messages (frozen: only ADMIN and above,
 * here the tutor who owns it, may still post). Both keep the conversation to read.
 */
export async function onBookingCancelled (chat: ChatService, booking: { roomId: string, bookingId: string }): Promise<void> {
  await chat.call('POST', `/rooms/${booking.roomId}/messages`, { content: 'Booking cancelled.', clientMsgId: `cancelled-${booking.bookingId}` })
  await chat.call('PATCH', `/rooms/${booking.roomId}`, { frozen: true })
}
