import { sql, type SQL } from 'drizzle-orm'
import { executePrepared, rows, type ChatDb } from '../../db/client.js'
import { arrayOf, inList, iso } from '../../db/queries/sql-parts.js'
import type { Attachment, MessageType, Role, RoomStatus, RoomType } from '../../db/schema/index.js'
import { excerptOf, toMessage, type Message, type Reaction } from '../../schemas/message.js'
import type { Favorite, Member, Room, RoomSummary } from '../../schemas/room.js'
import { refusals } from '../core/errors.js'
import { SERVER_USER_ID, type TenantUser } from '../../lib/user-key.js'

/**
 * The read side of the rooms concern: raw SQL that returns whole summaries, member lists, favorites and
 * message pages, each in one statement whatever the number of rooms. Timestamps are formatted in SQL
 * and jsonb is read as text, so both drivers (postgres.js, PGlite) return the same plain values.
 */

/** The columns of a message `x` with its sender `su` and reply target `rt`, prefixed `m_`. */
const MESSAGE_COLUMNS = `
  x.id as m_id, x.room_id as m_room_id, x.seq as m_seq, x.sender_id as m_sender_id, x.type as m_type,
  x.content as m_content, x.attachments::text as m_attachments, x.client_msg_id as m_client_msg_id,
  ${iso('x.edited_at')} as m_edited_at, ${iso('x.deleted_at')} as m_deleted_at, ${iso('x.created_at')} as m_created_at,
  su.name as m_sender_name, su.avatar as m_sender_avatar,
  rt.id as m_reply_id, rt.seq as m_reply_seq, rt.sender_id as m_reply_sender_id, rt.content as m_reply_content,
  (rt.deleted_at is not null) as m_reply_deleted,
  (select coalesce(json_agg(json_build_object('emoji', g.emoji, 'count', g.n, 'userIds', g.users) order by g.first, g.emoji), '[]')::text
     from (select emoji, count(*)::int as n, json_agg(user_id order by created_at, user_id) as users, min(created_at) as first
             from chat.reactions where message_id = x.id group by emoji) g) as m_reactions`

// A sender is a user of the message's room's tenant (the same sub in another tenant is another user);
// the server's SYSTEM messages name the one server user of the default tenant (SERVER_USER_ID).
const MESSAGE_FROM = `chat.messages x
  join chat.rooms xr on xr.id = x.room_id
  left join chat.users su on su.id = x.sender_id
    and su.tenant = case when x.sender_id = '${SERVER_USER_ID}' then '' else xr.tenant end
  left join chat.messages rt on rt.id = x.reply_to_id`

interface MessageRow {
  m_id: string | null
  m_room_id: string
  m_seq: number
  m_sender_id: string
  m_type: MessageType
  m_content: string
  m_attachments: string | null
  m_client_msg_id: string | null
  m_edited_at: string | null
  m_deleted_at: string | null
  m_created_at: string
  m_sender_name: string | null
  m_sender_avatar: string | null
  m_reply_id: string | null
  m_reply_seq: number | null
  m_reply_sender_id: string | null
  m_reply_content: string | null
  m_reply_deleted: boolean | null
  m_reactions: string | null
}

function messageOf (row: MessageRow): Message | null {
  if (row.m_id === null) return null
  return toMessage({
    id: row.m_id,
    roomId: row.m_room_id,
    seq: row.m_seq,
    senderId: row.m_sender_id,
    type: row.m_type,
    content: row.m_content,
    attachments: row.m_attachments === null ? [] : JSON.parse(row.m_attachments) as Attachment[],
    clientMsgId: row.m_client_msg_id,
    editedAt: row.m_edited_at,
    deletedAt: row.m_deleted_at,
    createdAt: row.m_created_at,
  }, {
    sender: { name: row.m_sender_name, avatar: row.m_sender_avatar },
    replyTo: row.m_reply_id === null
      ? null
      : { id: row.m_reply_id, seq: row.m_reply_seq as number, senderId: row.m_reply_sender_id as string, excerpt: excerptOf(row.m_reply_content ?? '', row.m_reply_deleted === true) },
    reactions: row.m_reactions === null ? [] : JSON.parse(row.m_reactions) as Reaction[],
  })
}

export interface RoomRow {
  id: string
  type: RoomType
  name: string
  description: string | null
  avatar: string | null
  is_private: boolean
  max_members: number | null
  frozen: boolean
  slow_mode_sec: number
  pinned_message_ids: string[] | string
  status: RoomStatus
  retention_days: number | null
  member_count: number
  last_seq: number
  created_by: string
  created_at: string
}

export const ROOM_COLUMNS = `r.id, r.type, r.name, r.description, r.avatar, r.is_private, r.max_members, r.frozen, r.slow_mode_sec, r.pinned_message_ids, r.status, r.retention_days, r.member_count,
  r.last_seq, r.created_by, ${iso('r.created_at')} as created_at`

/** A uuid[] as the drivers give it: an array (postgres.js, PGlite) or its text form in some raw reads. */
function uuidsOf (value: string[] | string): string[] {
  if (Array.isArray(value)) return value
  return value === '{}' ? [] : value.slice(1, -1).split(',')
}

export function roomOf (row: RoomRow): Room {
  return {
    id: row.id,
    type: row.type,
    name: row.name,
    description: row.description,
    avatar: row.avatar,
    isPrivate: row.is_private,
    maxMembers: row.max_members,
    frozen: row.frozen,
    slowModeSec: row.slow_mode_sec,
    pinnedMessageIds: uuidsOf(row.pinned_message_ids),
    status: row.status,
    retentionDays: row.retention_days,
    memberCount: row.member_count,
    lastSeq: row.last_seq,
    createdBy: row.created_by,
    createdAt: row.created_at,
  }
}

/** A room as one user sees it; `userId` says whose. */
export interface UserSummary {
  userId: string
  /** The room's tenant: a sub's rooms of other tenants are not this user's (protocol 11.1). */
  tenant: string
  summary: RoomSummary
  /** The other user of a DIRECT room, as this user sees it (`peers` keys them by room, which is one user's view). */
  peer?: Peer
}

interface SummaryRow extends RoomRow, MessageRow {
  user_id: string
  room_tenant: string
  my_role: Role
  last_read_seq: number
  unread_count: number
  mention_count: number
  peer_id: string | null
  peer_name: string | null
  peer_avatar: string | null
  peer_last_seen: string | null
}

/** The other member of a DIRECT room, as session.ready's `people` lists them. */
export interface Peer {
  id: string
  name: string | null
  avatar: string | null
  lastSeen: string | null
}

export interface SummaryResult {
  summaries: UserSummary[]
  /** The other user of each DIRECT room in the result, by room id. */
  peers: Map<string, Peer>
}

/** A summaries row as its user sees the room; a DIRECT room's other user is added to `peers`. */
function userSummaryOf (row: SummaryRow, peers: Map<string, Peer>): UserSummary {
  const room = roomOf(row)
  const direct = row.type === 'DIRECT'
  const peer = direct && row.peer_id !== null ? { id: row.peer_id, name: row.peer_name, avatar: row.peer_avatar, lastSeen: row.peer_last_seen } : undefined
  if (peer !== undefined) peers.set(row.id, peer)
  const summary: RoomSummary = {
    ...room,
    name: direct ? row.peer_name ?? row.peer_id ?? room.name : room.name,
    avatar: direct ? row.peer_avatar : room.avatar,
    peerId: direct ? row.peer_id : null,
    myRole: row.my_role,
    lastReadSeq: row.last_read_seq,
    unreadCount: row.unread_count,
    mentionCount: row.mention_count,
    lastMessage: messageOf(row),
  }
  return peer === undefined ? { userId: row.user_id, tenant: row.room_tenant, summary } : { userId: row.user_id, tenant: row.room_tenant, summary, peer }
}

/**
 * Every room of the given users (optionally only the given rooms, only the rooms of `tenant`) as each of them sees it, with unread
 * count, last message and the other user of a DIRECT room: one statement, whatever the number of rooms.
 * Most recently active rooms first (room-log's writes stamp updated_at).
 */
export async function loadSummaries (db: ChatDb, userIds: readonly string[], roomIds?: readonly string[], tenant?: string): Promise<SummaryResult> {
  const peers = new Map<string, Peer>()
  if (userIds.length === 0 || roomIds?.length === 0) return { summaries: [], peers }
  // The function's plan is made once per connection with every read a probe (migration 0019); prepared,
  // the call is parsed once per connection too.
  const result = await executePrepared(db, 'room summaries', sql`
    select * from chat.room_summaries(${arrayOf(userIds)}, ${roomIds === undefined ? null : arrayOf(roomIds, 'uuid')}, ${tenant ?? null})`)
  const summaries = rows<SummaryRow>(result).map((row) => userSummaryOf(row, peers))
  return { summaries, peers }
}

/** One room as each of `userIds` sees it, by user id (users who are not members are missing). */
export async function summariesOfRoom (db: ChatDb, roomId: string, userIds: readonly string[]): Promise<Map<string, RoomSummary>> {
  const { summaries } = await loadSummaries(db, userIds, [roomId])
  return new Map(summaries.map(({ userId, summary }) => [userId, summary]))
}

/** One room as the user sees it; NOT_MEMBER when they are not a member of it. */
export async function summaryOfRoom (db: ChatDb, userId: string, roomId: string): Promise<RoomSummary> {
  const summary = (await summariesOfRoom(db, roomId, [userId])).get(userId)
  if (summary === undefined) throw refusals.notMember()
  return summary
}

/**
 * One room as the server sees it (the host's API, the service API): OWNER, nothing unread. The server is
 * no member, so the room's fields come from its oldest member's summary; NOT_FOUND for an empty room.
 */
export async function serverSummaryOfRoom (db: ChatDb, roomId: string): Promise<RoomSummary> {
  const [oldest] = await loadMembers(db, roomId, undefined, { offset: 0, limit: 1 })
  if (oldest === undefined) throw refusals.roomNotFound()
  const summary = await summaryOfRoom(db, oldest.user.id, roomId)
  return { ...summary, myRole: 'OWNER', lastReadSeq: summary.lastSeq, unreadCount: 0, mentionCount: 0 }
}

interface FavoriteRow {
  type: 'ROOM' | 'USER'
  id: string
  name: string | null
  avatar: string | null
}

/**
 * A user's favorites, oldest first. A ROOM favorite shows only while the user is a member of that room
 * (leaving, a kick or a deletion hides it without a write); a DIRECT room shows the other user.
 */
export async function loadFavorites (db: ChatDb, user: TenantUser): Promise<Favorite[]> {
  return (await loadFavoritesOf(db, user.tenant, [user.id])).get(user.id) ?? []
}

/** The favorites of users of one tenant, oldest first: `user_id`, `type`, `id`, `name`, `avatar` (and `created_at`, their order). */
function favoritesSelect (tenant: string, userIds: readonly string[]): SQL {
  return sql`
    select f.user_id, f.type, f.target_id as id, f.created_at,
      case when f.type = 'USER' then fu.name when r.type = 'DIRECT' then coalesce(peer.name, peer.user_id) else r.name end as name,
      case when f.type = 'USER' then fu.avatar when r.type = 'DIRECT' then peer.avatar else r.avatar end as avatar
    from chat.favorites f
    left join chat.rooms r on f.type = 'ROOM' and r.id::text = f.target_id and r.tenant = f.tenant
    left join chat.room_members rm on rm.room_id = r.id and rm.user_id = f.user_id
    left join lateral (
      select p.user_id, pu.name, pu.avatar from chat.room_members p left join chat.users pu on pu.tenant = r.tenant and pu.id = p.user_id
      where r.type = 'DIRECT' and p.room_id = r.id and p.user_id <> f.user_id
      order by p.user_id limit 1
    ) peer on true
    left join chat.users fu on f.type = 'USER' and fu.tenant = f.tenant and fu.id = f.target_id
    where f.tenant = ${tenant} and f.user_id = any(${arrayOf(userIds)}) and (f.type = 'USER' or rm.user_id is not null)
    order by f.created_at, f.type, f.target_id`
}

/** Favorites rows by user, in their order. */
function favoritesByUser (userIds: readonly string[], found: Array<FavoriteRow & { user_id: string }>): Map<string, Favorite[]> {
  const byUser = new Map<string, Favorite[]>(userIds.map((id) => [id, []]))
  for (const row of found) byUser.get(row.user_id)?.push({ type: row.type, id: row.id, name: row.name, avatar: row.avatar })
  return byUser
}

/**
 * What session.ready reads of users of one tenant who start together: each one's rooms (as loadSummaries
 * with `tenant`) and favorites, in one statement and one round trip. Each part comes as one JSON array
 * (both drivers give the text, parsed here once): two statements made a third of a wave's statements.
 */
export async function loadSessionRows (db: ChatDb, tenant: string, userIds: readonly string[]): Promise<{ summaries: UserSummary[], favorites: Map<string, Favorite[]> }> {
  if (userIds.length === 0) return { summaries: [], favorites: new Map() }
  const result = await executePrepared(db, 'session rows', sql`
    select
      (select coalesce(json_agg(s order by s.ordinality), '[]')::text from chat.room_summaries(${arrayOf(userIds)}, null, ${tenant}) with ordinality s) as summaries,
      (select coalesce(json_agg(f order by f.created_at, f.type, f.id), '[]')::text from (${favoritesSelect(tenant, userIds)}) f) as favorites`)
  const [row] = rows<{ summaries: string, favorites: string }>(result)
  const peers = new Map<string, Peer>()
  const summaries = (JSON.parse(row?.summaries ?? '[]') as SummaryRow[]).map((summary) => userSummaryOf(summary, peers))
  return { summaries, favorites: favoritesByUser(userIds, JSON.parse(row?.favorites ?? '[]') as Array<FavoriteRow & { user_id: string }>) }
}

/** The favorites of several users of one tenant (sessions that start together), by user id: one statement. */
export async function loadFavoritesOf (db: ChatDb, tenant: string, userIds: readonly string[]): Promise<Map<string, Favorite[]>> {
  if (userIds.length === 0) return new Map()
  const result = await executePrepared(db, 'favorites', sql`${favoritesSelect(tenant, userIds)}`)
  return favoritesByUser(userIds, rows<FavoriteRow & { user_id: string }>(result))
}

interface MemberRow {
  user_id: string
  role: Role
  joined_at: string
  last_read_seq: number
  muted_until: string | null
  name: string | null
  avatar: string | null
}

/** Members of a room, oldest first; only `userIds` when given; only `page.limit` from `page.offset` when given. */
export async function loadMembers (db: ChatDb, roomId: string, userIds?: readonly string[], page?: { offset: number, limit: number }): Promise<Member[]> {
  if (userIds?.length === 0) return []
  const filter = userIds === undefined ? sql`` : sql` and m.user_id in (${inList(userIds)})`
  const paged = page === undefined ? sql`` : sql` limit ${page.limit} offset ${page.offset}`
  const result = await db.execute(sql`
    select m.user_id, m.role, m.last_read_seq, ${sql.raw(iso('m.joined_at'))} as joined_at,
      case when m.muted_until > now() then ${sql.raw(iso('m.muted_until'))} end as muted_until, u.name, u.avatar
    from chat.room_members m
      join chat.rooms r on r.id = m.room_id
      left join chat.users u on u.tenant = r.tenant and u.id = m.user_id
    where m.room_id = ${roomId}${filter}
    order by m.joined_at, m.user_id${paged}`)
  return rows<MemberRow>(result).map((row) => {
    const member: Member = { user: { id: row.user_id, name: row.name, avatar: row.avatar }, role: row.role, joinedAt: row.joined_at, lastReadSeq: row.last_read_seq }
    if (row.muted_until !== null) member.mutedUntil = row.muted_until
    return member
  })
}

/** The latest `limit` messages of a room (deleted ones keep their place), ascending by seq. */
export async function latestMessages (db: ChatDb, roomId: string, limit: number): Promise<Message[]> {
  const result = await db.execute(sql`
    select * from (
      select ${sql.raw(MESSAGE_COLUMNS)} from ${sql.raw(MESSAGE_FROM)}
      where x.room_id = ${roomId}
      order by x.seq desc limit ${limit}
    ) page order by m_seq asc`)
  return rows<MessageRow>(result).map(messageOf).filter((message): message is Message => message !== null)
}

/** One room's public fields (room.updated), or null. */
export async function loadRoom (db: ChatDb, roomId: string): Promise<Room | null> {
  const result = await db.execute(sql`select ${sql.raw(ROOM_COLUMNS)} from chat.rooms r where r.id = ${roomId}`)
  const [row] = rows<RoomRow>(result)
  return row === undefined ? null : roomOf(row)
}

/** The tenant's open SUPPORT rooms, oldest first (the support queue; rooms_support_queue_idx). */
export async function loadSupportQueue (db: ChatDb, tenant: string, offset: number, limit: number): Promise<Room[]> {
  const result = await db.execute(sql`select ${sql.raw(ROOM_COLUMNS)} from chat.rooms r
    where r.tenant = ${tenant} and r.type = 'SUPPORT' and r.status = 'open'
    order by r.created_at, r.id limit ${limit} offset ${offset}`)
  return rows<RoomRow>(result).map(roomOf)
}

/** Which of `userIds` share at least one room with the user (rooms of the user's tenant): one query. */
export async function usersSharingARoom (db: ChatDb, user: TenantUser, userIds: readonly string[]): Promise<Set<string>> {
  if (userIds.length === 0) return new Set()
  const result = await db.execute(sql`
    select distinct other.user_id from chat.room_members mine
      join chat.rooms r on r.id = mine.room_id and r.tenant = ${user.tenant}
      join chat.room_members other on other.room_id = mine.room_id
    where mine.user_id = ${user.id} and other.user_id in (${inList(userIds)})`)
  return new Set(rows<{ user_id: string }>(result).map((row) => row.user_id))
}
