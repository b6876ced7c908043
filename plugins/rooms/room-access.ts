import type { FastifyInstance } from 'fastify'
import type { Role } from '../../db/schema/index.js'
import { chatError, refusals } from '../core/errors.js'
import { SERVER_USER_ID, type ChatUser } from '../realtime/connection.js'
import type { AuthorizeRequest } from '../core/config.js'
import type { PermissionClaims } from '../auth/permission-claims.js'
import type { MembershipCache, RoomEntry } from './membership-cache.js'
import type { RoomAction, TenantUser } from './types.js'
import { can } from './permissions.js'

/** The checks every room action starts with, before its transaction (which checks roles again). */
export interface RoomAccess {
  /** The token's permissions claim first (when requirePermissions is on), then the host's veto. */
  authorize (user: ChatUser, action: string, roomId?: string, data?: unknown): Promise<void>
  /** The room from the cache; NOT_FOUND when it does not exist or belongs to another tenant. */
  roomFor (user: TenantUser, roomId: string): Promise<RoomEntry>
  /** The room and the user's role in it; NOT_MEMBER when they have none (the server acts as OWNER). */
  memberOf (user: ChatUser, roomId: string): Promise<{ entry: RoomEntry, role: Role }>
  /**
   * Like memberOf, for a moderator action (`member.kick`, `message.delete.any`): the permissions claim
   * chats:moderate (with requirePermissions) acts as MODERATOR in any room of the user's tenant.
   */
  actingMemberOf (user: ChatUser, roomId: string, action: RoomAction): Promise<{ entry: RoomEntry, role: Role }>
}

export function refuseDirect (entry: RoomEntry, what: string): void {
  if (entry.room.type === 'DIRECT') throw chatError('FORBIDDEN', `${what} is not possible in a DIRECT room`)
}

/** The server's own user never connects: a user may not open a direct room with it nor add it (protocol 11.3). */
export function refuseReservedUser (user: ChatUser, userIds: readonly string[], field: string): void {
  if (user.server !== true && userIds.includes(SERVER_USER_ID)) throw refusals.reservedUser(field)
}

export function requireRole (role: Role, action: RoomAction, what: string): void {
  if (!can(role, action)) throw chatError('FORBIDDEN', `${what} needs a higher role than ${role}`)
}

export function createRoomAccess (app: FastifyInstance, cache: MembershipCache, claims: PermissionClaims): RoomAccess {
  async function authorize (user: ChatUser, action: string, roomId?: string, data?: unknown): Promise<void> {
    if (user.server === true) return
    claims.require(user, action)
    const hook = app.chatHooks.authorize
    if (hook === undefined) return
    let allowed: boolean
    try {
      const request: AuthorizeRequest = {
        action,
        userId: user.id,
        user: { id: user.id, roles: user.roles, permissions: user.permissions, tenant: user.tenant },
      }
      if (roomId !== undefined) request.roomId = roomId
      if (data !== undefined) request.data = data
      allowed = await hook(request)
    } catch (error) {
      app.log.warn({ err: error, action, userId: user.id }, 'rooms: the authorize hook threw; refusing')
      allowed = false
    }
    if (allowed !== true) throw chatError('FORBIDDEN', `${action} refused by the host's authorize hook`)
  }

  /** The one place a room is matched against the caller's tenant: every room path starts here. */
  async function roomFor (user: TenantUser, roomId: string): Promise<RoomEntry> {
    const entry = await cache.room(roomId)
    if (entry === null || (user.allTenants !== true && entry.room.tenant !== user.tenant)) throw refusals.roomNotFound()
    return entry
  }

  return {
    authorize,
    roomFor,

    async memberOf (user, roomId) {
      const entry = await roomFor(user, roomId)
      const role = user.server === true ? 'OWNER' : entry.members.get(user.id)
      if (role === undefined) throw refusals.notMember()
      return { entry, role }
    },

    async actingMemberOf (user, roomId, action) {
      const entry = await roomFor(user, roomId)
      const role = claims.actingRole(user, user.server === true ? 'OWNER' : entry.members.get(user.id), action)
      if (role === null) throw refusals.notMember()
      return { entry, role }
    },
  }
}
