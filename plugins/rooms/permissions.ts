import type { Role } from '../../db/schema/index.js'
import type { RoomAction } from './types.js'

/** OWNER > ADMIN > MODERATOR > MEMBER. */
export const ROLE_RANK: Readonly<Record<Role, number>> = { MEMBER: 1, MODERATOR: 2, ADMIN: 3, OWNER: 4 }

/**
 * The permission table of protocol section 5, and the only place that decides it: the least role that
 * may do each action. docs/rooms.md prints the same table.
 */
export const LEAST_ROLE: Readonly<Record<RoomAction, Role>> = {
  'message.send': 'MEMBER',
  'message.react': 'MEMBER',
  'message.read': 'MEMBER',
  'room.leave': 'MEMBER',
  'message.edit.own': 'MEMBER',
  'message.delete.own': 'MEMBER',
  'member.add': 'MODERATOR',
  'message.delete.any': 'MODERATOR',
  // `mentions: ["*"]` notifies every member: not for anyone to send.
  'message.mention.everyone': 'MODERATOR',
  // Bans and mutes, like kicks, act only on members of a strictly lower role (canActOn).
  'member.ban': 'MODERATOR',
  'member.mute': 'MODERATOR',
  'room.bans': 'MODERATOR',
  // Any member reports; moderators read and resolve; pins are a moderator's (any member's in DIRECT).
  'message.report': 'MEMBER',
  'room.reports': 'MODERATOR',
  'message.pin': 'MODERATOR',
  // Open or close a SUPPORT room: the staff who joined it (as MODERATOR) may.
  'room.status': 'MODERATOR',
  // A MODERATOR may kick MEMBERs; who may kick whom is further limited by rank (canActOn).
  'member.kick': 'MODERATOR',
  'room.update': 'ADMIN',
  'member.role': 'ADMIN',
  'room.delete': 'OWNER',
  'member.role.admin': 'OWNER',
  'room.transfer': 'OWNER',
}

export function can (role: Role, action: RoomAction): boolean {
  return ROLE_RANK[role] >= ROLE_RANK[LEAST_ROLE[action]]
}

export function outranks (role: Role, other: Role): boolean {
  return ROLE_RANK[role] > ROLE_RANK[other]
}

/** Kicking, banning and muting a member need the action's role and a strictly higher role than theirs. */
export function canActOn (actor: Role, target: Role, action: 'member.kick' | 'member.ban' | 'member.mute'): boolean {
  return can(actor, action) && outranks(actor, target)
}


/**
 * Whether `actor` may change a member from `current` to `next`. Only a member of a strictly lower role
 * can be changed; ADMIN and MODERATOR may set roles below their own, making someone ADMIN needs OWNER,
 * and OWNER is handed over (the previous owner becomes ADMIN).
 */
export function canSetRole (actor: Role, current: Role, next: Role): boolean {
  if (!outranks(actor, current)) return false
  if (next === 'OWNER') return can(actor, 'room.transfer')
  if (next === 'ADMIN') return can(actor, 'member.role.admin')
  return can(actor, 'member.role') && outranks(actor, next)
}
