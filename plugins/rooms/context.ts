import type { FastifyInstance } from 'fastify'
import { PermissionClaims } from '../auth/permission-claims.js'
import type { Member, MemberWithStatus } from '../../schemas/room.js'
import { startMembershipSync, type MembershipSync } from './membership-sync.js'
import { createRoomAccess, type RoomAccess } from './room-access.js'
import { createRoomAnnouncer, type RoomAnnouncer } from './room-announcements.js'
import { createRoomQuotas, type RoomQuotas } from './room-quotas.js'

/**
 * What the parts of the rooms service (lifecycle, members, favorites, session) share. Built once by the
 * rooms plugin; `app` is its instance, for the database, the room log, users, presence and the log.
 */
export interface RoomsContext {
  app: FastifyInstance
  claims: PermissionClaims
  sync: MembershipSync
  access: RoomAccess
  announce: RoomAnnouncer
  /** Per-user quotas: room creations a minute, rooms per user. */
  quotas: RoomQuotas
  /** Members of a room of `tenant` with their presence (the members are users of the room's tenant). */
  withStatus (tenant: string, members: Member[]): Promise<MemberWithStatus[]>
}

export async function createRoomsContext (app: FastifyInstance): Promise<RoomsContext> {
  const claims = new PermissionClaims(app.chatConfig.requirePermissions)
  const sync = await startMembershipSync(app)
  const presence = app.chatPresenceStore
  return {
    app,
    claims,
    sync,
    access: createRoomAccess(app, sync.cache, claims),
    announce: createRoomAnnouncer(app, sync),
    quotas: createRoomQuotas(app.chatConfig.quotas),
    async withStatus (tenant, members) {
      const statuses = await presence.statusOf(tenant, members.map((member) => member.user.id))
      return members.map((member) => ({ ...member, status: statuses.get(member.user.id)?.status ?? 'offline' }))
    },
  }
}
