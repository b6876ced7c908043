import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { and, asc, eq, gt, inArray, isNull, ne, sql } from 'drizzle-orm'
import { messages, reactions, roomEvents, roomMembers, rooms, type Attachment, type MessageType } from '../db/schema/index.js'
import type { ChatDb } from '../db/client.js'
import { chatError } from './errors.js'
import type { ChatUser, Connection } from './connection.js'
import { GroupCommit } from './group-commit.js'
import { excerptOf, historyPage, hydrate, messageById, reactionsOf, toMessage, type MessageRow, type Reactions } from './message-reader.js'
import type { Message, SendInput } from './message-schemas.js'
import type { RoomEvent } from './room-log.js'
import type { RoomsService } from './rooms-types.js'

const ATTACHMENT_TYPES = new Set<MessageType>(['IMAGE', 'FILE', 'VOICE', 'VIDEO'])
const SYNC_PAGE = 200

interface SendJob {
  roomId: string
  sender: { id: string, name: string | null, avatar: string | null }
  type: MessageType
  content: string
  attachments: Attachment[]
  replyToId: string | null
  clientMsgId: string | null
}

interface SendOutcome {
  message: Message
  /** A retry of a clientMsgId already stored: nothing was written and nothing is broadcast. */
  duplicate: boolean
  event: RoomEvent | null
}

export interface SendOptions {
  /** The sending socket: it gets the ack and not the message.new echo. */
  except?: Connection
  /** Server-side senders (the host's code) may post SYSTEM messages; clients may not. */
  allowSystem?: boolean
}

export interface SyncRoomResult {
  roomId: string
  events: Array<{ event: string, data: Record<string, unknown> }>
  lastSeq: number
  hasMore: boolean
  resync?: boolean
  error?: { code: string, message: string }
}

export interface MessagingService {
  send (user: ChatUser, input: SendInput, options?: SendOptions): Promise<{ message: Message, duplicate: boolean }>
  edit (user: ChatUser, messageId: string, content: string, except?: Connection): Promise<{ message: Message }>
  remove (user: ChatUser, messageId: string, except?: Connection): Promise<void>
  react (user: ChatUser, messageId: string, emoji: string, add: boolean, except?: Connection): Promise<{ reactions: Reactions }>
  history (user: ChatUser, roomId: string, page: { before?: number, after?: number, limit?: number }): Promise<{ messages: Message[], hasMore: boolean }>
  markRead (user: ChatUser, roomId: string, seq: number, except?: Connection): Promise<{ lastReadSeq: number, unreadCount: number }>
  sync (user: ChatUser, cursors: Array<{ roomId: string, seq: number }>): Promise<{ rooms: SyncRoomResult[] }>
  /** Resolves when every queued send is committed (graceful shutdown). */
  drain (): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    chatMessaging: MessagingService
  }
}

function tripleKey (roomId: string, senderId: string, clientMsgId: string): string {
  return `${roomId}\u0000${senderId}\u0000${clientMsgId}`
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

  /** Writes one batch of sends in one transaction: lock the rooms, skip retries, take seqs, insert. */
  async function flushSends (jobs: SendJob[]): Promise<Array<SendOutcome | Error>> {
    return await db.transaction(async (tx) => {
      const roomIds = [...new Set(jobs.map((job) => job.roomId))].sort()
      // Locking the room rows first (in id order, so batches never deadlock) makes the idempotency
      // check below see every committed retry: no concurrent writer of these rooms can slip in.
      const locked = await tx.select({ id: rooms.id, lastSeq: rooms.lastSeq }).from(rooms)
        .where(inArray(rooms.id, roomIds)).orderBy(asc(rooms.id)).for('update')
      const lastSeq = new Map(locked.map((row) => [row.id, row.lastSeq]))
      const startSeq = new Map(lastSeq)

      const existing = await existingRetries(tx, jobs)
      const replies = await replyTargets(tx, jobs)
      const results: Array<SendOutcome | Error> = []
      const firstOfKey = new Map<string, number>()
      const rows: Array<typeof messages.$inferInsert> = []
      const events: RoomEvent[] = []
      const now = new Date()

      for (const job of jobs) {
        const current = lastSeq.get(job.roomId)
        if (current === undefined) {
          results.push(chatError('NOT_FOUND', 'room not found'))
          continue
        }
        const key = job.clientMsgId === null ? null : tripleKey(job.roomId, job.sender.id, job.clientMsgId)
        if (key !== null) {
          const stored = existing.get(key)
          if (stored !== undefined) {
            results.push({ message: stored, duplicate: true, event: null })
            continue
          }
          const first = firstOfKey.get(key)
          if (first !== undefined) {
            const original = results[first] as SendOutcome
            results.push({ message: original.message, duplicate: true, event: null })
            continue
          }
        }
        const reply = job.replyToId === null ? null : replies.get(job.replyToId)
        if (job.replyToId !== null && (reply === undefined || reply === null || reply.roomId !== job.roomId)) {
          results.push(chatError('NOT_FOUND', 'replyToId: no such message in this room', [{ field: 'replyToId', message: 'not found in this room' }]))
          continue
        }
        const seq = current + 1
        lastSeq.set(job.roomId, seq)
        const row: MessageRow = {
          id: randomUUID(),
          roomId: job.roomId,
          seq,
          senderId: job.sender.id,
          type: job.type,
          content: job.content,
          replyToId: job.replyToId,
          attachments: job.attachments,
          clientMsgId: job.clientMsgId,
          editedAt: null,
          deletedAt: null,
          createdAt: now,
        }
        rows.push(row)
        const message = toMessage(row, job.sender, reply === undefined || reply === null ? null : reply.summary, [])
        const event: RoomEvent = { roomId: job.roomId, seq, event: 'message.new', data: { roomId: job.roomId, seq, message } }
        events.push(event)
        if (key !== null) firstOfKey.set(key, results.length)
        results.push({ message, duplicate: false, event })
      }
      if (rows.length > 0) {
        // One statement for every room of the batch, whatever their number.
        const moved = [...lastSeq].filter(([roomId, seq]) => seq !== startSeq.get(roomId))
        const values = sql.join(moved.map(([roomId, seq]) => sql`(${roomId}::uuid, ${seq}::int)`), sql`, `)
        await tx.execute(sql`update ${rooms} set last_seq = moved.seq, updated_at = now() from (values ${values}) as moved(id, seq) where ${rooms.id} = moved.id`)
        await tx.insert(messages).values(rows)
        await roomLog.write(tx, events)
        if (config.eventRetention > 0) await pruneEvents(tx, lastSeq)
      }
      return results
    })
  }

  async function existingRetries (tx: ChatDb, jobs: SendJob[]): Promise<Map<string, Message>> {
    const keyed = jobs.filter((job) => job.clientMsgId !== null)
    const found = new Map<string, Message>()
    if (keyed.length === 0) return found
    const candidates = await tx.select({
      id: messages.id, roomId: messages.roomId, seq: messages.seq, senderId: messages.senderId, type: messages.type,
      content: messages.content, replyToId: messages.replyToId, attachments: messages.attachments, clientMsgId: messages.clientMsgId,
      editedAt: messages.editedAt, deletedAt: messages.deletedAt, createdAt: messages.createdAt,
    }).from(messages).where(and(
      inArray(messages.roomId, [...new Set(keyed.map((job) => job.roomId))]),
      inArray(messages.clientMsgId, [...new Set(keyed.map((job) => job.clientMsgId as string))]),
    ))
    const wanted = new Set(keyed.map((job) => tripleKey(job.roomId, job.sender.id, job.clientMsgId as string)))
    const matching = candidates.filter((row) => wanted.has(tripleKey(row.roomId, row.senderId, row.clientMsgId as string)))
    const hydrated = await hydrate(tx, matching)
    matching.forEach((row, index) => found.set(tripleKey(row.roomId, row.senderId, row.clientMsgId as string), hydrated[index] as Message))
    return found
  }

  async function replyTargets (tx: ChatDb, jobs: SendJob[]): Promise<Map<string, { roomId: string, summary: { id: string, seq: number, senderId: string, excerpt: string } } | null>> {
    const ids = [...new Set(jobs.map((job) => job.replyToId).filter((id): id is string => id !== null))]
    const found = new Map<string, { roomId: string, summary: { id: string, seq: number, senderId: string, excerpt: string } } | null>()
    if (ids.length === 0) return found
    const rows = await tx.select({ id: messages.id, roomId: messages.roomId, seq: messages.seq, senderId: messages.senderId, content: messages.content, deletedAt: messages.deletedAt })
      .from(messages).where(inArray(messages.id, ids))
    for (const row of rows) found.set(row.id, { roomId: row.roomId, summary: { id: row.id, seq: row.seq, senderId: row.senderId, excerpt: excerptOf(row) } })
    return found
  }

  async function pruneEvents (tx: ChatDb, lastSeq: Map<string, number>): Promise<void> {
    for (const [roomId, seq] of lastSeq) {
      const keepFrom = seq - config.eventRetention + 1
      if (keepFrom > 1) await tx.delete(roomEvents).where(and(eq(roomEvents.roomId, roomId), sql`${roomEvents.seq} < ${keepFrom}`))
    }
  }

  const metrics = app.chatMetrics
  const writer = new GroupCommit<SendJob, SendOutcome>({
    flush: async (jobs) => {
      const results = await flushSends(jobs)
      let written = 0
      for (const result of results) if (!(result instanceof Error) && result.event !== null) written += 1
      metrics.messagePersisted(written)
      return results
    },
    maxBatch: config.groupCommit.maxBatch,
    maxWaitMs: config.groupCommit.maxWaitMs,
    onBatch: (size, ms) => metrics.groupCommitBatch(size, ms),
  })
  // Sockets are closed in preClose too; whatever they queued is still written before the database closes.
  app.addHook('preClose', async () => { await writer.drain() })

  /** A message by id, visible only to members of its room (others get NOT_FOUND, as if it did not exist). */
  async function visibleMessage (user: ChatUser, messageId: string): Promise<{ row: MessageRow, role: Awaited<ReturnType<RoomsService['requireMember']>>['role'] }> {
    const row = await messageById(db, messageId)
    if (row === null) throw chatError('NOT_FOUND', 'message not found')
    const membership = await roomsService().membership(row.roomId, user.id)
    if (membership === null) throw chatError('NOT_FOUND', 'message not found')
    return { row, role: membership.role }
  }

  async function hydrateOne (tx: ChatDb, messageId: string): Promise<Message> {
    const row = await messageById(tx, messageId)
    if (row === null) throw chatError('NOT_FOUND', 'message not found')
    return (await hydrate(tx, [row]))[0] as Message
  }

  const service: MessagingService = {
    async send (user, input, options = {}) {
      const type = input.type ?? 'TEXT'
      if (type === 'SYSTEM' && options.allowSystem !== true) throw chatError('FORBIDDEN', 'SYSTEM messages are the server\'s alone')
      const content = checkContent(input.content)
      const attachments = input.attachments ?? []
      if (ATTACHMENT_TYPES.has(type) && attachments.length === 0) {
        throw chatError('VALIDATION_FAILED', `attachments: a ${type} message needs at least one`, [{ field: 'attachments', message: `required for ${type}` }])
      }
      const rooms = roomsService()
      const { role } = await rooms.requireMember(input.roomId, user.id)
      if (!rooms.can(role, 'message.send')) throw chatError('FORBIDDEN', 'your role may not send here')
      await rooms.authorize(user, 'message.send', input.roomId, input)
      const outcome = await writer.submit({
        roomId: input.roomId,
        sender: { id: user.id, name: user.name, avatar: user.avatar },
        type,
        content,
        attachments,
        replyToId: input.replyToId ?? null,
        clientMsgId: input.clientMsgId ?? null,
      })
      if (outcome.event !== null) await roomLog.publish([outcome.event], options.except)
      return { message: outcome.message, duplicate: outcome.duplicate }
    },

    async edit (user, messageId, content, except) {
      const { row } = await visibleMessage(user, messageId)
      if (row.senderId !== user.id) throw chatError('FORBIDDEN', 'only the sender may edit a message')
      if (row.deletedAt !== null) throw chatError('NOT_FOUND', 'message was deleted')
      if (row.type === 'SYSTEM') throw chatError('FORBIDDEN', 'SYSTEM messages cannot be edited')
      const text = checkContent(content)
      await roomsService().authorize(user, 'message.edit', row.roomId, { messageId, content: text })
      const { message, events } = await db.transaction(async (tx) => {
        const updated = await tx.update(messages).set({ content: text, editedAt: new Date() })
          .where(and(eq(messages.id, messageId), isNull(messages.deletedAt))).returning({ id: messages.id })
        if (updated.length === 0) throw chatError('NOT_FOUND', 'message was deleted')
        const message = await hydrateOne(tx, messageId)
        const events = await roomLog.append(tx, row.roomId, [{ event: 'message.updated', data: { message } }])
        return { message, events }
      })
      await roomLog.publish(events, except)
      return { message }
    },

    async remove (user, messageId, except) {
      const { row, role } = await visibleMessage(user, messageId)
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
        return await roomLog.append(tx, row.roomId, [{ event: 'message.deleted', data: { messageId } }])
      })
      await roomLog.publish(events, except)
    },

    async react (user, messageId, emoji, add, except) {
      const { row, role } = await visibleMessage(user, messageId)
      if (row.deletedAt !== null) throw chatError('NOT_FOUND', 'message was deleted')
      const rooms = roomsService()
      if (!rooms.can(role, 'message.react')) throw chatError('FORBIDDEN', 'your role may not react here')
      await rooms.authorize(user, add ? 'reaction.add' : 'reaction.remove', row.roomId, { messageId, emoji })
      const { list, events } = await db.transaction(async (tx) => {
        const changed = add
          ? await tx.insert(reactions).values({ messageId, userId: user.id, emoji }).onConflictDoNothing().returning({ emoji: reactions.emoji })
          : await tx.delete(reactions).where(and(eq(reactions.messageId, messageId), eq(reactions.userId, user.id), eq(reactions.emoji, emoji))).returning({ emoji: reactions.emoji })
        const list = (await reactionsOf(tx, [messageId])).get(messageId) ?? []
        if (changed.length === 0) return { list, events: [] }
        const events = await roomLog.append(tx, row.roomId, [{ event: 'reaction.updated', data: { messageId, reactions: list } }])
        return { list, events }
      })
      await roomLog.publish(events, except)
      return { reactions: list }
    },

    async history (user, roomId, page) {
      await roomsService().requireMember(roomId, user.id)
      const request: { before?: number, after?: number, limit: number } = { limit: page.limit ?? 50 }
      if (page.before !== undefined) request.before = page.before
      if (page.after !== undefined) request.after = page.after
      return await historyPage(db, roomId, request)
    },

    async markRead (user, roomId, seq, except) {
      await roomsService().requireMember(roomId, user.id)
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
        if (current === undefined) throw chatError('NOT_MEMBER', 'you are not a member of this room')
        lastReadSeq = current.lastReadSeq
      }
      const [counted] = await db.select({ n: sql<number>`count(*)::int` }).from(messages).where(and(
        eq(messages.roomId, roomId), gt(messages.seq, lastReadSeq), ne(messages.senderId, user.id), isNull(messages.deletedAt),
      ))
      const unreadCount = counted?.n ?? 0
      if (advanced[0] !== undefined) {
        const hub = app.chatHub
        await Promise.all([
          hub.publishRoom(roomId, JSON.stringify({ event: 'receipt.read', data: { roomId, userId: user.id, seq: lastReadSeq } }), except === undefined ? {} : { except }),
          hub.publishUser(user.id, JSON.stringify({ event: 'unread.updated', data: { roomId, lastReadSeq, unreadCount } }), except),
        ])
      }
      return { lastReadSeq, unreadCount }
    },

    async sync (user, cursors) {
      const retention = config.eventRetention
      const results = await Promise.all(cursors.map(async ({ roomId, seq }): Promise<SyncRoomResult> => {
        try {
          await roomsService().requireMember(roomId, user.id)
        } catch (error) {
          const code = (error as { code?: string }).code ?? 'INTERNAL'
          return { roomId, events: [], lastSeq: 0, hasMore: false, error: { code, message: (error as Error).message } }
        }
        const [room] = await db.select({ lastSeq: rooms.lastSeq }).from(rooms).where(eq(rooms.id, roomId))
        const lastSeq = room?.lastSeq ?? 0
        const oldestKept = retention > 0 ? Math.max(1, lastSeq - retention + 1) : 1
        if (seq > lastSeq || seq < oldestKept - 1) return { roomId, events: [], lastSeq, hasMore: false, resync: true }
        const events = await roomLog.eventsAfter(roomId, seq, SYNC_PAGE + 1)
        const hasMore = events.length > SYNC_PAGE
        return { roomId, events: events.slice(0, SYNC_PAGE).map((event) => ({ event: event.event, data: event.data })), lastSeq, hasMore }
      }))
      return { rooms: results }
    },

    drain: () => writer.drain(),
  }
  app.decorate('chatMessaging', service)
}, { name: 'chat-messaging', fastify: '5.x', dependencies: ['chat-config', 'chat-database', 'chat-hub', 'chat-room-log', 'chat-rooms', 'chat-metrics'] })
