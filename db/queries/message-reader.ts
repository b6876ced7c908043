import { and, asc, desc, eq, gt, inArray, isNull, lt, sql, type SQL } from 'drizzle-orm'
import { messages, type Attachment } from '../schema/index.js'
import { SERVER_USER_ID } from '../../lib/user-key.js'
import { rows as resultRows, type ChatDb } from '../client.js'
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
    from chat.reactions where message_id in (${listOf(messageIds)}) order by created_at, user_id`))
  const byMessage = new Map<string, Array<{ emoji: string, userId: string }>>()
  for (const row of found) {
    const list = byMessage.get(row.messageId)
    if (list === undefined) byMessage.set(row.messageId, [row])
    else list.push(row)
  }
  for (const [messageId, list] of byMessage) result.set(messageId, groupReactions(list))
  return result
}

/**
 * The parameters of an `in (…)` list. The hydration's reads are written as SQL rather than built with
 * drizzle's select builders: a profile of the reconnect storm (docs/benchmarks.md) found drizzle's query
 * building and row mapping the largest avoidable cost there, and every sync, send and history page
 * hydrates. The text depends only on the number of ids, so postgres.js prepares it once per count.
 */
function listOf (ids: readonly string[]): SQL {
  return sql.join(ids.map((id) => sql`${id}`), sql`, `)
}

/** Turns rows into Messages with a fixed number of queries: senders, replied-to messages, reactions. */
export async function hydrate (db: ChatDb, rows: MessageRow[]): Promise<Message[]> {
  if (rows.length === 0) return []
  const senderIds = [...new Set(rows.map((row) => row.senderId))]
  const roomIds = [...new Set(rows.map((row) => row.roomId))]
  const replyIds = [...new Set(rows.map((row) => row.replyToId).filter((id): id is string => id !== null))]
  const [senderRows, replyRows, reactionMap, threads] = await Promise.all([
    // A sender is a user of the room's tenant (the server user's row is the default tenant's: SERVER_USER_ID).
    db.execute(sql`select r.id::text as "roomId", u.id, u.name, u.avatar from chat.rooms r
      join chat.users u on u.tenant = case when u.id = ${SERVER_USER_ID} then '' else r.tenant end
      where r.id in (${listOf(roomIds)}) and u.id in (${listOf(senderIds)})`).then((result) => resultRows<{ roomId: string } & Sender>(result)),
    replyIds.length === 0
      ? Promise.resolve([])
      : db.execute(sql`select id::text as id, seq, sender_id as "senderId", content, deleted_at is not null as deleted
        from chat.messages where id in (${listOf(replyIds)})`).then((result) => resultRows<{ id: string, seq: number | string, senderId: string, content: string, deleted: boolean }>(result)),
    reactionsOf(db, rows.map((row) => row.id)),
    threadsOf(db, rows.filter((row) => row.threadRootId == null).map((row) => row.id)),
  ])
  const senders = new Map(senderRows.map((row) => [`${row.roomId} ${row.id}`, { id: row.id, name: row.name, avatar: row.avatar }]))
  const replies = new Map(replyRows.map((row) => [row.id, { id: row.id, seq: Number(row.seq), senderId: row.senderId, excerpt: excerptOfContent(row.content, row.deleted) }]))
  return rows.map((row) => toMessage(
    row,
    senders.get(`${row.roomId} ${row.senderId}`) ?? { id: row.senderId, name: null, avatar: null },
    row.replyToId === null ? null : replies.get(row.replyToId) ?? null,
    reactionMap.get(row.id) ?? [],
    threads.get(row.id) ?? null,
  ))
}

/** The thread summaries of the roots among `rootIds` (those with a reply), in one grouped query. */
export async function threadsOf (db: ChatDb, rootIds: string[]): Promise<Map<string, ThreadSummary>> {
  const result = new Map<string, ThreadSummary>()
  if (rootIds.length === 0) return result
  const found = resultRows<{ rootId: string, replyCount: number | string, lastReplyAt: string, senders: string }>(await db.execute(sql`select
      thread_root_id::text as "rootId", count(*)::int as "replyCount",
      to_char(max(created_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "lastReplyAt",
      array_to_json(array_agg(sender_id order by seq))::text as senders
    from chat.messages where thread_root_id in (${listOf(rootIds)}) and deleted_at is null group by thread_root_id`))
  for (const row of found) {
    const senders = JSON.parse(row.senders) as string[]
    result.set(row.rootId, { replyCount: Number(row.replyCount), lastReplyAt: isoOf(row.lastReplyAt), participantIds: [...new Set(senders)] })
  }
  return result
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
