-- The send batch statement (db/queries/send-batch.ts says what each step does and why) as a function, so
-- that PostgreSQL keeps its plan: sent as text, the statement was parsed, described and planned again for
-- every batch, which took 2-3 ms of a batch's 3-4 ms before its commit. A function's plan is made once
-- per connection and reused. Its settings pin the plan's shape: every table is reached through an index
-- and every join is a nested loop, the right plan for a batch of a few hundred rows at most, whatever
-- the tables' statistics say. A plan kept while a table's statistics are stale (made when messages was
-- small, say, and not analyzed since) would otherwise read whole tables on every batch.
CREATE FUNCTION "chat"."send_batch"(p_batch text, p_created_at text, p_retention int, p_deadline text, p_feed boolean)
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
    LEFT JOIN "chat"."messages" p ON p.id = x.p
    LEFT JOIN "chat"."messages" o ON o.id = x.h
  ), fresh AS (
    SELECT x.* FROM input x
    WHERE (x."replyToId" IS NULL OR x.reply_room_id = x."roomId")
      AND (x."threadRootId" IS NULL OR (x.root_room_id = x."roomId" AND x.root_top))
      AND (x."clientMsgId" IS NULL OR NOT EXISTS (
        SELECT 1 FROM "chat"."messages" m
        WHERE m.room_id = x."roomId" AND m.sender_id = x."senderId" AND m.client_msg_id = x."clientMsgId"))
  ), locked AS (
    SELECT r.id, r.member_removals, r.tenant FROM "chat"."rooms" r
    WHERE r.id IN (SELECT f."roomId" FROM fresh f) ORDER BY r.id FOR UPDATE
  ), pairs AS (
    SELECT DISTINCT f."roomId", f."senderId" FROM fresh f WHERE NOT f."asServer"
  ), moved AS (
    -- Rooms that lost a member after this statement's snapshot: locked holds the latest row, a plain
    -- read the snapshot's. The lock then keeps any further removal out until the commit.
    SELECT l.id FROM locked l JOIN "chat"."rooms" r ON r.id = l.id WHERE r.member_removals <> l.member_removals
  ), seen AS MATERIALIZED (
    SELECT m.room_id, m.user_id
    FROM pairs s JOIN "chat"."room_members" m ON m.room_id = s."roomId" AND m.user_id = s."senderId"
    WHERE s."roomId" NOT IN (SELECT v.id FROM moved v)
  ), relocked AS MATERIALIZED (
    -- Only where a member left meanwhile: the row lock reads a row's latest version (a removed one is
    -- gone), which a plain read at the snapshot would not.
    SELECT m.room_id, m.user_id
    FROM pairs s JOIN "chat"."room_members" m ON m.room_id = s."roomId" AND m.user_id = s."senderId"
    WHERE s."roomId" IN (SELECT v.id FROM moved v)
    FOR KEY SHARE OF m
  ), members AS (
    SELECT e.room_id, e.user_id FROM seen e UNION ALL SELECT e.room_id, e.user_id FROM relocked e
  ), checked AS (
    SELECT f.*, (f."asServer" OR m.user_id IS NOT NULL) AS member
    FROM fresh f LEFT JOIN members m ON m.room_id = f."roomId" AND m.user_id = f."senderId"
  ), bumped AS (
    UPDATE "chat"."rooms" r SET last_seq = r.last_seq + c.n, updated_at = now()
    FROM (SELECT k."roomId", count(*)::int AS n FROM checked k WHERE k.member GROUP BY k."roomId") c
    WHERE r.id = c."roomId" AND (SELECT count(*) FROM locked) >= 0
    RETURNING r.id, r.last_seq, c.n
  ), numbered AS (
    -- Every fresh send; seq is null for a non-member's.
    SELECT f.*, CASE WHEN f.member THEN (b.last_seq - b.n + row_number() OVER (PARTITION BY f."roomId", f.member ORDER BY f.i))::int END AS seq
    FROM checked f LEFT JOIN bumped b ON b.id = f."roomId"
  ), mentioned AS (
    -- Only sends that mention anyone: the mentioned who are members now (under the room's lock), and *.
    SELECT n.i, array(
      SELECT u FROM jsonb_array_elements_text(n.mentions) u
      WHERE u = '*' OR EXISTS (SELECT 1 FROM "chat"."room_members" rm WHERE rm.room_id = n."roomId" AND rm.user_id = u)
    ) AS mentions
    FROM numbered n WHERE n.seq IS NOT NULL AND n.mentions IS NOT NULL
  ), inserted AS (
    INSERT INTO "chat"."messages" (id, room_id, seq, sender_id, type, content, reply_to_id, thread_root_id, attachments, client_msg_id, mentions, created_at)
    SELECT n.id, n."roomId", n.seq, n."senderId", n.type, n.content, n."replyToId", n."threadRootId", n.attachments, n."clientMsgId",
      coalesce(w.mentions, '{}'), p_created_at::timestamptz
    FROM numbered n LEFT JOIN mentioned w ON w.i = n.i
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
    SELECT 'message.created', l.tenant, n."roomId", n.seq, n."senderId",
      jsonb_build_object('message', jsonb_build_object('id', n.id, 'roomId', n."roomId", 'seq', n.seq, 'senderId', n."senderId",
        'type', n.type, 'content', n.content, 'replyToId', n."replyToId", 'threadRootId', n."threadRootId", 'attachments', n.attachments,
        'clientMsgId', n."clientMsgId", 'createdAt', p_created_at),
        'mentions', to_jsonb(coalesce(w.mentions, '{}'))),
      p_created_at::timestamptz
    -- Staged ids in seq order, which the relay keeps: a room's entries reach the sinks in seq order.
    FROM numbered n JOIN locked l ON l.id = n."roomId" LEFT JOIN mentioned w ON w.i = n.i
    WHERE p_feed AND n.seq IS NOT NULL
    ORDER BY n."roomId", n.seq
  )
  SELECT x.i, n.seq, x.reply_room_id, x.reply_seq, x.reply_sender_id, x.reply_content,
    CASE WHEN x.reply_room_id IS NOT NULL THEN x.reply_deleted END, x.root_room_id,
    CASE WHEN x.root_room_id IS NOT NULL THEN x.root_top END,
    CASE WHEN n.seq IS NULL THEN EXISTS (SELECT 1 FROM "chat"."rooms" r WHERE r.id = x."roomId") END,
    coalesce(NOT n.member, false), w.mentions,
    CASE WHEN clock_timestamp() > p_deadline::timestamptz THEN "chat"."send_batch_past_deadline"(p_deadline::timestamptz) END
  FROM input x LEFT JOIN numbered n ON n.i = x.i LEFT JOIN mentioned w ON w.i = x.i;
END
$$;
