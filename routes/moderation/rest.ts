import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ClientErrors } from '../../schemas/error.js'
import { BanAck, BanBody, BansAck, MuteBody, ReportAck, ReportBody, ReportsAck, ReportsQuery, ResolveBody } from '../../schemas/moderation.js'
import { Uuid } from '../../schemas/messaging.js'
import { callerOf } from '../../plugins/auth/request-auth.js'
import { MemberSchema, RoomId, SupportQueueAck, SupportQueueQuery, UserId } from '../../schemas/room.js'
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

  app.get('/support/queue', {
    schema: { ...common, summary: 'The tenant\'s open SUPPORT rooms, oldest first (holders of chats:support)', querystring: Type.Object(SupportQueueQuery, { additionalProperties: false }), response: { 200: SupportQueueAck, ...ClientErrors } },
  }, async (request) => await rooms.supportQueue(callerOf(request), request.query))

  if (!app.chatConfig.concerns.messaging) return
  const messaging = app.chatMessaging
  const MessageParams = Type.Object({ messageId: Uuid })
  const PinReply = Type.Object({ roomId: Type.Optional(Type.String()), seq: Type.Optional(Type.Integer()) })

  app.post('/messages/:messageId/reports', {
    schema: { ...common, summary: 'Report a message to the room\'s moderators', params: MessageParams, body: ReportBody, response: { 201: ReportAck, ...ClientErrors } },
  }, async (request, reply) => reply.code(201).send({ report: await messaging.report(callerOf(request), request.params.messageId, request.body.reason) }))

  app.get('/rooms/:roomId/reports', {
    schema: { ...common, summary: 'The room\'s reports of one status (open by default), newest first (MODERATOR and above)', params: RoomParams, querystring: ReportsQuery, response: { 200: ReportsAck, ...ClientErrors } },
  }, async (request) => ({ reports: await messaging.reports(callerOf(request), request.params.roomId, request.query.status ?? 'open') }))

  app.post('/reports/:reportId/resolve', {
    schema: { ...common, summary: 'Resolve a report: dismiss, or delete the message', params: Type.Object({ reportId: Uuid }), body: ResolveBody, response: { 200: ReportAck, ...ClientErrors } },
  }, async (request) => ({ report: await messaging.resolveReport(callerOf(request), request.params.reportId, request.body.action) }))

  app.put('/messages/:messageId/pin', {
    schema: { ...common, summary: 'Pin a message (MODERATOR and above; any member in a DIRECT room)', params: MessageParams, response: { 200: PinReply, ...ClientErrors } },
  }, async (request) => await messaging.pin(callerOf(request), request.params.messageId, true))

  app.delete('/messages/:messageId/pin', {
    schema: { ...common, summary: 'Unpin a message', params: MessageParams, response: { 200: PinReply, ...ClientErrors } },
  }, async (request) => await messaging.pin(callerOf(request), request.params.messageId, false))
}

export default moderationRest
