-- The send batch function (migration 0017) without joins between its steps. Its settings make every join a
-- nested loop, which keeps a table's read an index probe; but a nested loop between two of the
-- statement's own steps reads the inner one again for every outer row, so a batch of n sends made about
-- n * n comparisons in each such join (the answers against the numbered sends, the sends against their
-- senders' memberships, against the rooms' new seqs, against the rooms' tenants, against the mentions).
-- Timed alone, a batch of 108 sends took 22.9 ms and one of 256 took 63 ms; with this version 17.2 and
-- 34 ms. Here each send's row carries everything the later steps need, and what a room gives all its
-- sends (its first new seq, its tenant) is one jsonb object built once, read by key.
--
-- Probes that must stay probes whatever the statistics say are written so that the planner has no other
-- shape to choose: a LATERAL subquery with OFFSET 0 (which PostgreSQL never merges into a join), a scalar
-- subquery instead of EXISTS (an EXISTS may run as a hashed subplan that reads a whole table, or all of a
-- room's members, chosen by the table's size when the plan is made), and `= ANY (ARRAY(...))` for the
-- rooms to lock. test/send-batch.test.ts checks the plan on empty and on populated tables.
CREATE OR REPLACE FUNCTION "chat"."send_batch"(p_batch text, p_created_at text, p_retention int, p_deadline text, p_feed boolean)
RETURNS TABLE (
  i int, seq int, reply_room_id uuid, reply_seq int, reply_sender_id text, reply_content text, reply_deleted boolean,
  root_room_id uuid, root_top boolean, room_exists boolean, not_member boolean, mentions text[], late boolean
)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY WITH input AS (
    -- Each send with what its reply target and thread root are (one probe of the primary key each).
    SELECT x.i, x.d AS id, x.r AS "roomId", x.s AS "senderId", coalesce(x.t, 'TEXT') AS type, x.c AS content,
      x.p AS "replyToId", coalesce(x.a, '[]') AS attachments, x.k AS "clientMsgId", coalesce(x.v, false) AS "asServer",
      x.m AS mentions, x.h AS "threadRootId",
      p.room_id AS reply_room_id, p.seq AS reply_seq, p.sender_id AS reply_sender_id, p.content AS reply_content,
      p.deleted_at IS NOT NULL AS reply_deleted,
      o.room_id AS root_room_id, o.thread_root_id IS NULL AND o.deleted_at IS NULL AS root_top
    FROM json_to_recordset(p_batch::json) AS x(i int, d uuid, r uuid, s text, t text, c text, p uuid, a jsonb, k text, v boolean, m jsonb, h uuid)
    LEFT JOIN LATERAL (SELECT m.room_id, m.seq, m.sender_id, m.content, m.deleted_at FROM "chat"."messages" m WHERE m.id = x.p OFFSET 0) p ON true
    LEFT JOIN LATERAL (SELECT m.room_id, m.thread_root_id, m.deleted_at FROM "chat"."messages" m WHERE m.id = x.h OFFSET 0) o ON true
  ), screened AS (
    -- Every send, fresh or not: not fresh when its reply target or root is not in its room, or when it
    -- retries a clientMsgId already stored (as this statement's snapshot sees it).
    SELECT x.*, coalesce(
      (x."replyToId" IS NULL OR x.reply_room_id = x."roomId")
      AND (x."threadRootId" IS NULL OR (x.root_room_id = x."roomId" AND x.root_top))
      AND (x."clientMsgId" IS NULL OR (
        SELECT true FROM "chat"."messages" m
        WHERE m.room_id = x."roomId" AND m.sender_id = x."senderId" AND m.client_msg_id = x."clientMsgId") IS NULL),
      false) AS fresh
    FROM input x
  ), locked AS (
    SELECT r.id, r.member_removals FROM "chat"."rooms" r
    WHERE r.id = ANY (ARRAY(SELECT f."roomId" FROM screened f WHERE f.fresh)) ORDER BY r.id FOR UPDATE
  ), moved AS (
    -- Rooms that lost a member after this statement's snapshot: locked holds the latest row, a plain
    -- read the snapshot's. The lock then keeps any further removal out until the commit.
    SELECT l.id FROM locked l WHERE l.member_removals <> (SELECT r.member_removals FROM "chat"."rooms" r WHERE r.id = l.id)
  ), relocked AS MATERIALIZED (
    -- Only where a member left meanwhile: the row lock reads a row's latest version (a removed one is
    -- gone), which a plain read at the snapshot would not.
    SELECT m.room_id, m.user_id
    FROM (SELECT DISTINCT f."roomId", f."senderId" FROM screened f WHERE f.fresh AND NOT f."asServer") s
    CROSS JOIN LATERAL (
      SELECT m.room_id, m.user_id FROM "chat"."room_members" m WHERE m.room_id = s."roomId" AND m.user_id = s."senderId" FOR KEY SHARE
    ) m
    WHERE s."roomId" IN (SELECT v.id FROM moved v)
  ), checked AS (
    -- member: written. The server's own sends need no row; in a room no member left since the snapshot,
    -- the snapshot's row is the truth (a probe of the primary key); elsewhere, the row read again above.
    SELECT f.*, f.fresh AND (f."asServer" OR CASE
      WHEN f."roomId" IN (SELECT v.id FROM moved v)
        THEN EXISTS (SELECT 1 FROM relocked e WHERE e.room_id = f."roomId" AND e.user_id = f."senderId")
      ELSE (SELECT true FROM "chat"."room_members" m WHERE m.room_id = f."roomId" AND m.user_id = f."senderId") IS NOT NULL
    END) AS member
    FROM screened f
  ), bumped AS (
    UPDATE "chat"."rooms" r SET last_seq = r.last_seq + c.n, updated_at = now()
    FROM (SELECT k."roomId", count(*)::int AS n FROM checked k WHERE k.member GROUP BY k."roomId") c
    WHERE r.id = c."roomId" AND (SELECT count(*) FROM locked) >= 0
    RETURNING r.id, r.last_seq, c.n, r.tenant
  ), heads AS (
    -- What each room gives all its sends, by room id: one row, so a send finds its room without a join.
    SELECT jsonb_object_agg(b.id, jsonb_build_object('seq', b.last_seq - b.n, 'tenant', b.tenant)) AS rooms FROM bumped b
  ), numbered AS (
    -- Every send; seq, tenant and the kept mentions only for a written one. The mentions kept are the
    -- mentioned who are members now (under the room's lock), and *.
    SELECT f.*,
      CASE WHEN f.member THEN ((h.rooms -> f."roomId"::text ->> 'seq')::int
        + row_number() OVER (PARTITION BY f."roomId", f.member ORDER BY f.i))::int END AS seq,
      CASE WHEN f.member THEN h.rooms -> f."roomId"::text ->> 'tenant' END AS tenant,
      CASE WHEN f.member AND f.mentions IS NOT NULL THEN array(
        SELECT u FROM jsonb_array_elements_text(f.mentions) u
        WHERE u = '*' OR (SELECT true FROM "chat"."room_members" rm WHERE rm.room_id = f."roomId" AND rm.user_id = u) IS NOT NULL
      ) END AS kept_mentions
    FROM checked f CROSS JOIN heads h
  ), inserted AS (
    INSERT INTO "chat"."messages" (id, room_id, seq, sender_id, type, content, reply_to_id, thread_root_id, attachments, client_msg_id, mentions, created_at)
    SELECT n.id, n."roomId", n.seq, n."senderId", n.type, n.content, n."replyToId", n."threadRootId", n.attachments, n."clientMsgId",
      coalesce(n.kept_mentions, '{}'), p_created_at::timestamptz
    FROM numbered n
    WHERE n.seq IS NOT NULL
  ), own_read AS (
    -- A sender has read what they sent (protocol 11.6): their mark moves to their last seq of the batch.
    -- Rows are locked in room order after the rooms' locks, as every writer of room_members does.
    UPDATE "chat"."room_members" rm SET last_read_seq = s.seq
    FROM (SELECT n."roomId", n."senderId", max(n.seq) AS seq FROM numbered n WHERE n.seq IS NOT NULL AND NOT n."asServer" GROUP BY n."roomId", n."senderId") s
    WHERE rm.room_id = s."roomId" AND rm.user_id = s."senderId" AND rm.last_read_seq < s.seq
  ), pruned AS (
    DELETE FROM "chat"."room_events" e USING bumped b
    WHERE p_retention > 0 AND e.room_id = b.id AND e.seq <= b.last_seq - p_retention
  ), staged AS (
    -- The feed's message.created entries (db/queries/feed-outbox.ts), written exactly when the messages are.
    INSERT INTO "chat"."feed_outbox" (type, tenant, room_id, seq, actor_id, data, occurred_at)
    SELECT 'message.created', n.tenant, n."roomId", n.seq, n."senderId",
      jsonb_build_object('message', jsonb_build_object('id', n.id, 'roomId', n."roomId", 'seq', n.seq, 'senderId', n."senderId",
        'type', n.type, 'content', n.content, 'replyToId', n."replyToId", 'threadRootId', n."threadRootId", 'attachments', n.attachments,
        'clientMsgId', n."clientMsgId", 'createdAt', p_created_at),
        'mentions', to_jsonb(coalesce(n.kept_mentions, '{}'))),
      p_created_at::timestamptz
    FROM numbered n
    WHERE p_feed AND n.seq IS NOT NULL
    -- Staged ids in seq order, which the relay keeps: a room's entries reach the sinks in seq order.
    ORDER BY n."roomId", n.seq
  )
  SELECT n.i, n.seq, n.reply_room_id, n.reply_seq, n.reply_sender_id, n.reply_content,
    CASE WHEN n.reply_room_id IS NOT NULL THEN n.reply_deleted END, n.root_room_id,
    CASE WHEN n.root_room_id IS NOT NULL THEN n.root_top END,
    CASE WHEN n.seq IS NULL THEN (SELECT true FROM "chat"."rooms" r WHERE r.id = n."roomId") IS NOT NULL END,
    n.fresh AND NOT n.member, n.kept_mentions,
    CASE WHEN clock_timestamp() > p_deadline::timestamptz THEN "chat"."send_batch_past_deadline"(p_deadline::timestamptz) END
  FROM numbered n;
END
$$;
