import type { FastifyInstance } from 'fastify'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { chatError } from '../../plugins/core/errors.js'
import type { PresenceService } from '../../plugins/presence/presence.js'
import { MAX_PRESENCE_IDS, PresenceList, StatusSchema, UserPresence } from '../../schemas/presence.js'
import { UserId } from '../../schemas/room.js'
import type { ChatUser } from '../../plugins/realtime/connection.js'
import { callerOf } from '../../plugins/auth/request-auth.js'

async function listOf (presence: PresenceService, viewer: ChatUser, userIds: string[]): Promise<{ users: Array<{ userId: string, status: 'online' | 'away' | 'offline', lastSeen: string | null }> }> {
  const unique = [...new Set(userIds)]
  const statuses = await presence.visibleTo(viewer, unique)
  return {
    users: unique.map((userId) => {
      const info = statuses.get(userId) ?? { status: 'offline' as const, lastSeen: null }
      return { userId, status: info.status, lastSeen: info.lastSeen }
    }),
  }
}

/** The presence surface over WebSocket: `presence.set`, `presence.get`, the `presence` push. */
export default async function presenceRoutes (app: FastifyInstance): Promise<void> {
  const { chatGateway: gateway, chatPresence: presence } = app

  gateway.on('presence.set', {
    summary: 'Sets the own status: online, away (until changed or offline) or offline (invisible: shown offline to others until changed, across reconnects).',
    schema: Type.Object({ status: StatusSchema }, { additionalProperties: false }),
    ack: Type.Object({}),
    async handler (ctx, data) {
      await presence.set(ctx.user, data.status)
    },
  })

  gateway.on('presence.get', {
    summary: `The status and last seen of up to ${MAX_PRESENCE_IDS} users, in the order asked (duplicates once).`,
    schema: Type.Object({ userIds: Type.Array(UserId, { minItems: 1, maxItems: MAX_PRESENCE_IDS }) }, { additionalProperties: false }),
    ack: PresenceList,
    async handler (ctx, data) {
      return await listOf(presence, ctx.user, data.userIds)
    },
  })

  gateway.declarePush('presence', {
    summary: 'A member of one of your rooms changed status (not sent for rooms over presenceFanoutMaxMembers members; ephemeral: no seq).',
    schema: UserPresence,
  })
}

/** GET /api/presence, in the API context (routes/api: authenticated, rate limited). */
export const presenceRest: FastifyPluginAsyncTypebox = async function presenceRest (app) {
  app.get('/presence', {
    schema: {
      tags: ['presence'],
      summary: 'Presence of users',
      description: `StatusSchema and last seen of up to ${MAX_PRESENCE_IDS} users, in the order asked (duplicates once). Invisible users read as offline.`,
      security: [{ bearerAuth: [] }],
      querystring: Type.Object({
        userIds: Type.String({ minLength: 1, maxLength: MAX_PRESENCE_IDS * 129, description: 'comma-separated user ids' }),
      }, { additionalProperties: false }),
      response: { 200: PresenceList },
    },
  }, async (request) => {
    const ids = request.query.userIds.split(',').map((id) => id.trim()).filter((id) => id.length > 0)
    if (ids.length === 0) throw chatError('VALIDATION_FAILED', 'userIds: name at least one user id')
    if (new Set(ids).size > MAX_PRESENCE_IDS) throw chatError('VALIDATION_FAILED', `userIds: at most ${MAX_PRESENCE_IDS} user ids`)
    if (ids.some((id) => id.length > 128)) throw chatError('VALIDATION_FAILED', 'userIds: a user id has at most 128 characters')
    return await listOf(app.chatPresence, callerOf(request), ids)
  })
}
