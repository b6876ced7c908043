import { sql, type SQL } from 'drizzle-orm'
import type { Attachment, MessageType } from '../schema/index.js'

/** One send of a batch as the statement reads it; `i` is its place in the batch. */
export interface SendBatchRow {
  i: number
  id: string
  roomId: string
  senderId: string
  type: MessageType
  content: string
  replyToId: string | null
  attachments: Attachment[]
  clientMsgId: string | null
  /** Users mentioned as asked; the statement keeps the room's members among them, and `*`. */
  mentions?: string[]
  /** A thread reply's root: written only when it is a top-level message of the same room. */
  threadRootId?: string | null
  /** A send made as the server (the host's code): written without a membership row. */
  asServer?: boolean
}

/** What the statement says of each send, by `i`. */
export interface SendBatchResult {
  i: number
  /** The seq the message took; null when it was not written. */
  seq: number | null
  /** Set when the send replies to a message that exists (in any room). */
  reply_room_id: string | null
  reply_seq: number | null
  reply_sender_id: string | null
  reply_content: string | null
  reply_deleted: boolean | null
  /** Only read for a send that was not written: false when its room does not exist. */
  room_exists: boolean | null
  /** Set when the send names a thread root that exists (in any room); root_top: it is a top-level message. */
  root_room_id: string | null
  root_top: boolean | null
  /** The mentions stored with the message (null when none were asked). */
  mentions: string[] | null
  /** True when the send was refused because its sender is not a member of the room (now, under its lock). */
  not_member: boolean
}

/**
 * A whole group-commit batch as one statement, so that a batch costs one round trip instead of one per
 * step; sent without BEGIN and COMMIT, PostgreSQL runs it as a transaction of its own. The statement is
 * the function `chat.send_batch` (migrations 0017 and 0018; a change to it is a new migration that
 * replaces the function), because PostgreSQL keeps a function's plan per connection: sent as text, the
 * statement was parsed, described and planned again for every batch, 2–3 ms of a small batch's 3–4 ms
 * before its commit. The function's settings (no seq scan, no hash or merge join) keep a plan made from
 * stale statistics from reading whole tables; its steps are never joined to each other (with nested
 * loops each such join compared every send with every other: 22 ms for a batch of 108, 17 ms without),
 * so every row carries what the later steps need. Its steps:
 * - `input` reads each send's reply target and thread root; `screened` marks `fresh` the sends whose
 *   reply target and root are in their room and that retry no clientMsgId already stored (as this
 *   statement's snapshot sees it), each a probe of an index;
 * - `locked` locks the batch's rooms in id order before anything updates them, so that concurrent
 *   batches (two per node, and other nodes) wait for each other instead of deadlocking; the UPDATE's
 *   one-time filter reads it first;
 * - `checked` marks `member` the fresh sends whose sender is a member as of the writing, by the database,
 *   not a node's cache (the server's own sends need no row). Every removal of a membership counts on its
 *   room's row (`member_removals`, a trigger), and so takes the room's row lock: once this statement
 *   holds the lock no removal is in flight. Where the count in this statement's snapshot equals the
 *   locked row's, no member left since the snapshot was taken and a plain probe at the snapshot is the
 *   truth; in a room where it differs (`moved`: a kick committed while the batch waited for the lock),
 *   the rows are read again FOR KEY SHARE, which reads their latest version (`relocked`). Locking every
 *   sender's row always cost the durable bench about 15% in throughput (WAL for each row lock); the
 *   comparison costs nothing;
 * - `bumped` takes each room's seqs under that lock (an UPDATE reads the row's latest version);
 *   `heads` is what each room gives its sends (its first new seq, its tenant) as one jsonb object, and
 *   `numbered` hands the seqs out in batch order to the members' sends, so seqs stay gapless and commit
 *   in order, and keeps, for a send that mentions anyone, the mentioned who are members and `*`;
 * - `own_read` moves each sender's read mark to their last seq in the batch;
 * - the messages are inserted; with the feed on, their message.created entries are staged in the feed's
 *   outbox; with a retention, the room events it no longer keeps are pruned; the answer has a row for
 *   every send.
 * A retry whose original commits while this statement runs is not in its snapshot: its insert breaks
 * the unique (room, sender, clientMsgId) index, nothing is written, and the caller runs the batch again.
 * The rows travel as one JSON document in a bound parameter: postgres.js (4.x) remembers the statement
 * texts it ran, so rows written into the text (as literals) would keep their content alive.
 */
/**
 * A row as the statement reads it: one-letter keys, and the fields that are mostly defaults (TEXT, no
 * reply, no attachments) left out (a missing key reads as NULL). The statement's text is most of what a
 * batch sends to PostgreSQL, and every byte of it is written, copied and parsed once per send.
 */
function compactRow (row: SendBatchRow): Record<string, unknown> {
  const compact: Record<string, unknown> = { i: row.i, d: row.id, r: row.roomId, s: row.senderId, c: row.content }
  if (row.type !== 'TEXT') compact.t = row.type
  if (row.replyToId !== null) compact.p = row.replyToId
  if (row.attachments.length > 0) compact.a = row.attachments
  if (row.clientMsgId !== null) compact.k = row.clientMsgId
  if (row.mentions !== undefined && row.mentions.length > 0) compact.m = row.mentions
  if (row.threadRootId != null) compact.h = row.threadRootId
  if (row.asServer === true) compact.v = true
  return compact
}

/**
 * `deadline` (ISO) is when the batch's senders are answered UNAVAILABLE. The final select's rows are made
 * after the rooms are locked and before the insert runs (an unreferenced data-modifying CTE runs last),
 * and past the deadline they raise instead (migration 0002): the statement, a transaction of its own,
 * then writes nothing. PostgreSQL's clock judges it, so the two clocks are assumed to agree (NTP).
 * `retention` 0 prunes nothing; `feed` false stages nothing. Run it with `executePrepared`.
 */
export function sendBatchStatement (batch: SendBatchRow[], createdAt: string, retention: number, deadline: string, feed: boolean): SQL {
  return sql`select * from "chat"."send_batch"(${JSON.stringify(batch.map(compactRow))}::text, ${createdAt}::text, ${retention}::int, ${deadline}::text, ${feed}::boolean)`
}
