import { sql, type SQL } from 'drizzle-orm'
import { feedOutbox, messages, roomEvents, roomMembers, rooms, type Attachment, type MessageType } from '../schema/index.js'

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
 * step; sent without BEGIN and COMMIT, PostgreSQL runs it as a transaction of its own:
 * - `fresh` drops the sends whose reply target is not in their room, and the retries of a clientMsgId
 *   already stored (as this statement's snapshot sees it);
 * - `locked` locks the batch's rooms in id order before anything updates them, so that concurrent
 *   batches (two per node, and other nodes) wait for each other instead of deadlocking; the UPDATE's
 *   one-time filter reads it first;
 * - `members` are the senders' membership rows as of the writing, by the database, not a node's cache.
 *   Every removal of a membership counts on its room's row (`member_removals`, a trigger), and so takes
 *   the room's row lock: once this statement holds the lock no removal is in flight. Where the count in
 *   this statement's snapshot equals the locked row's, no member left since the snapshot was taken and a
 *   plain read of the snapshot is the truth (`seen`); where it differs (a kick committed while the batch
 *   waited for the lock), the rows are read again FOR KEY SHARE, which reads their latest version
 *   (`relocked`). Locking every sender's row always cost the durable bench about 15% in throughput (WAL for
 *   each row lock); the comparison costs nothing. `checked` drops the sends of non-members (the server's
 *   own sends need no row), before any seq is taken;
 * - `bumped` takes each room's seqs under that lock (an UPDATE reads the row's latest version), and
 *   `numbered` hands them out in batch order, so seqs stay gapless and commit in order;
 * - `own_read` moves each sender's read mark to their last seq in the batch;
 * - `mentioned` keeps, for the sends that mention anyone (none in most batches), the mentioned who are
 *   members as of the lock, and `*`;
 * - the messages are inserted, with the feed on their message.created entries are staged in the feed's
 *   outbox, and with `retention` the room events it no longer keeps are pruned.
 * A retry whose original commits while this statement runs is not in its snapshot: its insert breaks
 * the unique (room, sender, clientMsgId) index, nothing is written, and the caller runs the batch again.
 * The rows travel as one JSON document in a bound parameter, and the statement's text is the same for
 * every batch: postgres.js (4.x) remembers the last 2000 statement texts it ran, so rows written into
 * the text (as literals) kept up to 2000 batches of message content alive. An unnamed statement costs a
 * describe round trip (about 0.1 ms here) per batch, not per message. Not a prepared statement: a
 * generic plan made while the tables are small (a hashed subplan that scans messages for the retry
 * check) stays cached as they grow, and each batch then reads the whole table.
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
 */
export function sendBatchStatement (batch: SendBatchRow[], createdAt: string, retention: number, deadline: string, feed: boolean): SQL {
  const prune = retention > 0
    ? sql`, pruned as (delete from ${roomEvents} e using bumped b where e.room_id = b.id and e.seq <= b.last_seq - ${retention}::int)`
    : sql``
  // The feed's message.created entries ride in the same statement (db/queries/feed-outbox.ts): written
  // exactly when the messages are, no round trip of their own.
  const staged = feed
    ? sql`, staged as (insert into ${feedOutbox} (type, tenant, room_id, seq, actor_id, data, occurred_at)
        select 'message.created', l.tenant, n."roomId", n.seq, n."senderId",
          jsonb_build_object('message', jsonb_build_object('id', n.id, 'roomId', n."roomId", 'seq', n.seq, 'senderId', n."senderId",
            'type', n.type, 'content', n.content, 'replyToId', n."replyToId", 'threadRootId', n."threadRootId", 'attachments', n.attachments,
            'clientMsgId', n."clientMsgId", 'createdAt', ${createdAt}::text),
            'mentions', to_jsonb(coalesce(w.mentions, '{}'))),
          ${createdAt}::timestamptz
        -- Staged ids in seq order, which the relay keeps: a room's entries reach the sinks in seq order.
        from numbered n join locked l on l.id = n."roomId" left join mentioned w on w.i = n.i order by n."roomId", n.seq)`
    : sql``
  // Most batches mention no one: their statement's text (one of two) has no work for mentions at all.
  const mentioned = batch.some((row) => row.mentions !== undefined && row.mentions.length > 0)
    ? sql`
      -- Only sends that mention anyone: the mentioned who are members now (under the room's lock), and *.
      select n.i, array(
        select u from jsonb_array_elements_text(n.mentions) u
        where u = '*' or exists (select 1 from ${roomMembers} rm where rm.room_id = n."roomId" and rm.user_id = u)
      ) as mentions
      from numbered n where n.mentions is not null`
    : sql`select null::int as i, null::text[] as mentions where false`
  return sql`with input as (
      select i, d as id, r as "roomId", s as "senderId", coalesce(t, 'TEXT') as type, c as content, p as "replyToId",
        coalesce(a, '[]') as attachments, k as "clientMsgId", coalesce(v, false) as "asServer", m as mentions, h as "threadRootId"
      from json_to_recordset(${JSON.stringify(batch.map(compactRow))}::text::json) as x(i int, d uuid, r uuid, s text, t text, c text, p uuid, a jsonb, k text, v boolean, m jsonb, h uuid)
    ), replies as (
      select x.i, r.room_id, r.seq, r.sender_id, r.content, r.deleted_at is not null as deleted
      from input x join ${messages} r on r.id = x."replyToId"
    ), roots as (
      select x.i, t.room_id, t.thread_root_id is null and t.deleted_at is null as top
      from input x join ${messages} t on t.id = x."threadRootId"
    ), fresh as (
      select x.* from input x
      where (x."replyToId" is null or exists (select 1 from replies p where p.i = x.i and p.room_id = x."roomId"))
        and (x."threadRootId" is null or exists (select 1 from roots o where o.i = x.i and o.room_id = x."roomId" and o.top))
        and (x."clientMsgId" is null or not exists (
          -- offset 0 keeps this a probe of the clientMsgId index per send: without it the planner may hash
          -- the subquery, reading all of messages per batch while the table's statistics say it is small.
          select 1 from ${messages} m where m.room_id = x."roomId" and m.sender_id = x."senderId" and m.client_msg_id = x."clientMsgId" offset 0))
    ), locked as (
      select id, member_removals, tenant from ${rooms} where id in (select "roomId" from fresh) order by id for update
    ), pairs as (
      select distinct "roomId", "senderId" from fresh where not "asServer"
    ), moved as (
      -- Rooms that lost a member after this statement's snapshot: locked holds the latest row, a plain
      -- read the snapshot's. The lock then keeps any further removal out until the commit.
      select l.id from locked l join ${rooms} r on r.id = l.id where r.member_removals <> l.member_removals
    ), seen as materialized (
      select m.room_id, m.user_id
      from pairs s join ${roomMembers} m on m.room_id = s."roomId" and m.user_id = s."senderId"
      where s."roomId" not in (select id from moved)
    ), relocked as materialized (
      -- Only where a member left meanwhile: the row lock reads a row's latest version (a removed one is
      -- gone), which a plain read at the snapshot would not.
      select m.room_id, m.user_id
      from pairs s join ${roomMembers} m on m.room_id = s."roomId" and m.user_id = s."senderId"
      where s."roomId" in (select id from moved)
      for key share of m
    ), members as (
      select room_id, user_id from seen union all select room_id, user_id from relocked
    ), checked as (
      select f.*, (f."asServer" or m.user_id is not null) as member
      from fresh f left join members m on m.room_id = f."roomId" and m.user_id = f."senderId"
    ), bumped as (
      update ${rooms} r set last_seq = r.last_seq + c.n, updated_at = now()
      from (select "roomId", count(*)::int as n from checked where member group by "roomId") c
      where r.id = c."roomId" and (select count(*) from locked) >= 0
      returning r.id, r.last_seq, c.n
    ), numbered as (
      select f.*, (b.last_seq - b.n + row_number() over (partition by f."roomId" order by f.i))::int as seq
      from checked f join bumped b on b.id = f."roomId"
      where f.member
    ), mentioned as (${mentioned}), inserted as (
      insert into ${messages} (id, room_id, seq, sender_id, type, content, reply_to_id, thread_root_id, attachments, client_msg_id, mentions, created_at)
      select n.id, n."roomId", n.seq, n."senderId", n.type, n.content, n."replyToId", n."threadRootId", n.attachments, n."clientMsgId",
        coalesce(w.mentions, '{}'), ${createdAt}::timestamptz
      from numbered n left join mentioned w on w.i = n.i
    ), own_read as (
      -- A sender has read what they sent (protocol 11.6): their mark moves to their last seq of the batch.
      -- Rows are locked in room order after the rooms' locks, as every writer of room_members does.
      update ${roomMembers} rm set last_read_seq = s.seq
      from (select "roomId", "senderId", max(seq) as seq from numbered where not "asServer" group by "roomId", "senderId") s
      where rm.room_id = s."roomId" and rm.user_id = s."senderId" and rm.last_read_seq < s.seq
    )${prune}${staged}
    select x.i, n.seq, p.room_id as reply_room_id, p.seq as reply_seq, p.sender_id as reply_sender_id,
      p.content as reply_content, p.deleted as reply_deleted, o.room_id as root_room_id, o.top as root_top,
      case when n.seq is null then exists (select 1 from ${rooms} r where r.id = x."roomId") end as room_exists,
      coalesce(not k.member, false) as not_member, w.mentions,
      case when clock_timestamp() > d.at then "chat"."send_batch_past_deadline"(d.at) end as late
    from input x left join numbered n on n.i = x.i left join replies p on p.i = x.i left join roots o on o.i = x.i left join checked k on k.i = x.i
      left join mentioned w on w.i = x.i cross join (select ${deadline}::timestamptz as at) d`
}
