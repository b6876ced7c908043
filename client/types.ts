/**
 * The wire shapes of the chat protocol (version 1, as this server implements it), for the client's typed
 * requests and listeners. Plain interfaces, no runtime code: the client has no dependencies.
 */

export type RoomType = 'DIRECT' | 'GROUP' | 'CHANNEL' | 'SUPPORT'
export type Role = 'OWNER' | 'ADMIN' | 'MODERATOR' | 'MEMBER'
export type MessageType = 'TEXT' | 'IMAGE' | 'FILE' | 'VOICE' | 'VIDEO' | 'SYSTEM'
export type PresenceStatus = 'online' | 'away' | 'offline'

export interface UserRef {
  id: string
  name: string | null
  avatar: string | null
}

export interface Attachment {
  url: string
  name: string
  size: number
  mimeType: string
}

export interface Reaction {
  emoji: string
  count: number
  userIds: string[]
}

export interface Message {
  id: string
  roomId: string
  seq: number
  sender: UserRef
  type: MessageType
  content: string
  replyTo?: { id: string, seq: number, senderId: string, excerpt: string }
  attachments: Attachment[]
  reactions: Reaction[]
  clientMsgId?: string
  editedAt?: string
  deletedAt?: string
  createdAt: string
}

/** Where a change (edit, delete, reaction) landed in its room's log: the acting socket's ack carries it. */
export interface EventPlace {
  roomId: string
  seq: number
}

export interface Room {
  id: string
  type: RoomType
  name: string
  description: string | null
  avatar: string | null
  isPrivate: boolean
  maxMembers: number | null
  memberCount: number
  lastSeq: number
  createdBy: string
  createdAt: string
}

/** A room as one user sees it: session.ready, room.added and the room acks. */
export interface RoomSummary extends Room {
  /** The other user of a DIRECT room; null otherwise. */
  peerId: string | null
  myRole: Role
  lastReadSeq: number
  unreadCount: number
  lastMessage: Message | null
}

export interface Member {
  user: UserRef
  role: Role
  joinedAt: string
}

export interface MemberWithStatus extends Member {
  status: PresenceStatus
}

export interface Person {
  id: string
  name: string | null
  avatar: string | null
  status: PresenceStatus
  lastSeen: string | null
}

export interface Favorite {
  type: 'ROOM' | 'USER'
  id: string
  name: string | null
  avatar: string | null
}

export interface SessionReady {
  user: UserRef
  connectionId: string
  serverTime: string
  rooms: RoomSummary[]
  people: Person[]
  favorites: Favorite[]
}

export interface UserPresence {
  userId: string
  status: PresenceStatus
  lastSeen: string | null
}

/** A durable push or a `sync` replay: the same `{event, data}` object. */
export interface RoomEvent {
  event: string
  data: Record<string, unknown>
}

export interface SyncRoom {
  roomId: string
  events: RoomEvent[]
  lastSeq: number
  hasMore: boolean
  resync?: boolean
  error?: { code: string, message: string }
}

/** Server pushes, by event name. */
export interface PushEvents {
  'session.ready': SessionReady
  'message.new': { roomId: string, seq: number, message: Message }
  'message.updated': { roomId: string, seq: number, message: Message }
  'message.deleted': { roomId: string, seq: number, messageId: string }
  'reaction.updated': { roomId: string, seq: number, messageId: string, reactions: Reaction[] }
  'room.added': { room: RoomSummary }
  'room.removed': { roomId: string }
  'room.member_joined': { roomId: string, seq: number, user: UserRef, role: Role }
  'room.member_left': { roomId: string, seq: number, userId: string, by?: string }
  'room.member_updated': { roomId: string, seq: number, member: Member }
  'room.updated': { roomId: string, seq: number, room: Room }
  'receipt.read': { roomId: string, userId: string, seq: number }
  'unread.updated': { roomId: string, lastReadSeq: number, unreadCount: number }
  'typing': { roomId: string, userId: string, isTyping: boolean }
  'presence': UserPresence
  'favorites.updated': { favorites: Favorite[] }
}

/** The pushes that change a room's durable state: each carries the room's `seq`, and `sync` replays them. */
export const DURABLE_EVENTS: ReadonlySet<string> = new Set([
  'message.new', 'message.updated', 'message.deleted', 'reaction.updated',
  'room.member_joined', 'room.member_left', 'room.member_updated', 'room.updated',
])

export interface SendOptions {
  type?: MessageType
  replyToId?: string
  attachments?: Attachment[]
  /** Set to retry a send of an earlier session yourself; a fresh UUID otherwise. */
  clientMsgId?: string
}

export interface CreateRoomInput {
  name: string
  type: 'GROUP' | 'CHANNEL' | 'SUPPORT'
  description?: string
  avatar?: string
  isPrivate?: boolean
  maxMembers?: number
  memberIds?: string[]
}

export interface RoomPatch {
  name?: string
  description?: string | null
  avatar?: string | null
  isPrivate?: boolean
  maxMembers?: number | null
}

export interface HistoryPage {
  before?: number
  after?: number
  limit?: number
}

/** Every client request: its `data` and the data of its ack. */
export interface Requests {
  'message.send': { data: { roomId: string, content: string } & SendOptions, ack: { message: Message } }
  'message.edit': { data: { messageId: string, content: string }, ack: { message: Message } & EventPlace }
  'message.delete': { data: { messageId: string }, ack: Partial<EventPlace> }
  'reaction.add': { data: { messageId: string, emoji: string }, ack: { reactions: Reaction[] } & Partial<EventPlace> }
  'reaction.remove': { data: { messageId: string, emoji: string }, ack: { reactions: Reaction[] } & Partial<EventPlace> }
  'history.fetch': { data: { roomId: string } & HistoryPage, ack: { messages: Message[], hasMore: boolean } }
  'message.read': { data: { roomId: string, seq: number }, ack: { lastReadSeq: number, unreadCount: number } }
  'sync': { data: { cursors: Array<{ roomId: string, seq: number }> }, ack: { rooms: SyncRoom[] } }
  'room.create': { data: CreateRoomInput, ack: { room: RoomSummary } }
  'dm.open': { data: { userId: string }, ack: { room: RoomSummary } }
  'room.join': { data: { roomId: string }, ack: { room: RoomSummary, members: MemberWithStatus[], messages: Message[] } }
  'room.leave': { data: { roomId: string }, ack: Record<string, never> }
  'room.update': { data: { roomId: string } & RoomPatch, ack: { room: RoomSummary } }
  'room.delete': { data: { roomId: string }, ack: Record<string, never> }
  'room.members': { data: { roomId: string }, ack: { members: MemberWithStatus[] } }
  'room.member.add': { data: { roomId: string, userIds: string[] }, ack: { members: MemberWithStatus[] } }
  'room.member.remove': { data: { roomId: string, userId: string }, ack: Record<string, never> }
  'room.member.role': { data: { roomId: string, userId: string, role: Role }, ack: { member: Member } }
  'typing.start': { data: { roomId: string }, ack: Record<string, never> }
  'typing.stop': { data: { roomId: string }, ack: Record<string, never> }
  'presence.set': { data: { status: PresenceStatus }, ack: Record<string, never> }
  'presence.get': { data: { userIds: string[] }, ack: { users: UserPresence[] } }
  'favorite.toggle': { data: { type: 'ROOM' | 'USER', id: string }, ack: { favorites: Favorite[] } }
  'auth': { data: { token: string }, ack: { exp: number | null } }
}
