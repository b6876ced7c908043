-- Users' rooms as each of them sees them (session.ready, room.list, a room's summary after a change), as a
-- function with a plan of its own. As a prepared statement its plan followed the tables' statistics: on
-- tables of a few thousand rows (a new deployment, the `conns` benchmark) it read every membership to
-- find a handful of users' (a hash join over a seq scan of room_members), and read and hashed the whole
-- messages table once per room for the last message's reply target; 15.7 ms of execution for 20 users
-- where probes take 4.7 ms. PostgreSQL also kept custom plans for it, planning each call again (1 to 6
-- ms, as long as the execution). Here the settings make every read an index probe whatever the
-- statistics say, and the plan is made once per connection and kept (force_generic_plan).
--
-- p_room_ids NULL: every room of the users; p_tenant NULL: rooms of every tenant. Rows come most recently
-- active first. The last message's sender is a user of the room's tenant, and the server's SYSTEM messages
-- name the one server user of the default tenant ('system', SERVER_USER_ID in lib/user-key.ts).
CREATE OR REPLACE FUNCTION "chat"."room_summaries"(p_user_ids text[], p_room_ids uuid[], p_tenant text)
RETURNS TABLE (
  user_id text, room_tenant text, my_role text, last_read_seq int,
  id uuid, type text, name text, description text, avatar text, is_private boolean, max_members int, frozen boolean,
  slow_mode_sec int, pinned_message_ids uuid[], status text, retention_days int, member_count int, last_seq int,
  created_by text, created_at text,
  unread_count int, mention_count int,
  peer_id text, peer_name text, peer_avatar text, peer_last_seen text,
  m_id uuid, m_room_id uuid, m_seq int, m_sender_id text, m_type text, m_content text, m_attachments text,
  m_client_msg_id text, m_edited_at text, m_deleted_at text, m_created_at text, m_sender_name text, m_sender_avatar text,
  m_reply_id uuid, m_reply_seq int, m_reply_sender_id text, m_reply_content text, m_reply_deleted boolean, m_reactions text
)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY SELECT m.user_id, r.tenant, m.role, m.last_read_seq,
    r.id, r.type, r.name, r.description, r.avatar, r.is_private, r.max_members, r.frozen,
    r.slow_mode_sec, r.pinned_message_ids, r.status, r.retention_days, r.member_count, r.last_seq,
    r.created_by, to_char(r.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    unread.unread_count, unread.mention_count,
    other.user_id, peer.name, peer.avatar, to_char(peer.last_seen at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    lm.id, lm.room_id, lm.seq, lm.sender_id, lm.type, lm.content, lm.attachments::text,
    lm.client_msg_id, to_char(lm.edited_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    to_char(lm.deleted_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    to_char(lm.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), su.name, su.avatar,
    rt.id, rt.seq, rt.sender_id, rt.content, rt.deleted_at IS NOT NULL,
    (SELECT coalesce(json_agg(json_build_object('emoji', g.emoji, 'count', g.n, 'userIds', g.users) ORDER BY g.first, g.emoji), '[]')::text
       FROM (SELECT e.emoji, count(*)::int AS n, json_agg(e.user_id ORDER BY e.created_at, e.user_id) AS users, min(e.created_at) AS first
               FROM "chat"."reactions" e WHERE e.message_id = lm.id GROUP BY e.emoji) g)
  FROM unnest(p_user_ids) AS wanted(user_id)
  CROSS JOIN LATERAL (
    SELECT m.room_id, m.user_id, m.role, m.last_read_seq FROM "chat"."room_members" m
    WHERE m.user_id = wanted.user_id AND (p_room_ids IS NULL OR m.room_id = ANY (p_room_ids)) OFFSET 0
  ) m
  CROSS JOIN LATERAL (
    SELECT r.* FROM "chat"."rooms" r WHERE r.id = m.room_id OFFSET 0
  ) r
  CROSS JOIN LATERAL (
    -- Unread: others' messages after the mark, not deleted; of them, those that mention the user or everyone.
    -- In seq order, so that the read is the room's log index from the mark on, whatever the statistics.
    SELECT count(*)::int AS unread_count, (count(*) FILTER (WHERE u.mentions && array[m.user_id, '*']))::int AS mention_count
    FROM (
      SELECT u.mentions FROM "chat"."messages" u
      WHERE u.room_id = r.id AND u.seq > m.last_read_seq AND u.sender_id <> m.user_id AND u.deleted_at IS NULL
      ORDER BY u.seq OFFSET 0
    ) u
  ) unread
  LEFT JOIN LATERAL (
    -- The other member of a DIRECT room (it has two), and what the room's tenant knows of them. An
    -- aggregate, not ORDER BY ... LIMIT 1, which the index on user_id alone could answer by reading it whole.
    SELECT (array_agg(p.user_id ORDER BY p.user_id))[1] AS user_id FROM "chat"."room_members" p
    WHERE r.type = 'DIRECT' AND p.room_id = r.id AND p.user_id <> m.user_id
  ) other ON true
  LEFT JOIN LATERAL (
    SELECT pu.name, pu.avatar, pu.last_seen FROM "chat"."users" pu WHERE pu.tenant = r.tenant AND pu.id = other.user_id OFFSET 0
  ) peer ON true
  LEFT JOIN LATERAL (
    SELECT x.id, x.room_id, x.seq, x.sender_id, x.type, x.content, x.attachments, x.client_msg_id, x.edited_at,
      x.deleted_at, x.created_at, x.reply_to_id
    FROM "chat"."messages" x
    WHERE x.room_id = r.id AND x.deleted_at IS NULL
    ORDER BY x.seq DESC LIMIT 1
  ) lm ON true
  LEFT JOIN LATERAL (
    SELECT s.name, s.avatar FROM "chat"."users" s
    WHERE s.id = lm.sender_id AND s.tenant = CASE WHEN lm.sender_id = 'system' THEN '' ELSE r.tenant END OFFSET 0
  ) su ON true
  LEFT JOIN LATERAL (
    SELECT o.id, o.seq, o.sender_id, o.content, o.deleted_at FROM "chat"."messages" o WHERE o.id = lm.reply_to_id OFFSET 0
  ) rt ON true
  -- Outside the rooms' probe: inside, the index on tenant could be read instead of the primary key.
  WHERE p_tenant IS NULL OR r.tenant = p_tenant
  ORDER BY r.updated_at DESC, r.id;
END
$$;
