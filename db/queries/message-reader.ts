import { and, asc, desc, eq, gt, inArray, isNull, lt, sql, type SQL } from 'drizzle-orm'
import { messages, type Attachment } from '../schema/index.js'
import { SERVER_USER_ID } from '../../lib/user-key.js'
import { rows as resultRows, type ChatDb } from '../client.js'
import { inList, iso } from './sql-parts.js'
import { excerptOf as excerptOfContent, groupReactions, isoOf, toMessage as toProtocolMessage, type Message, type MessageRecord, type ThreadSummary } from '../../schemas/message.js'

/** A typed select of a messages row: the shape's record, with the reply link and Dates as Drizzle gives them. */
export interface MessageRow extends MessageRecord {
  replyToId: string | null
  attachments: Attachment[]
  editedAt: Date | null
  deletedAt: Date | null
  createdAt: Date
}

export interface ReplySummary { id: string, seq: number, senderId: string, excerpt: string }
export interface Sender { id: string, name: string | null, avatar: string | null }
export type Reactions = Message['reactions']

export function excerptOf (row: { content: string, deletedAt: Date | null }): string {
  return excerptOfContent(row.content, row.deletedAt !== null)
}

/** The protocol's Message from a row and what surrounds it (the one mapper lives in schemas/message.ts). */
export function toMessage (row: MessageRow, sender: Sender, replyTo: ReplySummary | null, messageReactions: Reactions, thread: ThreadSummary | null = null): Message {
  return toProtocolMessage(row, { sender, replyTo, reactions: messageReactions, thread })
}

/** The columns of a MessageRow. */
const columns = {
  id: messages.id,
  roomId: messages.roomId,
  seq: messages.seq,
  senderId: messages.senderId,
  type: messages.type,
  content: messages.content,
  replyToId: messages.replyToId,
  attachments: messages.attachments,
  clientMsgId: messages.clientMsgId,
  mentions: messages.mentions,
  threadRootId: messages.threadRootId,
  editedAt: messages.editedAt,
  deletedAt: messages.deletedAt,
  createdAt: messages.createdAt,
}

/** Reactions of many messages in one query, grouped as the protocol shows them. */
export async function reactionsOf (db: ChatDb, messageIds: string[]): Promise<Map<string, Reactions>> {
  const result = new Map<string, Reactions>()
  if (messageIds.length === 0) return result
  const found = resultRows<{ messageId: string, emoji: string, userId: string }>(await db.execute(sql`select message_id::text as "messageId", emoji, user_id as "userId"
    from chat.reactions where message_id in (${inList(messageIds)}) order by created_at, user_id`))
  const byMessage = new Map<string, Array<{ emoji: string, userId: string }>>()
  for (const row of found) {
    const list = byMessage.get(row.messageId)
    if (list === undefined) byMessage.set(row.messageId, [row])
    else list.push(row)
  }
  for (const [messageId, list] of byMessage) result.set(messageId, groupReactions(list))
  return result
}

/** What surrounds one message, as `extrasOf` selects it. */
export interface ExtrasRow {
  id: string
  senderKnown: boolean
  senderName: string | null
  senderAvatar: string | null
  replyId: string | null
  replySeq: number | string | null
  replySenderId: string | null
  replyContent: string | null
  replyDeleted: boolean | null
  reactions: string | null
  replyCount: number | string | null
  lastReplyAt: string | null
  threadSenders: string | null
}

/**
 * The select of each message's sender, replied-to message, reactions and thread summary (one row per
 * message, `ExtrasRow`), by correlated selects over `source`: a relation of the messages' own fields
 * `(id uuid, room_id uuid, sender_id text, reply_to_id uuid, is_root boolean)`. `hydrate` gives it a
 * `VALUES` list; the sync's log read gives it the rows it read, so that a sync costs no statement of its own
 * for them.
 */
export function extrasOf (source: SQL): SQL {
  // A sender is a user of the room's tenant (the server user's row is the default tenant's: SERVER_USER_ID).
  // Thread summaries are those of roots with a reply that is not deleted, as threadsOf gives them.
  return sql`select v.id::text as id,
      (su.id is not null) as "senderKnown", su.name as "senderName", su.avatar as "senderAvatar",
      rt.id::text as "replyId", rt.seq as "replySeq", rt.sender_id as "replySenderId", rt.content as "replyContent",
      (rt.deleted_at is not null) as "replyDeleted",
      (select json_agg(json_build_object('emoji', re.emoji, 'userId', re.user_id) order by re.created_at, re.user_id)::text
         from chat.reactions re where re.message_id = v.id) as reactions,
      th.n as "replyCount", ${sql.raw(iso('th.last_at'))} as "lastReplyAt", th.senders as "threadSenders"
    from ${source} as v(id, room_id, sender_id, reply_to_id, is_root)
    join chat.rooms xr on xr.id = v.room_id
    left join chat.users su on su.id = v.sender_id
      and su.tenant = case when v.sender_id = ${SERVER_USER_ID} then '' else xr.tenant end
    left join chat.messages rt on rt.id = v.reply_to_id
    left join lateral (select count(*)::int as n,
        max(t.created_at) as last_at,
        array_to_json(array_agg(t.sender_id order by t.seq))::text as senders
      from chat.messages t where v.is_root and t.thread_root_id = v.id and t.deleted_at is null) th on true`
}

/** Rows made Messages with what `extrasOf` found around them (a row without extras has an unknown sender). */
export function messagesOf (rows: readonly MessageRow[], found: readonly ExtrasRow[]): Message[] {
  const extras = new Map(found.map((row) => [row.id, row]))
  return rows.map((row) => {
    const extra = extras.get(row.id)
    const sender = extra?.senderKnown === true ? { id: row.senderId, name: extra.senderName, avatar: extra.senderAvatar } : { id: row.senderId, name: null, avatar: null }
    const replyTo = row.replyToId === null || extra?.replyId == null
      ? null
      : { id: extra.replyId, seq: Number(extra.replySeq), senderId: extra.replySenderId as string, excerpt: excerptOfContent(extra.replyContent ?? '', extra.replyDeleted === true) }
    const reactions = extra?.reactions == null ? [] : groupReactions(JSON.parse(extra.reactions) as Array<{ emoji: string, userId: string }>)
    const thread = extra === undefined || extra.replyCount === null || Number(extra.replyCount) === 0
      ? null
      : { replyCount: Number(extra.replyCount), lastReplyAt: isoOf(extra.lastReplyAt as string), participantIds: [...new Set(JSON.parse(extra.threadSenders ?? '[]') as string[])] }
    return toMessage(row, sender, replyTo, reactions, thread)
  })
}

/**
 * Turns rows into Messages with one statement: each row's sender, replied-to message, reactions and
 * thread summary (`extrasOf`), over a `VALUES` list of the rows' own fields. It used to be three or four
 * statements (senders, replies, reactions, threads); a reconnect storm's profile put the per-statement
 * cost (postgres.js' loopback write, PostgreSQL's parse and plan) first, and every send and history page
 * hydrates. The rows' fields are sent rather than joined from chat.messages, so a row inserted by a
 * transaction that has not committed yet hydrates the same from any connection.
 */
export async function hydrate (db: ChatDb, rows: MessageRow[]): Promise<Message[]> {
  if (rows.length === 0) return []
  const given = sql.join(rows.map((row) => sql`(${row.id}::uuid, ${row.roomId}::uuid, ${row.senderId}::text, ${row.replyToId}::uuid, ${row.threadRootId == null}::boolean)`), sql`, `)
  return messagesOf(rows, resultRows<ExtrasRow>(await db.execute(extrasOf(sql`(values ${given})`))))
}

export async function messageById (db: ChatDb, messageId: string): Promise<MessageRow | null> {
  const [row] = await db.select(columns).from(messages).where(eq(messages.id, messageId)).limit(1)
  return row ?? null
}

export async function messagesByIds (db: ChatDb, messageIds: string[]): Promise<MessageRow[]> {
  if (messageIds.length === 0) return []
  return await db.select(columns).from(messages).where(inArray(messages.id, messageIds))
}

/** Rows of a room with `after` < seq (< `before`), ascending, at most `limit`. */
export async function rowsAfter (db: ChatDb, roomId: string, after: number, limit: number, before?: number, thread?: SQL): Promise<MessageRow[]> {
  const condition = and(eq(messages.roomId, roomId), gt(messages.seq, after), before === undefined ? undefined : lt(messages.seq, before), thread)
  return await db.select(columns).from(messages).where(condition).orderBy(asc(messages.seq)).limit(limit)
}

/** Which messages a history page holds: one thread's replies, or the main timeline without them. */
function timeline (threadRootId: string | undefined): SQL {
  return threadRootId === undefined ? isNull(messages.threadRootId) : eq(messages.threadRootId, threadRootId)
}

/**
 * A history page, ascending by seq: with `before`, the `limit` messages just before it; with `after`,
 * just after it; with neither, the latest. `hasMore` looks one row further in the paging direction. The
 * main timeline leaves thread replies out; with `threadRootId`, the page is that thread's replies.
 */
export async function historyPage (db: ChatDb, roomId: string, page: { before?: number, after?: number, limit: number, threadRootId?: string }): Promise<{ messages: Message[], hasMore: boolean }> {
  const { before, after, limit } = page
  const thread = timeline(page.threadRootId)
  let rows: MessageRow[]
  if (after !== undefined) {
    rows = await rowsAfter(db, roomId, after, limit + 1, before, thread)
  } else {
    const condition = and(eq(messages.roomId, roomId), before === undefined ? undefined : lt(messages.seq, before), thread)
    rows = (await db.select(columns).from(messages).where(condition).orderBy(desc(messages.seq)).limit(limit + 1))
    const more = rows.length > limit
    rows = rows.slice(0, limit).reverse()
    return { messages: await hydrate(db, rows), hasMore: more }
  }
  const more = rows.length > limit
  return { messages: await hydrate(db, rows.slice(0, limit)), hasMore: more }
}
