import type { FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { callerOf } from '../../plugins/auth/request-auth.js'
import { holdsGrant } from '../../plugins/auth/permission-claims.js'
import { chatError } from '../../plugins/core/errors.js'
import { createServerApi, type ServerApi } from '../../plugins/core/server-api.js'
import { serverOfTenant } from '../../plugins/realtime/connection.js'
import { ClientErrors } from '../../schemas/error.js'
import { HistoryQuery, HistoryReply, MessageReply } from '../../schemas/messaging.js'
import { MAX_PRESENCE_IDS, PresenceList } from '../../schemas/presence.js'
import { CreateRoomInput, MemberWithStatusSchema, RoomId, RoomPatch, RoomSummarySchema, UserId, UserIdsInput } from '../../schemas/room.js'

const RoomParams = Type.Object({ roomId: RoomId })
const MemberParams = Type.Object({ roomId: RoomId, userId: UserId })
const UserParams = Type.Object({ userId: UserId })
const { memberIds, ...roomFields } = CreateRoomInput.properties
const ServiceRoomBody = Type.Object({ ...roomFields, ownerId: UserId, memberIds }, { additionalProperties: false })
const ServiceMessageBody = Type.Object({
  content: Type.String({ minLength: 1, maxLength: 100000 }),
  type: Type.Optional(Type.Union([Type.Literal('SYSTEM'), Type.Literal('TEXT')], { description: 'SYSTEM (the default) or TEXT with senderId' })),
  senderId: Type.Optional(UserId),
  clientMsgId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
}, { additionalProperties: false })
const CustomEventBody = Type.Object({
  event: Type.String({ minLength: 3, maxLength: 97, description: '"namespace.action", not one of the protocol\'s events' }),
  data: Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 64, description: 'free-form JSON pushed as is (within the request body limit)' }),
}, { additionalProperties: false })
const UserIdsBody = Type.Object({ userIds: UserIdsInput }, { additionalProperties: false })
const PresenceQuery = Type.Object({ userIds: Type.String({ minLength: 1, maxLength: MAX_PRESENCE_IDS * 129, description: 'comma-separated user ids' }) }, { additionalProperties: false })
const RoomReply = Type.Object({ room: RoomSummarySchema })
const Accepted = Type.Null({ description: 'accepted: pushed to the sockets connected now (ephemeral)' })
const NoContent = Type.Null({ description: 'no content' })

/**
 * The service API (protocol 11.5): other services (a booking service, a help desk) drive the chat of
 * their tenant over REST with a token whose permissions hold the `chats:service` grant; anything else is
 * 403. Each route is the server API of plugins/core/server-api.ts acting as the server of the token's
 * tenant (OWNER in every room of that tenant, no other tenant's room exists for it): the same service
 * methods as the socket events, so pushes, the feed and the rules are the same.
 */
const serviceRest: FastifyPluginAsyncTypebox = async function serviceRest (app) {
  const common = { tags: ['service'], security: [{ bearerAuth: [] }] }
  const scope = app

  app.addHook('preHandler', async (request) => {
    if (!holdsGrant(callerOf(request), 'chats:service')) throw chatError('FORBIDDEN', 'the service API needs the permission "chats:service"', { permission: 'chats:service' })
  })
  const serverFor = (request: FastifyRequest): ServerApi => createServerApi(scope, serverOfTenant(callerOf(request).tenant))

  app.post('/rooms', {
    schema: { ...common, summary: 'Create a room with its owner and members', body: ServiceRoomBody, response: { 201: RoomReply, ...ClientErrors } },
  }, async (request, reply) => reply.code(201).send({ room: await serverFor(request).createRoom(request.body) }))

  app.patch('/rooms/:roomId', {
    schema: { ...common, summary: 'Update a room', params: RoomParams, body: RoomPatch, response: { 200: RoomReply, ...ClientErrors } },
  }, async (request) => ({ room: await serverFor(request).updateRoom(request.params.roomId, request.body) }))

  app.post('/rooms/:roomId/members', {
    schema: { ...common, summary: 'Add members', params: RoomParams, body: UserIdsBody, response: { 200: Type.Object({ members: Type.Array(MemberWithStatusSchema) }), ...ClientErrors } },
  }, async (request) => ({ members: await serverFor(request).addMembers(request.params.roomId, request.body.userIds) }))

  app.delete('/rooms/:roomId/members/:userId', {
    schema: { ...common, summary: 'Remove a member', params: MemberParams, response: { 204: NoContent, ...ClientErrors } },
  }, async (request, reply) => {
    await serverFor(request).removeMember(request.params.roomId, request.params.userId)
    return reply.code(204).send(null)
  })

  app.post('/rooms/:roomId/messages', {
    schema: { ...common, summary: 'Post a SYSTEM message, or a TEXT message as a member (senderId)', params: RoomParams, body: ServiceMessageBody, response: { 201: MessageReply, ...ClientErrors } },
  }, async (request, reply) => {
    const { content, type = 'SYSTEM', senderId, clientMsgId } = request.body
    const options = clientMsgId === undefined ? {} : { clientMsgId }
    const server = serverFor(request)
    if (type === 'SYSTEM' && senderId !== undefined) throw chatError('VALIDATION_FAILED', 'senderId: a SYSTEM message is the server\'s; send TEXT to post as a user', [{ field: 'senderId', message: 'only with type TEXT' }])
    if (type === 'TEXT' && senderId === undefined) throw chatError('VALIDATION_FAILED', 'senderId: a TEXT message names its sender', [{ field: 'senderId', message: 'required with type TEXT' }])
    const message = senderId === undefined
      ? await server.sendSystemMessage(request.params.roomId, content, options)
      : await server.sendAs(request.params.roomId, senderId, content, options)
    return reply.code(201).send({ message })
  })

  app.get('/rooms/:roomId/messages', {
    schema: { ...common, summary: 'A history page of a room, ascending by seq', params: RoomParams, querystring: HistoryQuery, response: { 200: HistoryReply, ...ClientErrors } },
  }, async (request) => await serverFor(request).history(request.params.roomId, request.query))

  app.post('/rooms/:roomId/events', {
    schema: { ...common, summary: 'Push an ephemeral custom event to a room', params: RoomParams, body: CustomEventBody, response: { 202: Accepted, ...ClientErrors } },
  }, async (request, reply) => {
    await serverFor(request).publishToRoom(request.params.roomId, request.body.event, request.body.data)
    return reply.code(202).send(null)
  })

  app.post('/users/:userId/events', {
    schema: { ...common, summary: 'Push an ephemeral custom event to a user of the tenant', params: UserParams, body: CustomEventBody, response: { 202: Accepted, ...ClientErrors } },
  }, async (request, reply) => {
    await serverFor(request).publishToUser(request.params.userId, request.body.event, request.body.data)
    return reply.code(202).send(null)
  })

  app.get('/presence', {
    schema: { ...common, summary: 'Presence of users of the tenant', querystring: PresenceQuery, response: { 200: PresenceList, ...ClientErrors } },
  }, async (request) => {
    const ids = [...new Set(request.query.userIds.split(',').map((id) => id.trim()).filter((id) => id.length > 0))]
    if (ids.length === 0 || ids.length > MAX_PRESENCE_IDS) throw chatError('VALIDATION_FAILED', `userIds: name 1 to ${MAX_PRESENCE_IDS} user ids`)
    const statuses = await serverFor(request).presence(ids)
    return { users: ids.map((userId) => ({ userId, ...(statuses.get(userId) ?? { status: 'offline' as const, lastSeen: null }) })) }
  })
}

export default serviceRest
