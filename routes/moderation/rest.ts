import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ClientErrors } from '../../schemas/error.js'
import { BanAck, BanBody, BansAck, MuteBody } from '../../schemas/moderation.js'
import { MemberSchema, RoomId, UserId } from '../../schemas/room.js'
import { actorOf } from '../rooms/rest.js'

const RoomParams = Type.Object({ roomId: RoomId })
const MemberParams = Type.Object({ roomId: RoomId, userId: UserId })
const MemberReply = Type.Object({ member: MemberSchema })
const NoContent = Type.Null({ description: 'no content' })

/** Moderation's REST routes (protocol 11.3), each the same service call as its WebSocket event. */
const moderationRest: FastifyPluginAsyncTypebox = async function moderationRest (app) {
  const rooms = app.chatRooms
  const common = { tags: ['moderation'], security: [{ bearerAuth: [] }] }

  app.get('/rooms/:roomId/bans', {
    schema: { ...common, summary: 'The bans in force, newest first (MODERATOR and above)', params: RoomParams, response: { 200: BansAck, ...ClientErrors } },
  }, async (request) => ({ bans: await rooms.bans(actorOf(request), request.params.roomId) }))

  app.put('/rooms/:roomId/bans/:userId', {
    schema: { ...common, summary: 'Ban a user (a member of a lower role is removed); durationSec, reason', params: MemberParams, body: BanBody, response: { 200: BanAck, ...ClientErrors } },
  }, async (request) => ({ ban: await rooms.ban(actorOf(request), request.params.roomId, request.params.userId, request.body ?? {}) }))

  app.delete('/rooms/:roomId/bans/:userId', {
    schema: { ...common, summary: 'Lift a ban', params: MemberParams, response: { 204: NoContent, ...ClientErrors } },
  }, async (request, reply) => {
    await rooms.unban(actorOf(request), request.params.roomId, request.params.userId)
    return reply.code(204).send(null)
  })

  app.put('/rooms/:roomId/mutes/:userId', {
    schema: { ...common, summary: 'Mute a member of a lower role; durationSec, reason', params: MemberParams, body: MuteBody, response: { 200: MemberReply, ...ClientErrors } },
  }, async (request) => ({ member: await rooms.mute(actorOf(request), request.params.roomId, request.params.userId, request.body ?? {}) }))

  app.delete('/rooms/:roomId/mutes/:userId', {
    schema: { ...common, summary: 'End a member\'s mute', params: MemberParams, response: { 200: MemberReply, ...ClientErrors } },
  }, async (request) => ({ member: await rooms.unmute(actorOf(request), request.params.roomId, request.params.userId) }))
}

export default moderationRest
