import { Type, type Static } from 'typebox'
import { MessageSchema, UserRefSchema } from './message.js'
import { StatusSchema, type PresenceStatus } from './presence.js'

export { StatusSchema, UserRefSchema, type PresenceStatus }

/**
 * The shapes of the rooms concern, one TypeBox schema each, shared by the WebSocket events, the REST
 * routes and the generated OpenAPI / AsyncAPI documents.
 */

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
const UUID_RE = new RegExp(UUID_PATTERN)

export function isUuid (value: string): boolean {
  return UUID_RE.test(value)
}

export const MAX_NAME = 100
export const MAX_DESCRIPTION = 1000
export const MAX_AVATAR = 2048
export const MAX_USER_ID = 128
export const MAX_USER_IDS = 100
/** A room's capacity may not be set above this (a room without maxMembers has no limit). */
export const MAX_MEMBERS_LIMIT = 1_000_000
export const MAX_SLOW_MODE_SEC = 3600
/** Messages one room may have pinned at once. */
export const MAX_PINS = 50

export const RoomId = Type.String({ pattern: UUID_PATTERN, maxLength: 36, description: 'room id (uuid)' })
export const UserId = Type.String({ minLength: 1, maxLength: MAX_USER_ID, description: 'user id (the token\'s sub)' })
export const RoomName = Type.String({ minLength: 1, maxLength: MAX_NAME })
export const Description = Type.String({ maxLength: MAX_DESCRIPTION })
export const Avatar = Type.String({ maxLength: MAX_AVATAR, description: 'image URL' })
export const MaxMembers = Type.Integer({ minimum: 2, maximum: MAX_MEMBERS_LIMIT })

export const RoomTypeSchema = Type.Union([Type.Literal('DIRECT'), Type.Literal('GROUP'), Type.Literal('CHANNEL'), Type.Literal('SUPPORT')])
/** The types room.create accepts: DIRECT rooms come from dm.open only. */
export const CreatableRoomType = Type.Union([Type.Literal('GROUP'), Type.Literal('CHANNEL'), Type.Literal('SUPPORT')])
export const RoleSchema = Type.Union([Type.Literal('OWNER'), Type.Literal('ADMIN'), Type.Literal('MODERATOR'), Type.Literal('MEMBER')])
export const RoomStatusSchema = Type.Union([Type.Literal('open'), Type.Literal('closed')], { description: 'a SUPPORT room\'s state: open ones are in the support queue (other rooms stay open)' })
export const FavoriteTypeSchema = Type.Union([Type.Literal('ROOM'), Type.Literal('USER')])

const NullableString = Type.Union([Type.String(), Type.Null()])


/** A room as every member sees it (room.updated). DIRECT rooms have an empty name: clients show the other user. */
export const RoomSchema = Type.Object({
  id: Type.String(),
  type: RoomTypeSchema,
  name: Type.String(),
  description: NullableString,
  avatar: NullableString,
  isPrivate: Type.Boolean(),
  maxMembers: Type.Union([Type.Integer(), Type.Null()]),
  frozen: Type.Boolean({ description: 'only ADMIN and above may send' }),
  slowModeSec: Type.Integer({ description: 'a MEMBER may send one message per this many seconds (0: off)' }),
  pinnedMessageIds: Type.Array(Type.String(), { description: 'pinned messages, oldest pin first (message.pin)' }),
  status: RoomStatusSchema,
  retentionDays: Type.Union([Type.Integer(), Type.Null()], { description: 'this room\'s retention in days (null: the server\'s)' }),
  memberCount: Type.Integer(),
  lastSeq: Type.Integer(),
  createdBy: Type.String(),
  createdAt: Type.String(),
})

/** A room as one user sees it (session.ready, room.added, acks). */
export const RoomSummarySchema = Type.Object({
  ...RoomSchema.properties,
  name: Type.String({ description: 'for a DIRECT room, the other user\'s name (their id when unknown)' }),
  avatar: Type.Union([Type.String(), Type.Null()], { description: 'for a DIRECT room, the other user\'s avatar' }),
  peerId: Type.Union([Type.String(), Type.Null()], { description: 'the other user of a DIRECT room; null otherwise' }),
  myRole: RoleSchema,
  lastReadSeq: Type.Integer(),
  unreadCount: Type.Integer(),
  mentionCount: Type.Integer({ description: 'unread messages that mention you (or everyone)' }),
  lastMessage: Type.Union([MessageSchema, Type.Null()]),
})

/** A member as the durable events carry it (no presence: events are replayed later). */
export const MemberSchema = Type.Object({
  user: UserRefSchema,
  role: RoleSchema,
  joinedAt: Type.String(),
  lastReadSeq: Type.Optional(Type.Integer({ description: 'the member\'s read mark ("seen by"), in room.members and GET /rooms/:roomId' })),
  mutedUntil: Type.Optional(Type.String({ description: 'muted (reads, cannot send, react or type) until then; 9999-12-31 for a mute without an end; absent when not muted' })),
})

/** A member as room.members and GET /rooms/:roomId list it, with presence. */
export const MemberWithStatusSchema = Type.Object({
  ...MemberSchema.properties,
  status: StatusSchema,
})

export const PersonSchema = Type.Object({
  id: Type.String(),
  name: NullableString,
  avatar: NullableString,
  status: StatusSchema,
  lastSeen: NullableString,
})

export const FavoriteSchema = Type.Object({
  type: FavoriteTypeSchema,
  id: Type.String(),
  name: NullableString,
  avatar: NullableString,
})

export type Room = Static<typeof RoomSchema>
export type RoomSummary = Static<typeof RoomSummarySchema>
export type Member = Static<typeof MemberSchema>
export type MemberWithStatus = Static<typeof MemberWithStatusSchema>
export type Person = Static<typeof PersonSchema>
export type Favorite = Static<typeof FavoriteSchema>

// Inputs: the same schemas validate a WebSocket event's data and a REST body.

export const CreateRoomInput = Type.Object({
  name: RoomName,
  type: CreatableRoomType,
  description: Type.Optional(Description),
  avatar: Type.Optional(Avatar),
  isPrivate: Type.Optional(Type.Boolean()),
  maxMembers: Type.Optional(MaxMembers),
  memberIds: Type.Optional(Type.Array(UserId, { maxItems: MAX_USER_IDS })),
}, { additionalProperties: false })

export const RoomPatch = Type.Object({
  name: Type.Optional(RoomName),
  description: Type.Optional(Type.Union([Description, Type.Null()])),
  avatar: Type.Optional(Type.Union([Avatar, Type.Null()])),
  isPrivate: Type.Optional(Type.Boolean()),
  maxMembers: Type.Optional(Type.Union([MaxMembers, Type.Null()], { description: 'null removes the limit' })),
  slowModeSec: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_SLOW_MODE_SEC, description: 'a MEMBER may send one message per this many seconds; 0 turns slow mode off' })),
  frozen: Type.Optional(Type.Boolean({ description: 'true: only ADMIN and above may send' })),
  status: Type.Optional(RoomStatusSchema),
  retentionDays: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 36500 }), Type.Null()], { description: 'messages older than this many days lose their content; null: the server\'s retention.maxAgeDays' })),
}, { additionalProperties: false })

export const UserIdsInput = Type.Array(UserId, { minItems: 1, maxItems: MAX_USER_IDS })

export type CreateRoomData = Static<typeof CreateRoomInput>
export type RoomPatchData = Static<typeof RoomPatch>

/** A page's default and largest `limit` (room.members, room.list and their REST routes). */
export const PAGE_LIMIT = 100
export const PAGE_LIMIT_MAX = 500

/** The query of an offset page of `items`, in `order`. */
function pageQuery (items: string, order: string) {
  return {
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647, description: `${items} to skip, ${order} (default 0)` })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: PAGE_LIMIT_MAX, description: `${items} in the page (default ${PAGE_LIMIT}); fewer when they would not fit in maxReplyBytes` })),
  }
}

/** What follows the items of an offset page. */
function pageEnd (items: string) {
  return {
    hasMore: Type.Boolean({ description: `more ${items} after this page` }),
    nextOffset: Type.Union([Type.Integer(), Type.Null()], { description: 'the offset of the next page; null at the end' }),
  }
}

/** A page of room.members (and GET /rooms/:roomId/members), oldest member first. */
export const MembersPageQuery = pageQuery('members', 'oldest first')
export const MembersPageSchema = Type.Object({ members: Type.Array(MemberWithStatusSchema), ...pageEnd('members') })
export type MemberPage = Static<typeof MembersPageSchema>
/** A page of the caller's rooms (room.list, GET /rooms), most recently active first. */
export const RoomsPageQuery = pageQuery('rooms', 'most recently active first')
export const RoomsPageSchema = Type.Object({ rooms: Type.Array(RoomSummarySchema), ...pageEnd('rooms') })
export type RoomsPage = Static<typeof RoomsPageSchema>
export const MembersHasMore = Type.Boolean({ description: 'more members than `members` holds (at most 100 here): page the rest with room.members / GET /rooms/:roomId/members' })
/** The support queue (support.queue, GET /support/queue): the tenant's open SUPPORT rooms, oldest first. */
export const SupportQueueQuery = pageQuery('rooms', 'oldest first')
export const SupportQueueAck = Type.Object({ rooms: Type.Array(RoomSchema), ...pageEnd('rooms') })

/** room.directory's default and largest `limit`. */
export const DIRECTORY_LIMIT = 50
export const DIRECTORY_LIMIT_MAX = 100
/** A directory cursor's longest text: base64url of the last room's lowercased name (at most 100 characters) and id. */
export const DIRECTORY_CURSOR_MAX = 1024
export const DirectoryRoomType = Type.Union([Type.Literal('GROUP'), Type.Literal('CHANNEL')])
/** The directory (room.directory, GET /rooms/directory): the tenant's public rooms the caller may join, by name. */
export const DirectoryQuery = Type.Object({
  query: Type.Optional(Type.String({ maxLength: MAX_NAME, description: 'case-insensitive: names that start with it, or have a word (after a space) that does' })),
  type: Type.Optional(DirectoryRoomType),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: DIRECTORY_CURSOR_MAX, description: 'the nextCursor of the previous page (opaque)' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: DIRECTORY_LIMIT_MAX, description: `rooms in the page (default ${DIRECTORY_LIMIT}); fewer when they would not fit in maxReplyBytes` })),
}, { additionalProperties: false })
export const DirectoryRoomSchema = Type.Object({
  ...RoomSchema.properties,
  joined: Type.Boolean({ description: 'the caller is already a member' }),
})
export const DirectoryAck = Type.Object({
  rooms: Type.Array(DirectoryRoomSchema, { description: 'by name (case-insensitive), then id' }),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'the cursor of the next page; null at the end' }),
})
export type DirectoryRoom = Static<typeof DirectoryRoomSchema>
export type DirectoryPage = Static<typeof DirectoryAck>
export type DirectoryRequest = Static<typeof DirectoryQuery>
