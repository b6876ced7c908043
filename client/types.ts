/**
 * The wire shapes of the chat protocol (version 1, as this server implements it), for the client's typed
 * requests and listeners. The shapes the server validates or documents are derived from its TypeBox
 * schemas (schemas/): one definition for both sides. The imports are type-only, so the built client
 * has no runtime code from them and no dependency: `import type` is erased from the emitted JavaScript.
 */
import type { Static } from 'typebox'
import type { Attachment, Message, MessageSender, MessageType, Reaction } from '../schemas/message.js'
import type { PushedEvent, SearchPage, SearchRequest, SyncRoom as SyncRoomSchema } from '../schemas/messaging.js'
import type { UserPresence } from '../schemas/presence.js'
import type { Ban, ModerationOptions, Report } from '../schemas/moderation.js'
import type {
  CreateRoomData, DirectoryPage, DirectoryRequest, DirectoryRoom, Favorite, Member, MemberWithStatus, Person, PresenceStatus, RoleSchema, Room, RoomPatchData,
  RoomSummary, RoomTypeSchema,
} from '../schemas/room.js'

// Already types in schemas/: the same ones, under the client's names.
export type { DirectoryPage, DirectoryRequest, DirectoryRoom, SearchPage, SearchRequest, Favorite, Member, MemberWithStatus, Person, PresenceStatus, Reaction, Room, RoomSummary }
export type UserRef = MessageSender
export type CreateRoomInput = CreateRoomData
export type RoomPatch = RoomPatchData

export type RoomType = Static<typeof RoomTypeSchema>
export type Role = Static<typeof RoleSchema>
export type { Attachment, Message, MessageType, UserPresence }
export type { Ban, ModerationOptions, Report }

/** Where a change (edit, delete, reaction) landed in its room's log: the acting socket's ack carries it. */
export interface EventPlace {
  roomId: string
  seq: number
}

export interface SessionReady {
  user: UserRef
  connectionId: string
  serverTime: string
  rooms: RoomSummary[]
  /** True when `rooms` could not all fit in one frame: the client pages the rest with `room.list` before it tells anyone. */
  roomsHasMore?: boolean
  /** Unread messages over all the user's rooms. */
  unreadTotal?: number
  people: Person[]
  favorites: Favorite[]
}

/** A durable push or a `sync` replay: the same `{event, data}` object. */
export type RoomEvent = Static<typeof PushedEvent>

export type SyncRoom = Static<typeof SyncRoomSchema>

/** Server pushes, by event name. */
export interface PushEvents {
  'session.ready': SessionReady
  'message.new': { roomId: string, seq: number, message: Message }
  'message.updated': { roomId: string, seq: number, message: Message }
  'message.deleted': { roomId: string, seq: number, messageId: string }
  'reaction.updated': { roomId: string, seq: number, messageId: string, reactions: Reaction[] }
  'room.added': { room: RoomSummary }
  'room.removed': { roomId: string, reason?: 'banned' }
  'room.member_joined': { roomId: string, seq: number, user: UserRef, role: Role }
  'room.member_left': { roomId: string, seq: number, userId: string, by?: string, banned?: boolean, until?: string | null, reason?: string }
  'room.member_updated': { roomId: string, seq: number, member: Member, by?: string, action?: 'muted' | 'unmuted', reason?: string }
  'room.member_banned': { roomId: string, seq: number, userId: string, by: string, until: string | null, reason?: string }
  'room.ban_lifted': { roomId: string, seq: number, userId: string, by: string }
  'message.reported': { roomId: string, report: Report }
  'room.updated': { roomId: string, seq: number, room: Room }
  'receipt.read': { roomId: string, userId: string, seq: number }
  'unread.updated': { roomId: string, lastReadSeq: number, unreadCount: number, mentionCount: number }
  'typing': { roomId: string, userId: string, isTyping: boolean }
  'presence': UserPresence
  'favorites.updated': { favorites: Favorite[] }
}

/** The pushes that change a room's durable state: each carries the room's `seq`, and `sync` replays them. */
export const DURABLE_EVENTS: ReadonlySet<string> = new Set([
  'message.new', 'message.updated', 'message.deleted', 'reaction.updated',
  'room.member_joined', 'room.member_left', 'room.member_updated', 'room.updated',
  'room.member_banned', 'room.ban_lifted',
])

export interface SendOptions {
  type?: MessageType
  replyToId?: string
  attachments?: Attachment[]
  /** Set to retry a send of an earlier session yourself; a fresh UUID otherwise. */
  clientMsgId?: string
  /** User ids to mention (members of the room; others are dropped), or `['*']` (MODERATOR and above). */
  mentions?: string[]
  /** Reply in the thread of this top-level message of the room. */
  threadRootId?: string
}

export interface HistoryPage {
  before?: number
  after?: number
  limit?: number
  /** Page one thread's replies; without it the main timeline, thread replies left out. */
  threadRootId?: string
}

/** Every client request: its `data` and the data of its ack. */
export interface Requests {
  'message.send': { data: { roomId: string, content: string } & SendOptions, ack: { message: Message } }
  'message.edit': { data: { messageId: string, content: string }, ack: { message: Message } & EventPlace }
  'message.delete': { data: { messageId: string }, ack: Partial<EventPlace> }
  'reaction.add': { data: { messageId: string, emoji: string }, ack: { reactions: Reaction[] } & Partial<EventPlace> }
  'reaction.remove': { data: { messageId: string, emoji: string }, ack: { reactions: Reaction[] } & Partial<EventPlace> }
  'history.fetch': { data: { roomId: string } & HistoryPage, ack: { messages: Message[], hasMore: boolean } }
  'message.read': { data: { roomId: string, seq: number }, ack: { lastReadSeq: number, unreadCount: number, mentionCount: number } }
  'sync': { data: { cursors: Array<{ roomId: string, seq: number }> }, ack: { rooms: SyncRoom[] } }
  'room.create': { data: CreateRoomInput, ack: { room: RoomSummary } }
  'dm.open': { data: { userId: string }, ack: { room: RoomSummary } }
  'room.join': { data: { roomId: string }, ack: { room: RoomSummary, members: MemberWithStatus[], membersHasMore: boolean, messages: Message[] } }
  'room.list': { data: { offset?: number, limit?: number }, ack: { rooms: RoomSummary[], hasMore: boolean, nextOffset: number | null } }
  'room.leave': { data: { roomId: string }, ack: Record<string, never> }
  'room.update': { data: { roomId: string } & RoomPatch, ack: { room: RoomSummary } }
  'room.delete': { data: { roomId: string }, ack: Record<string, never> }
  'room.members': { data: { roomId: string, offset?: number, limit?: number }, ack: { members: MemberWithStatus[], hasMore: boolean, nextOffset: number | null } }
  'room.member.add': { data: { roomId: string, userIds: string[] }, ack: { members: MemberWithStatus[] } }
  'room.member.remove': { data: { roomId: string, userId: string }, ack: Record<string, never> }
  'room.member.role': { data: { roomId: string, userId: string, role: Role }, ack: { member: Member } }
  'typing.start': { data: { roomId: string }, ack: Record<string, never> }
  'typing.stop': { data: { roomId: string }, ack: Record<string, never> }
  'presence.set': { data: { status: PresenceStatus }, ack: Record<string, never> }
  'presence.get': { data: { userIds: string[] }, ack: { users: UserPresence[] } }
  'favorite.toggle': { data: { type: 'ROOM' | 'USER', id: string }, ack: { favorites: Favorite[] } }
  'auth': { data: { token: string }, ack: { exp: number | null } }
  'room.ban': { data: { roomId: string, userId: string } & ModerationOptions, ack: { ban: Ban } }
  'room.unban': { data: { roomId: string, userId: string }, ack: Record<string, never> }
  'room.bans': { data: { roomId: string }, ack: { bans: Ban[] } }
  'room.mute': { data: { roomId: string, userId: string } & ModerationOptions, ack: { member: Member } }
  'room.unmute': { data: { roomId: string, userId: string }, ack: { member: Member } }
  'message.report': { data: { messageId: string, reason: string }, ack: { report: Report } }
  'room.reports': { data: { roomId: string, status?: Report['status'] }, ack: { reports: Report[] } }
  'room.report.resolve': { data: { reportId: string, action: 'dismiss' | 'delete' }, ack: { report: Report } }
  'message.pin': { data: { messageId: string }, ack: Partial<EventPlace> }
  'message.unpin': { data: { messageId: string }, ack: Partial<EventPlace> }
  'room.directory': { data: DirectoryRequest, ack: DirectoryPage }
  'message.search': { data: SearchRequest, ack: SearchPage }
  'support.queue': { data: { offset?: number, limit?: number }, ack: { rooms: Room[], hasMore: boolean, nextOffset: number | null } }
}
