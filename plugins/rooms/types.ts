import type { Role, RoomType } from '../../db/schema/index.js'
import type { ChatUser } from '../realtime/connection.js'

/** What the per-node cache knows of a room: enough to authorize a send without a database read. */
export interface CachedRoom {
  id: string
  tenant: string
  type: RoomType
  isPrivate: boolean
  maxMembers: number | null
}

export interface Membership {
  room: CachedRoom
  role: Role
}

/**
 * Actions of the permission table (protocol section 5). One place decides them: `can(role, action)`.
 * Ranks: OWNER > ADMIN > MODERATOR > MEMBER.
 */
export type RoomAction =
  | 'message.send' | 'message.react' | 'message.read' | 'room.leave' | 'message.edit.own' | 'message.delete.own'
  | 'member.add' | 'message.delete.any'
  | 'room.update' | 'member.role' | 'member.kick'
  | 'room.delete' | 'member.role.admin' | 'room.transfer'

/**
 * The rooms service as the other concerns (messaging, presence, typing) use it. Implemented by
 * plugins/rooms/rooms.ts, decorated as `app.chatRooms`.
 */
export interface RoomsService {
  /** The user's role in the room, from the node's membership cache; null when not a member. Throws NOT_FOUND for an unknown room. */
  membership (roomId: string, userId: string): Promise<Membership | null>
  /** Like membership, but throws NOT_FOUND (no such room) or NOT_MEMBER. */
  requireMember (roomId: string, userId: string): Promise<Membership>
  /** The ids of the rooms a user is a member of (cached per node). */
  roomIdsOf (userId: string): Promise<string[]>
  /** The ids of a room's members (cached per node). */
  memberIds (roomId: string): Promise<string[]>
  /** True when `role` may do `action` (the permission table). */
  can (role: Role, action: RoomAction): boolean
  /** Consults the host's authorize hook; throws FORBIDDEN on a veto. */
  authorize (user: ChatUser, action: string, roomId?: string, data?: unknown): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Decorated by plugins/rooms/rooms.ts; its richer methods are members of RoomsService too. */
    chatRooms: RoomsService
  }
}
