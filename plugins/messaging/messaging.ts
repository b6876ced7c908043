import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { and, eq, gt, isNull, ne, sql } from 'drizzle-orm'
import { messages, reactions, roomMembers, rooms, type MessageType } from '../../db/schema/index.js'
import type { ChatDb } from '../../db/client.js'
import { chatError, refusals } from '../core/errors.js'
import type { ChatUser, Connection } from '../realtime/connection.js'
import { createSendWriter, type SendJob, type SendOutcome } from './send-writer.js'
import { createScreening } from './screening.js'
import { Turns } from '../../lib/turns.js'
import { historyPage, hydrate, messageById, reactionsOf, type MessageRow, type Reactions } from '../../db/queries/message-reader.js'
import { SendInput, type Message, type SearchPage, type SearchRequest } from '../../schemas/messaging.js'
import { Compile } from 'typebox/compile'
import { unstorableField } from '../../lib/input-hygiene.js'
import type { RoomEvent } from './room-log.js'
import { ENVELOPE_RESERVE, ReplyBudget } from '../../lib/reply-budget.js'
import type { Membership, RoomAction, RoomsService, SlowModeTurn } from '../rooms/types.js'
import { userKeyOf } from '../../lib/user-key.js'
import { createReports } from './reports.js'
import { createPins } from './pins.js'
import { createSearch } from './search.js'
import { createSync, type SyncRoomResult } from './sync.js'
import type { Report } from '../../schemas/moderation.js'
import type { ReportStatus } from '../../db/schema/index.js'

const ATTACHMENT_TYPES = new Set<MessageType>(['IMAGE', 'FILE', 'VOICE', 'VIDEO'])
const NO_MENTIONS: string[] = []
/** For sends from the host's code, which reach the service without the gateway's or REST's checks. */
const checkSendInput = Compile(SendInput)
const HISTORY_REPLY_FRAME = '{"messages":[],"hasMore":false}'
export interface SendOptions {
  /** The sending socket: it gets the ack and not the message.new echo. */
  except?: Connection
  /** Server-side senders (the host's code) may post SYSTEM messages; clients may not. */
  allowSystem?: boolean
}

/** The room and seq of the event a change wrote: the acting socket's ack carries them instead of the push. */
export interface EventPlace {
  roomId: string
  seq: number
}

function placeOf (events: RoomEvent[]): Partial<EventPlace> {
  const event = events[0]
  return event === undefined ? {} : { roomId: event.roomId, seq: event.seq }
}

/**
 * A history page cut to fit in one reply: the messages nearest the cursor are kept (the oldest when paging
 * forward with `after`, the newest otherwise) and `hasMore` says that the rest is still there. A single
 * message too large for any reply is refused (REPLY_TOO_LARGE) rather than skipped in silence.
 */
function fitHistory (page: { messages: Message[], hasMore: boolean }, forward: boolean, maxReplyBytes: number): { messages: Message[], hasMore: boolean } {
  const budget = new ReplyBudget(maxReplyBytes, ENVELOPE_RESERVE + HISTORY_REPLY_FRAME.length)
  const { messages: all } = page
  let kept = 0
  while (kept < all.length && budget.take(JSON.stringify(all[forward ? kept : all.length - 1 - kept]))) kept += 1
  if (kept === all.length) return page
  if (kept === 0) throw refusals.replyTooLarge()
  return { messages: forward ? all.slice(0, kept) : all.slice(all.length - kept), hasMore: true }
}

export interface MessagingService {
  /** `messageJson` is the message as serialized for its push, when this send wrote it (acks reuse it). */
  send (user: ChatUser, input: SendInput, options?: SendOptions): Promise<{ message: Message, duplicate: boolean, messageJson?: string }>
  /** The edited message, and where the edit landed in the room's log. */
  edit (user: ChatUser, messageId: string, content: string, except?: Connection): Promise<{ message: Message } & EventPlace>
  /** Where the deletion landed in the room's log; nothing when the message was already deleted. */
  remove (user: ChatUser, messageId: string, except?: Connection): Promise<Partial<EventPlace>>
  /** The message's reactions now, and where the change landed (nothing when nothing changed). */
  react (user: ChatUser, messageId: string, emoji: string, add: boolean, except?: Connection): Promise<{ reactions: Reactions } & Partial<EventPlace>>
  history (user: ChatUser, roomId: string, page: { before?: number, after?: number, limit?: number, threadRootId?: string }): Promise<{ messages: Message[], hasMore: boolean }>
  markRead (user: ChatUser, roomId: string, seq: number, except?: Connection): Promise<{ lastReadSeq: number, unreadCount: number, mentionCount: number }>
  /** How a client catches up: each named room's events after its cursor (plugins/messaging/sync.ts). */
  sync (user: ChatUser, cursors: Array<{ roomId: string, seq: number }>): Promise<{ rooms: SyncRoomResult[] }>
  /** Resolves when every queued send is committed (graceful shutdown). */
  drain (): Promise<void>
  /** Reports a message to its room's moderators (protocol 11.3; plugins/messaging/reports.ts). */
  report (user: ChatUser, messageId: string, reason: string): Promise<Report>
  reports (user: ChatUser, roomId: string, status: ReportStatus): Promise<Report[]>
  resolveReport (user: ChatUser, reportId: string, action: 'dismiss' | 'delete'): Promise<Report>
  /** Full-text search in the caller's rooms (plugins/messaging/search.ts). */
  search (user: ChatUser, request: SearchRequest): Promise<SearchPage>
  /** Pins or unpins a message; where the room.updated landed (nothing when nothing changed). */
  pin (user: ChatUser, messageId: string, pinned: boolean, except?: Connection): Promise<Partial<EventPlace>>
}

declare module 'fastify' {
  interface FastifyInstance {
    chatMessaging: MessagingService
  }
}

/**
 * Durable, ordered messaging. A send is validated against the node's membership cache (no database
 * read), queued for group commit, and acknowledged only after its batch committed; the broadcast frame
 * is built once from what was written.
 */
export const messagingPlugin = fp(async function messagingPlugin (app: FastifyInstance) {
  const db = app.chatDb
  const config = app.chatConfig
  const roomLog = app.chatRoomLog
  const roomsService = (): RoomsService => app.chatRooms

  function checkContent (content: string): string {
    const trimmed = content.trim()
    if (trimmed.length === 0) throw chatError('VALIDATION_FAILED', 'content: must not be empty', [{ field: 'content', message: 'must not be empty' }])
    if (trimmed.length > config.maxMessageLength) {
      throw chatError('VALIDATION_FAILED', `content: at most ${config.maxMessageLength} characters`, [{ field: 'content', message: `must have at most ${config.maxMessageLength} characters` }])
    }
    return trimmed
  }

  function refuseUnstorable (input: SendInput): void {
    if (!checkSendInput.Check(input)) {
      const first = [...checkSendInput.Errors(input)][0]
      throw chatError('VALIDATION_FAILED', first === undefined ? 'invalid message' : `${first.instancePath.slice(1) || 'message'}: ${first.message}`)
    }
    const unstorable = unstorableField(input)
    if (unstorable !== null) throw refusals.unstorableText(unstorable)
  }

  const writer = createSendWriter(app)
  /** Null when nothing is configured to screen content: then no send or edit waits for it. */
  const screening = createScreening(app)

  /** A message by id, visible only to members of its room (others get NOT_FOUND, as if it did not exist). */
  async function visibleMessage (user: ChatUser, messageId: string, action?: 'message.delete.any'): Promise<{ row: MessageRow, role: Awaited<ReturnType<RoomsService['requireMember']>>['role'] }> {
    const row = await messageById(db, messageId)
    if (row === null) throw refusals.messageNotFound()
    // The member's role; for a moderator action the permissions claim chats:moderate may raise it.
    const role = await roomsService().actingRole(user, row.roomId, action)
    if (role === null) throw refusals.messageNotFound()
    return { row, role }
  }

  /**
   * The cache said the user may; the database decides, in the writing transaction after the room's lock
   * (taken by roomLog.append), so a kick or a demotion committed on any node meanwhile rolls the write back.
   */
  async function stillMay (tx: ChatDb, user: ChatUser, roomId: string, action: RoomAction): Promise<void> {
    const role = await roomsService().actingRoleIn(tx, user, roomId, action)
    if (role === null) throw refusals.notMember()
    if (!roomsService().can(role, action)) throw chatError('FORBIDDEN', `a ${role} may not do this here`)
  }

  async function hydrateOne (tx: ChatDb, messageId: string): Promise<Message> {
    const row = await messageById(tx, messageId)
    if (row === null) throw refusals.messageNotFound()
    return (await hydrate(tx, [row]))[0] as Message
  }

  /** A send checked and authorized, as the writer queues it. */
  async function checkedSend (user: ChatUser, input: SendInput, options: SendOptions): Promise<{ job: SendJob, slowTurn: SlowModeTurn | null }> {
    // Whatever a batch's statement cannot store would fail every send of the batch: refuse it here.
    if (user.server === true) refuseUnstorable(input)
    const type = input.type ?? 'TEXT'
    if (type === 'SYSTEM' && options.allowSystem !== true) throw chatError('FORBIDDEN', 'SYSTEM messages are the server\'s alone')
    const content = checkContent(input.content)
    const attachments = input.attachments ?? []
    if (ATTACHMENT_TYPES.has(type) && attachments.length === 0) {
      throw chatError('VALIDATION_FAILED', `attachments: a ${type} message needs at least one`, [{ field: 'attachments', message: `required for ${type}` }])
    }
    const mentions = input.mentions === undefined ? NO_MENTIONS : [...new Set(input.mentions)]
    const rooms = roomsService()
    let membership: Membership | null = null
    // The server's sends need no membership, but the room must be one it may see (its tenant).
    if (user.server === true) await rooms.requireMember(input.roomId, user)
    else {
      // Muted, a CHANNEL or a frozen room below ADMIN: refused from the cache, before anything is queued.
      membership = await rooms.requireVoice(input.roomId, user, 'send')
      const { role } = membership
      if (!rooms.can(role, 'message.send')) throw chatError('FORBIDDEN', 'your role may not send here')
      if (mentions.includes('*') && !rooms.can(role, 'message.mention.everyone')) {
        throw chatError('FORBIDDEN', 'mentions: only a MODERATOR and above may mention everyone ("*")', [{ field: 'mentions', message: '"*" needs MODERATOR' }])
      }
      await rooms.authorize(user, 'message.send', input.roomId, input)
    }
    const screened = screening === null ? content : await screening.screen(user, input.roomId, content)
    // Last: a send refused by any check above (screening too) does not spend the member's slow-mode turn.
    const taking = membership === null ? null : rooms.takeSlowModeTurn(user, membership)
    const slowTurn = taking === null ? null : await taking
    const job: SendJob = {
      roomId: input.roomId,
      sender: { id: user.id, name: user.name, avatar: user.avatar },
      type,
      content: screened,
      attachments,
      replyToId: input.replyToId ?? null,
      clientMsgId: input.clientMsgId ?? null,
      mentions,
      threadRootId: input.threadRootId ?? null,
      asServer: user.server === true,
      except: options.except ?? null,
    }
    return { job, slowTurn }
  }

  /** A sender's sends into one room reach the writer in the order they began (see turns.ts). */
  const sendTurns = new Turns()

  // Resolving a report with "delete" is the moderator's message.delete (service.remove, below).
  const reports = createReports(app, (user, messageId) => service.remove(user, messageId))
  const pin = createPins(app)
  const service: MessagingService = {
    async send (user, input, options = {}) {
      const turn = sendTurns.take(`${input.roomId}\u0000${user.id}`)
      let written: Promise<SendOutcome>
      let slowTurn: SlowModeTurn | null
      try {
        if (turn.ready !== null) await turn.ready
        const checked = await checkedSend(user, input, options)
        slowTurn = checked.slowTurn
        written = writer.submit(checked.job)
      } finally {
        turn.done()
      }
      // A send that wrote nothing new (its batch failed, or a retry found its original) spends no turn.
      const outcome = slowTurn === null
        ? await written
        : await written.catch((error: unknown) => {
          slowTurn?.giveBack()
          throw error
        })
      if (outcome.duplicate) slowTurn?.giveBack()
      // Committed and published by the writer (see send-writer.ts): the ack is all that is left.
      return outcome.messageJson === undefined
        ? { message: outcome.message, duplicate: outcome.duplicate }
        : { message: outcome.message, duplicate: outcome.duplicate, messageJson: outcome.messageJson }
    },


    async edit (user, messageId, content, except) {
      const { row } = await visibleMessage(user, messageId)
      if (row.senderId !== user.id) throw chatError('FORBIDDEN', 'only the sender may edit a message')
      if (row.deletedAt !== null) throw refusals.messageDeleted()
      if (row.type === 'SYSTEM') throw chatError('FORBIDDEN', 'SYSTEM messages cannot be edited')
      // Editing is speaking: not while muted, nor in a frozen room below ADMIN.
      await roomsService().requireVoice(row.roomId, user, 'send')
      const checked = checkContent(content)
      await roomsService().authorize(user, 'message.edit', row.roomId, { messageId, content: checked })
      const text = screening === null ? checked : await screening.screen(user, row.roomId, checked, messageId)
      const { message, events } = await db.transaction(async (tx) => {
        const updated = await tx.update(messages).set({ content: text, editedAt: new Date() })
          .where(and(eq(messages.id, messageId), isNull(messages.deletedAt))).returning({ id: messages.id })
        if (updated.length === 0) throw refusals.messageDeleted()
        const message = await hydrateOne(tx, messageId)
        const events = await roomLog.append(tx, row.roomId, [{ event: 'message.updated', data: { message } }])
        await stillMay(tx, user, row.roomId, 'message.edit.own')
        return { message, events }
      })
      app.chatSearchIndexer.wake()
      await roomLog.publish(events, except)
      const event = events[0] as RoomEvent
      return { message, roomId: event.roomId, seq: event.seq }
    },

    async remove (user, messageId, except) {
      const { row, role } = await visibleMessage(user, messageId, 'message.delete.any')
      const rooms = roomsService()
      const own = row.senderId === user.id
      if (!(own ? rooms.can(role, 'message.delete.own') : rooms.can(role, 'message.delete.any'))) {
        throw chatError('FORBIDDEN', 'only the sender or a MODERATOR and above may delete this message')
      }
      await rooms.authorize(user, 'message.delete', row.roomId, { messageId })
      const events = await db.transaction(async (tx) => {
        const updated = await tx.update(messages).set({ deletedAt: new Date(), content: '', attachments: [] })
          .where(and(eq(messages.id, messageId), isNull(messages.deletedAt))).returning({ id: messages.id })
        if (updated.length === 0) return []
        await tx.delete(reactions).where(eq(reactions.messageId, messageId))
        const appended = await roomLog.append(tx, row.roomId, [{ event: 'message.deleted', data: { messageId } }])
        await stillMay(tx, user, row.roomId, own ? 'message.delete.own' : 'message.delete.any')
        return appended
      })
      if (events.length > 0) app.chatSearchIndexer.wake()
      await roomLog.publish(events, except)
      return placeOf(events)
    },

    async react (user, messageId, emoji, add, except) {
      const { row, role } = await visibleMessage(user, messageId)
      if (row.deletedAt !== null) throw refusals.messageDeleted()
      const rooms = roomsService()
      if (!rooms.can(role, 'message.react')) throw chatError('FORBIDDEN', 'your role may not react here')
      await rooms.requireVoice(row.roomId, user, 'react')
      await rooms.authorize(user, add ? 'reaction.add' : 'reaction.remove', row.roomId, { messageId, emoji })
      const { list, events } = await db.transaction(async (tx) => {
        const changed = add
          ? await tx.insert(reactions).values({ messageId, userId: user.id, emoji }).onConflictDoNothing().returning({ emoji: reactions.emoji })
          : await tx.delete(reactions).where(and(eq(reactions.messageId, messageId), eq(reactions.userId, user.id), eq(reactions.emoji, emoji))).returning({ emoji: reactions.emoji })
        const list = (await reactionsOf(tx, [messageId])).get(messageId) ?? []
        if (changed.length === 0) return { list, events: [] }
        const events = await roomLog.append(tx, row.roomId, [{ event: 'reaction.updated', data: { messageId, reactions: list } }])
        await stillMay(tx, user, row.roomId, 'message.react')
        return { list, events }
      })
      await roomLog.publish(events, except)
      return { reactions: list, ...placeOf(events) }
    },

    async history (user, roomId, page) {
      await roomsService().requireMember(roomId, user)
      await roomsService().authorize(user, 'history.fetch', roomId)
      const request: { before?: number, after?: number, limit: number, threadRootId?: string } = { limit: page.limit ?? 50 }
      if (page.before !== undefined) request.before = page.before
      if (page.after !== undefined) request.after = page.after
      if (page.threadRootId !== undefined) request.threadRootId = page.threadRootId
      return fitHistory(await historyPage(db, roomId, request), page.after !== undefined, config.maxReplyBytes)
    },

    async markRead (user, roomId, seq, except) {
      await roomsService().requireMember(roomId, user)
      const advanced = await db.update(roomMembers)
        .set({ lastReadSeq: sql`least(${seq}, ${rooms.lastSeq})` })
        .from(rooms)
        .where(and(
          eq(roomMembers.roomId, roomId), eq(roomMembers.userId, user.id), eq(rooms.id, roomMembers.roomId),
          sql`least(${seq}, ${rooms.lastSeq}) > ${roomMembers.lastReadSeq}`,
        ))
        .returning({ lastReadSeq: roomMembers.lastReadSeq })
      let lastReadSeq: number
      if (advanced[0] !== undefined) {
        lastReadSeq = advanced[0].lastReadSeq
      } else {
        const [current] = await db.select({ lastReadSeq: roomMembers.lastReadSeq }).from(roomMembers)
          .where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, user.id)))
        if (current === undefined) throw refusals.notMember()
        lastReadSeq = current.lastReadSeq
      }
      const [counted] = await db.select({
        n: sql<number>`count(*)::int`,
        mentioned: sql<number>`(count(*) filter (where ${messages.mentions} && array[${user.id}, '*']))::int`,
      }).from(messages).where(and(
        eq(messages.roomId, roomId), gt(messages.seq, lastReadSeq), ne(messages.senderId, user.id), isNull(messages.deletedAt),
      ))
      const unreadCount = counted?.n ?? 0
      const mentionCount = counted?.mentioned ?? 0
      if (advanced[0] !== undefined) {
        const hub = app.chatHub
        await Promise.all([
          hub.publishRoom(roomId, JSON.stringify({ event: 'receipt.read', data: { roomId, userId: user.id, seq: lastReadSeq } }), except === undefined ? {} : { except }),
          // To the reader (tenant and sub): the same sub's sockets of another tenant do not hear of it.
          hub.publishUser(userKeyOf(user), JSON.stringify({ event: 'unread.updated', data: { roomId, lastReadSeq, unreadCount, mentionCount } }), except),
        ]).catch((error: unknown) => {
          // The read mark is committed: a broker that fails now costs other nodes this receipt, not the ack.
          app.log.warn({ err: error, roomId }, 'messaging: publishing a read receipt failed after the commit')
        })
      }
      return { lastReadSeq, unreadCount, mentionCount }
    },

    sync: createSync(app),
    drain: () => writer.drain(),
    report: reports.report,
    reports: reports.reports,
    resolveReport: reports.resolve,
    pin: async (user, messageId, pinned, except) => placeOf(await pin(user, messageId, pinned, except)),
    search: createSearch(app),
  }
  app.decorate('chatMessaging', service)
}, { name: 'chat-messaging', fastify: '5.x', dependencies: ['chat-config', 'chat-database', 'chat-hub', 'chat-room-log', 'chat-rooms', 'chat-metrics', 'chat-search-indexer'] })
