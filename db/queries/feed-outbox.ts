import { sql, type SQL } from 'drizzle-orm'
import { feedOutbox } from '../schema/index.js'
import type { ChatDb } from '../client.js'

/**
 * What the writers of durable events add to the feed's outbox (db/schema/feed.ts), each in the statement
 * or transaction of its event: the send batch (message.created, db/queries/send-batch.ts), the room log
 * (every other room event, plugins/messaging/room-log.ts) and a room's creation and deletion. The relay
 * (plugins/feed/) numbers and delivers them.
 */

/** The room log's events as the feed names them (protocol 11.4); events not listed are not in the feed. */
export const ROOM_EVENT_FEED_TYPES: Readonly<Record<string, string>> = {
  'room.member_joined': 'member.joined',
  'room.member_left': 'member.left',
  'room.member_updated': 'member.updated',
  'room.updated': 'room.updated',
  'message.updated': 'message.updated',
  'message.deleted': 'message.deleted',
  'reaction.updated': 'reaction.updated',
  'room.member_banned': 'member.banned',
  'room.ban_lifted': 'member.unbanned',
}

const ROOM_EVENT_TYPES_JSON = JSON.stringify(Object.entries(ROOM_EVENT_FEED_TYPES).map(([event, type]) => ({ event, type })))

/**
 * The statement's last part that stages the feed entries of room events, for a statement that has the
 * events as a CTE named `events` (columns "roomId", seq, event, data): the type from the table above, the
 * tenant from the room, the actor from the event's `by` where it names one. A member who left by a ban
 * is `member.banned`, a member updated by a mute `member.muted` / `member.unmuted` (the event's data says
 * which: one room event per action, as clients see it).
 */
export function stageRoomEvents (): SQL {
  return sql`insert into ${feedOutbox} (type, tenant, room_id, seq, actor_id, data)
    select case
        when e.event = 'room.member_left' and e.data->>'banned' = 'true' then 'member.banned'
        when e.event = 'room.member_updated' and e.data->>'action' = 'muted' then 'member.muted'
        when e.event = 'room.member_updated' and e.data->>'action' = 'unmuted' then 'member.unmuted'
        else t.type end,
      r.tenant, e."roomId", e.seq, e.data->>'by', e.data
    from events e
      join json_to_recordset(${ROOM_EVENT_TYPES_JSON}::text::json) as t(event text, type text) on t.event = e.event
      join chat.rooms r on r.id = e."roomId"
    order by e."roomId", e.seq`
}

/** Stages one entry that is not a room-log event (room.created, room.deleted) in the caller's transaction. */
export async function stageEntry (tx: ChatDb, entry: { type: string, tenant: string, roomId: string, actorId: string, data: Record<string, unknown> }): Promise<void> {
  await tx.insert(feedOutbox).values({ type: entry.type, tenant: entry.tenant, roomId: entry.roomId, seq: null, actorId: entry.actorId, data: entry.data })
}
