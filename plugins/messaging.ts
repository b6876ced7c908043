import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { and, eq, gt, inArray, isNull, ne, sql } from 'drizzle-orm'
import { messages, reactions, roomEvents, roomMembers, rooms, type Attachment, type MessageType } from '../db/schema/index.js'
import { rows as rowsOf, type ChatDb } from '../db/client.js'
import { chatError } from './errors.js'
import type { ChatUser, Connection } from './connection.js'
import { GroupCommit } from './group-commit.js'
import { withDeadline, type Deadline } from './deadline.js'
import { jsonLiteral } from './json-literal.js'
import { excerptOf, historyPage, hydrate, messageById, reactionsOf, toMessage, type MessageRow, type Reactions } from './message-reader.js'
import type { Message, SendInput } from './message-schemas.js'
import type { RoomEvent } from './room-log.js'
import type { RoomsService } from './rooms-types.js'

const ATTACHMENT_TYPES = new Set<MessageType>(['IMAGE', 'FILE', 'VOICE', 'VIDEO'])
const SYNC_PAGE = 200
/** Group-commit batches written at once (each holds one pooled connection while it runs). */
const BATCHES_IN_FLIGHT = 2

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
  /** JSON.stringify(message), when this send wrote it. */
  messageJson?: string
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
  /** `messageJson` is the message as serialized for its push, when this send wrote it (acks reuse it). */
  send (user: ChatUser, input: SendInput, options?: SendOptions): Promise<{ message: Message, duplicate: boolean, messageJson?: string }>
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

  /**
   * Writes one batch of sends in one transaction: lock the rooms, skip retries, take seqs, insert.
   * Every statement carries the batch's rows as one JSON literal (no bound parameters: one round trip
   * each, see json-literal.ts), and statements that do not depend on each other are pipelined: four
   * round trips per batch (begin, lock + retries, writes, commit), none per message.
   */
  async function flushSends (jobs: SendJob[], deadline: Deadline): Promise<Array<SendOutcome | Error>> {
    return await db.transaction(async (tx) => {
      const roomIds = [...new Set(jobs.map((job) => job.roomId))].sort()
      // Locking the room rows first (in id order, so batches never deadlock) makes the idempotency
      // check below see every committed retry: no concurrent writer of these rooms can slip in. The
      // check is pipelined behind the lock on the same connection, so it runs once the lock is held.
      const [locked, existing, replies] = await Promise.all([
        tx.execute(sql`select id, last_seq from ${rooms} where id in (select value::uuid from json_array_elements_text(${jsonLiteral(JSON.stringify(roomIds))})) order by id for update`),
        existingRetries(tx, jobs),
        replyTargets(tx, jobs),
      ])
      const lastSeq = new Map(rowsOf<{ id: string, last_seq: number }>(locked).map((row) => [row.id, Number(row.last_seq)]))
      const startSeq = new Map(lastSeq)
      const results: Array<SendOutcome | Error> = []
      const firstOfKey = new Map<string, number>()
      const rows: MessageRow[] = []
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
        // The message is serialized once: the push frame and the ack embed this text (its row is the log entry).
        const messageJson = JSON.stringify(message)
        const dataJson = `{"roomId":${JSON.stringify(job.roomId)},"seq":${seq},"message":${messageJson}}`
        const event: RoomEvent = { roomId: job.roomId, seq, event: 'message.new', data: { roomId: job.roomId, seq, message }, dataJson }
        events.push(event)
        if (key !== null) firstOfKey.set(key, results.length)
        results.push({ message, duplicate: false, event, messageJson })
      }
      if (rows.length > 0) {
        // One statement each for every room, message and event of the batch, whatever their number.
        const moved = [...lastSeq].filter(([roomId, seq]) => seq !== startSeq.get(roomId)).map(([id, seq]) => ({ id, seq }))
        await Promise.all([
          tx.execute(sql`update ${rooms} set last_seq = moved.seq, updated_at = now() from json_to_recordset(${jsonLiteral(JSON.stringify(moved))}) as moved(id uuid, seq int) where ${rooms.id} = moved.id`),
          tx.execute(sql`insert into ${messages} (id, room_id, seq, sender_id, type, content, reply_to_id, attachments, client_msg_id, created_at)
            select id, "roomId", seq, "senderId", type, content, "replyToId", attachments, "clientMsgId", "createdAt"
            from json_to_recordset(${jsonLiteral(JSON.stringify(rows))}) as x(id uuid, "roomId" uuid, seq int, "senderId" text, type text, content text, "replyToId" uuid, attachments jsonb, "clientMsgId" text, "createdAt" timestamptz)`),
        ])
        if (config.eventRetention > 0) await pruneEvents(tx, lastSeq)
      }
      // Its senders were answered UNAVAILABLE already: roll back rather than commit what they were told failed.
      if (deadline.expired) throw chatError('UNAVAILABLE', 'send batch past its deadline: rolled back')
      return results
    })
  }

  /** The originals of this batch's retries (same room, sender and clientMsgId), by their key. */
  async function existingRetries (tx: ChatDb, jobs: SendJob[]): Promise<Map<string, Message>> {
    const keys = jobs.filter((job) => job.clientMsgId !== null)
      .map((job) => ({ room_id: job.roomId, sender_id: job.sender.id, client_msg_id: job.clientMsgId }))
    const found = new Map<string, Message>()
    if (keys.length === 0) return found
    const matches = rowsOf<{ id: string }>(await tx.execute(sql`select m.id from ${messages} m
      join json_to_recordset(${jsonLiteral(JSON.stringify(keys))}) as k(room_id uuid, sender_id text, client_msg_id text)
        on m.room_id = k.room_id and m.sender_id = k.sender_id and m.client_msg_id = k.client_msg_id`))
    if (matches.length === 0) return found
    // A retry: rare, so the originals are read in full only now.
    const originals = await tx.select({
      id: messages.id, roomId: messages.roomId, seq: messages.seq, senderId: messages.senderId, type: messages.type,
      content: messages.content, replyToId: messages.replyToId, attachments: messages.attachments, clientMsgId: messages.clientMsgId,
      editedAt: messages.editedAt, deletedAt: messages.deletedAt, createdAt: messages.createdAt,
    }).from(messages).where(inArray(messages.id, matches.map((row) => row.id)))
    const hydrated = await hydrate(tx, originals)
    originals.forEach((row, index) => found.set(tripleKey(row.roomId, row.senderId, row.clientMsgId as string), hydrated[index] as Message))
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
      // A batch that hangs (a lost query, a database behind a partition) would hold its in-flight slot for ever.
      const results = await withDeadline(config.databaseTimeoutMs, 'a send batch', (deadline) => flushSends(jobs, deadline))
      let written = 0
      for (const result of results) if (!(result instanceof Error) && result.event !== null) written += 1
      metrics.messagePersisted(written)
      return results
    },
    maxBatch: config.groupCommit.maxBatch,
    maxWaitMs: config.groupCommit.maxWaitMs,
    // Two batches at once: one's round trips and commit overlap the next one's. Safe because every
    // batch locks its rooms in id order before reading seqs or retries (see flushSends).
    maxInFlight: BATCHES_IN_FLIGHT,
    onBatch: (size, ms) => metrics.groupCommitBatch(size, ms),
  })
  // Sockets are closed in preClose too; whatever they queued is still written before the database closes.
  app.addHook('preClose', async () => { await writer.drain() })

  /** A message by id, visible only to members of its room (others get NOT_FOUND, as if it did not exist). */
  async function visibleMessage (user: ChatUser, messageId: string, action?: 'message.delete.any'): Promise<{ row: MessageRow, role: Awaited<ReturnType<RoomsService['requireMember']>>['role'] }> {
    const row = await messageById(db, messageId)
    if (row === null) throw chatError('NOT_FOUND', 'message not found')
    // The member's role; for a moderator action the permissions claim chats:moderate may raise it.
    const role = await roomsService().actingRole(user, row.roomId, action)
    if (role === null) throw chatError('NOT_FOUND', 'message not found')
    return { row, role }
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
      if (user.server !== true) {
        const { role } = await rooms.requireMember(input.roomId, user.id)
        if (!rooms.can(role, 'message.send')) throw chatError('FORBIDDEN', 'your role may not send here')
        await rooms.authorize(user, 'message.send', input.roomId, input)
      }
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
      return outcome.messageJson === undefined
        ? { message: outcome.message, duplicate: outcome.duplicate }
        : { message: outcome.message, duplicate: outcome.duplicate, messageJson: outcome.messageJson }
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
      await roomsService().authorize(user, 'history.fetch', roomId)
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
        ]).catch((error: unknown) => {
          // The read mark is committed: a broker that fails now costs other nodes this receipt, not the ack.
          app.log.warn({ err: error, roomId }, 'messaging: publishing a read receipt failed after the commit')
        })
      }
      return { lastReadSeq, unreadCount }
    },

    async sync (user, cursors) {
      await roomsService().authorize(user, 'sync')
      const retention = config.eventRetention
      // The user's rooms from the node's cache: a cursor for any other room (up to 500 of them in one
      // frame) is answered without a database read of its own.
      const mine = new Set(await roomsService().roomIdsOf(user.id))
      const results = await Promise.all(cursors.map(async ({ roomId, seq }): Promise<SyncRoomResult> => {
        if (!mine.has(roomId)) return { roomId, events: [], lastSeq: 0, hasMore: false, error: { code: 'NOT_MEMBER', message: 'you are not a member of this room' } }
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
