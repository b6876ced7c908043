import type { Role } from '../../db/schema/index.js'
import type { ChatUser } from '../realtime/connection.js'
import { chatError } from '../core/errors.js'
import { ROLE_RANK } from '../rooms/permissions.js'

/**
 * The token's `permissions` claim, enforced when the option `requirePermissions` is on (off by default:
 * any authenticated user may chat). The rooms service consults this module for every action it
 * authorizes (`app.chatRooms.authorize`, before the host's hook), and for the two grants below; no other
 * code reads the claim. docs/security.md prints the same table.
 */
export type PermissionClaim = 'chats:create' | 'chats:read' | 'chats:join_private' | 'chats:moderate'

export const PERMISSION_CLAIMS: readonly PermissionClaim[] = ['chats:create', 'chats:read', 'chats:join_private', 'chats:moderate']

/** The claim an action needs; actions not listed need none beyond the room's roles. */
export const REQUIRED_CLAIM: Readonly<Record<string, PermissionClaim>> = {
  'room.create': 'chats:create',
  'dm.open': 'chats:create',
  'history.fetch': 'chats:read',
  sync: 'chats:read',
  'room.members': 'chats:read',
  'room.get': 'chats:read',
}

/** Room actions that `chats:moderate` allows in every room of the user's tenant, member or not. */
export const MODERATOR_ACTIONS: ReadonlySet<string> = new Set(['message.delete.any', 'member.kick', 'member.ban', 'member.mute', 'room.bans', 'room.reports'])

/**
 * Grants (protocol 11.1): permissions that give more than an ordinary user has, honoured whether or not
 * `requirePermissions` is on (a host that does not enforce claims still decides who may see everyone's
 * presence).
 */
export type Grant = 'chats:presence' | 'chats:support' | 'chats:service'

export function holdsGrant (user: ChatUser, grant: Grant): boolean {
  return user.server === true || user.permissions.includes(grant)
}

export class PermissionClaims {
  constructor (readonly enabled: boolean) {}

  /** True when the user's token carries the claim and claims are enforced (grants are off otherwise). */
  grants (user: ChatUser, claim: PermissionClaim): boolean {
    return this.enabled && user.permissions.includes(claim)
  }

  /** True when the user may read back (history, sync, members): always when claims are not enforced. */
  mayRead (user: ChatUser): boolean {
    return !this.enabled || user.permissions.includes('chats:read')
  }

  /** Throws FORBIDDEN when claims are enforced and the action needs a claim the token lacks. */
  require (user: ChatUser, action: string): void {
    if (!this.enabled) return
    const claim = REQUIRED_CLAIM[action]
    if (claim !== undefined && !user.permissions.includes(claim)) {
      throw chatError('FORBIDDEN', `${action} needs the permission "${claim}"`, { permission: claim })
    }
  }

  /**
   * The role the user acts with for a moderator action: their role in the room, raised to MODERATOR by
   * `chats:moderate` (also for a user who is not a member, who otherwise has none). Null: no role at all.
   */
  actingRole (user: ChatUser, role: Role | null | undefined, action: string): Role | null {
    const own = role ?? null
    if (!MODERATOR_ACTIONS.has(action) || !this.grants(user, 'chats:moderate')) return own
    return own !== null && ROLE_RANK[own] >= ROLE_RANK.MODERATOR ? own : 'MODERATOR'
  }
}
