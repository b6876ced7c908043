import type { FavoriteType, Role, RoomType } from '../../db/schema/index.js'
import type { ChatUser, Connection } from '../realtime/connection.js'
import type { CreateRoomData, DirectoryPage, DirectoryRequest, Favorite, Member, MemberPage, MemberWithStatus, Person, Room, RoomPatchData, RoomsPage, RoomSummary } from '../../schemas/room.js'
import type { Ban, ModerationOptions } from '../../schemas/moderation.js'
export type { MemberPage, RoomsPage } from '../../schemas/room.js'
import type { Message } from '../../schemas/message.js'
import type { MembershipCache } from './membership-cache.js'
import type { ChatDb } from '../../db/client.js'
import type { TenantUser as User } from '../../lib/user-key.js'

/** What the per-node cache knows of a room: enough to authorize a send without a database read. */
export interface CachedRoom {
  id: string
  tenant: string
  type: RoomType
  isPrivate: boolean
  maxMembers: number | null
  frozen: boolean
  slowModeSec: number
}

/** Who asks about a room: a user is the pair (tenant, sub) (protocol 11.1); `server` for the host's own code. */
export interface TenantUser extends User {
  server?: boolean
  /** The host's own code: rooms of every tenant (ChatUser.allTenants). */
  allTenants?: boolean
}

export interface Membership {
  room: CachedRoom
  role: Role
  /** The end of the member's mute (epoch ms) as the cache knows it; null when not muted. */
  mutedUntil: number | null
}

/** What a member is about to do that mutes, CHANNEL, frozen rooms and slow mode may refuse. */
export type Voice = 'send' | 'react' | 'type'

/**
 * Actions of the permission table (protocol section 5). One place decides them: `can(role, action)`.
 * Ranks: OWNER > ADMIN > MODERATOR > MEMBER.
 */
export type RoomAction =
  | 'message.send' | 'message.react' | 'message.read' | 'room.leave' | 'message.edit.own' | 'message.delete.own'
  | 'member.add' | 'message.delete.any' | 'message.mention.everyone' | 'member.ban' | 'member.mute' | 'room.bans'
  | 'message.report' | 'room.reports' | 'message.pin' | 'room.status'
  | 'room.update' | 'member.role' | 'member.kick'
  | 'room.delete' | 'member.role.admin' | 'room.transfer'

/**
 * The rooms service as the other concerns (messaging, presence, typing) use it. Implemented by
 * plugins/rooms/rooms.ts, decorated as `app.chatRooms`; the methods the REST and WebSocket surfaces
 * call (RoomsApiMethods, below) are members of it too.
 */
export interface RoomsService extends RoomsApiMethods {
  /**
   * The user's role in the room, from the node's membership cache; null when not a member. Throws
   * NOT_FOUND for an unknown room and for a room of another tenant (protocol 11.1): the tenant is part
   * of the question, so no caller can forget it.
   */
  membership (roomId: string, user: TenantUser): Promise<Membership | null>
  /** Like membership, but throws NOT_FOUND (no such room, or a room of another tenant) or NOT_MEMBER. */
  requireMember (roomId: string, user: TenantUser): Promise<Membership>
  /** The ids of the rooms a user is a member of (cached per node). */
  roomIdsOf (user: User): Promise<string[]>
  /** Which of `userIds` (users of the user's tenant) share a room with the user (presence visibility). */
  sharingARoom (user: User, userIds: string[]): Promise<Set<string>>
  /** The ids of a room's members (cached per node). */
  memberIds (roomId: string): Promise<string[]>
  /** True when `role` may do `action` (the permission table). */
  can (role: Role, action: RoomAction): boolean
  /** Consults the host's authorize hook; throws FORBIDDEN on a veto. */
  authorize (user: ChatUser, action: string, roomId?: string, data?: unknown): Promise<void>
  /**
   * Like requireMember, and the member may `voice` here now (protocol 11.3): MUTED while muted; to send
   * or type, FORBIDDEN in a CHANNEL or a frozen room below ADMIN. From the cache: no database read.
   */
  requireVoice (roomId: string, user: TenantUser, voice: Voice): Promise<Membership>
  /**
   * Slow mode's turn for a send that passed every other check: RATE_LIMITED (details.retryAfterMs) when
   * the MEMBER sent in the room less than slowModeSec ago, on any node. MODERATOR and above are exempt.
   * Null when the room has no slow mode for this user (nothing to await).
   */
  takeSlowModeTurn (user: TenantUser, membership: Membership): Promise<SlowModeTurn> | null
}

/** A slow-mode turn taken by a send, handed back when the send writes nothing new. */
export interface SlowModeTurn {
  giveBack (): void
}

/** Who does an action: the user, and the socket that asked (it gets the ack, not the push), if any. */
export interface Actor {
  user: ChatUser
  connection?: Connection
}

export interface JoinResult {
  room: RoomSummary
  /** The first members (oldest first), at most JOIN_MEMBERS and what fits in the reply; the rest by room.members. */
  members: MemberWithStatus[]
  /** More members than `members` holds: page them with room.members from `members.length`. */
  membersHasMore: boolean
  messages: Message[]
}

export interface SessionSnapshot {
  rooms: RoomSummary[]
  people: Person[]
  favorites: Favorite[]
}

/** What the REST and WebSocket surfaces call, on top of the contract other concerns use. */
export interface RoomsApiMethods {
  create (actor: Actor, data: CreateRoomData): Promise<RoomSummary>
  /** The DIRECT room of the actor and `userId`, created on first use; `created` tells which. */
  openDirect (actor: Actor, userId: string): Promise<{ room: RoomSummary, created: boolean }>
  join (actor: Actor, roomId: string): Promise<JoinResult>
  leave (actor: Actor, roomId: string): Promise<void>
  update (actor: Actor, roomId: string, patch: RoomPatchData): Promise<RoomSummary>
  delete (actor: Actor, roomId: string): Promise<void>
  /** One room as the actor sees it, with its members. */
  get (actor: Actor, roomId: string): Promise<{ room: RoomSummary, members: MemberWithStatus[], membersHasMore: boolean }>
  /** A page of the members: `limit` (default 100, at most 500) from `offset`, cut shorter to fit maxReplyBytes. */
  members (actor: Actor, roomId: string, page?: { offset?: number, limit?: number }): Promise<MemberPage>
  /** Adds (invites) users; returns the members that were added, skipping users who already were. */
  addMembers (actor: Actor, roomId: string, userIds: string[]): Promise<MemberWithStatus[]>
  /** Kicks a member; the actor's own id means leave. */
  removeMember (actor: Actor, roomId: string, userId: string): Promise<void>
  setRole (actor: Actor, roomId: string, userId: string, role: Role): Promise<Member>
  /** The tenant's open SUPPORT rooms, oldest first, for holders of chats:support (FORBIDDEN otherwise). */
  supportQueue (user: ChatUser, page?: { offset?: number, limit?: number }): Promise<{ rooms: Room[], hasMore: boolean, nextOffset: number | null }>
  /**
   * The directory: public GROUP and CHANNEL rooms of the user's tenant that they may join, by name prefix
   * or word (`query`), `type`, paged by `cursor` (VALIDATION_FAILED when bad); each says `joined`.
   */
  directory (user: ChatUser, request?: DirectoryRequest): Promise<DirectoryPage>
  /** Bans a user (a member of a lower role is removed): no join or add until it ends (protocol 11.3). */
  ban (actor: Actor, roomId: string, userId: string, options: ModerationOptions): Promise<Ban>
  /** Lifts a ban; nothing happens when there is none. */
  unban (actor: Actor, roomId: string, userId: string): Promise<void>
  /** The room's bans in force, newest first (MODERATOR and above). */
  bans (actor: Actor, roomId: string): Promise<Ban[]>
  /** Mutes a member of a lower role: reads, but cannot send, react or type until it ends. */
  mute (actor: Actor, roomId: string, userId: string, options: ModerationOptions): Promise<Member>
  unmute (actor: Actor, roomId: string, userId: string): Promise<Member>
  /** Every room of the user as they see it, most recently active first. */
  listForUser (user: ChatUser): Promise<RoomSummary[]>
  /** A page of them (room.list, GET /rooms): `limit` (default 100, at most 500) from `offset`, cut to fit maxReplyBytes. */
  listPage (user: ChatUser, page?: { offset?: number, limit?: number }): Promise<RoomsPage>
  /** session.ready's rooms, people and favorites, in a fixed number of queries. */
  snapshot (user: ChatUser): Promise<SessionSnapshot>
  favorites (user: ChatUser): Promise<Favorite[]>
  toggleFavorite (actor: Actor, type: FavoriteType, id: string): Promise<Favorite[]>
  setFavorite (actor: Actor, type: FavoriteType, id: string, on: boolean): Promise<Favorite[]>
  /** Re-aligns this node's socket subscriptions with the database (runs after a broker reconnect). */
  reconcileSubscriptions (): Promise<void>
  /**
   * The user's role in a room for `action` (null: none, or the room does not exist for them): their
   * membership's role, raised to MODERATOR for moderator actions by the permissions claim chats:moderate.
   */
  actingRole (user: ChatUser, roomId: string, action?: RoomAction): Promise<Role | null>
  /**
   * The same, read from room_members in the caller's transaction, not from the cache: a write calls it
   * after its room lock, so a kick committed on any node is seen (protocol 11.2).
   */
  actingRoleIn (tx: ChatDb, user: ChatUser, roomId: string, action?: RoomAction): Promise<Role | null>
  /** The node's membership cache (sizes, tests). */
  readonly cache: MembershipCache
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Decorated by plugins/rooms/rooms.ts. */
    chatRooms: RoomsService
  }
}
