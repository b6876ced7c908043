import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type, type Static } from 'typebox'
import type { ChatUser } from '../../plugins/realtime/connection.js'
import type { Actor } from '../../plugins/rooms/types.js'
import { MessageSchema } from '../../schemas/message.js'
import {
  CreateRoomInput, MemberSchema, MemberWithStatusSchema, RoleSchema, RoomId, RoomPatch, RoomSummarySchema, UserId, UserIdsInput,
} from '../../schemas/room.js'
import { registerRoomEvents } from './events.js'

/** Fastify's error shape with the protocol's codes, as the suite's error handler sends it. */
export const ErrorSchema = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String({ description: 'protocol error code (FORBIDDEN, NOT_MEMBER, NOT_FOUND, ROOM_FULL, ...)' }),
  error: Type.String(),
  message: Type.String(),
})

const Errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema }

export function actorOf (request: FastifyRequest): Actor {
  return { user: request.chatUser as ChatUser }
}

const RoomParams = Type.Object({ roomId: RoomId })
const MemberParams = Type.Object({ roomId: RoomId, userId: UserId })
const DirectParams = Type.Object({ userId: UserId })
const AddOrJoinBody = Type.Object({ userIds: Type.Optional(UserIdsInput) }, { additionalProperties: false })
const RoleBody = Type.Object({ role: RoleSchema }, { additionalProperties: false })

const RoomReply = Type.Object({ room: RoomSummarySchema })
const RoomWithMembers = Type.Object({ room: RoomSummarySchema, members: Type.Array(MemberWithStatusSchema) })
const AddOrJoinReply = Type.Object({
  room: Type.Optional(RoomSummarySchema),
  members: Type.Array(MemberWithStatusSchema),
  messages: Type.Optional(Type.Array(MessageSchema)),
}, { description: 'a join answers {room, members, messages} like room.join; an add answers {members} (those added)' })
const NoContent = Type.Null({ description: 'no content' })

/**
 * The REST surface of rooms (protocol section 9), under the API prefix, and the WebSocket events of the
 * same concern. Every route calls the same service method as its event, so a REST write pushes to
 * sockets exactly as the WebSocket one does.
 */
export default async function roomsRoutes (app: FastifyInstance): Promise<void> {
  registerRoomEvents(app)
  await app.register(roomsRest, { prefix: app.chatConfig.apiPrefix })
}

async function roomsRest (app: FastifyInstance): Promise<void> {
  const rooms = app.chatRooms
  const common = { tags: ['rooms'], security: [{ bearerAuth: [] }] }
  const preHandler = app.chatAuthenticate

  app.get('/rooms', {
    preHandler,
    schema: { ...common, summary: 'The caller\'s rooms, most recently active first', response: { 200: Type.Object({ rooms: Type.Array(RoomSummarySchema) }), ...Errors } },
  }, async (request) => ({ rooms: await rooms.listForUser(actorOf(request).user) }))

  app.post<{ Body: Static<typeof CreateRoomInput> }>('/rooms', {
    preHandler,
    schema: { ...common, summary: 'Create a GROUP, CHANNEL or SUPPORT room', body: CreateRoomInput, response: { 201: RoomReply, ...Errors } },
  }, async (request, reply) => reply.code(201).send({ room: await rooms.create(actorOf(request), request.body) }))

  app.get<{ Params: Static<typeof RoomParams> }>('/rooms/:roomId', {
    preHandler,
    schema: { ...common, summary: 'One room with its members', params: RoomParams, response: { 200: RoomWithMembers, ...Errors } },
  }, async (request) => await rooms.get(actorOf(request), request.params.roomId))

  app.patch<{ Params: Static<typeof RoomParams>, Body: Static<typeof RoomPatch> }>('/rooms/:roomId', {
    preHandler,
    schema: { ...common, summary: 'Update the room (ADMIN and above)', params: RoomParams, body: RoomPatch, response: { 200: RoomReply, ...Errors } },
  }, async (request) => ({ room: await rooms.update(actorOf(request), request.params.roomId, request.body) }))

  app.delete<{ Params: Static<typeof RoomParams> }>('/rooms/:roomId', {
    preHandler,
    schema: { ...common, summary: 'Delete the room (OWNER)', params: RoomParams, response: { 204: NoContent, ...Errors } },
  }, async (request, reply) => {
    await rooms.delete(actorOf(request), request.params.roomId)
    return reply.code(204).send()
  })

  app.post<{ Params: Static<typeof RoomParams>, Body: Static<typeof AddOrJoinBody> }>('/rooms/:roomId/members', {
    preHandler,
    schema: {
      ...common,
      summary: 'Join the room (body {}) or add users to it (body {userIds})',
      params: RoomParams,
      body: AddOrJoinBody,
      response: { 200: AddOrJoinReply, ...Errors },
    },
  }, async (request) => {
    const userIds = request.body?.userIds
    if (userIds === undefined) return await rooms.join(actorOf(request), request.params.roomId)
    return { members: await rooms.addMembers(actorOf(request), request.params.roomId, userIds) }
  })

  app.delete<{ Params: Static<typeof MemberParams> }>('/rooms/:roomId/members/:userId', {
    preHandler,
    schema: { ...common, summary: 'Leave the room (your own id) or remove a member of a lower role', params: MemberParams, response: { 204: NoContent, ...Errors } },
  }, async (request, reply) => {
    await rooms.removeMember(actorOf(request), request.params.roomId, request.params.userId)
    return reply.code(204).send()
  })

  app.patch<{ Params: Static<typeof MemberParams>, Body: Static<typeof RoleBody> }>('/rooms/:roomId/members/:userId', {
    preHandler,
    schema: { ...common, summary: 'Change a member\'s role', params: MemberParams, body: RoleBody, response: { 200: Type.Object({ member: MemberSchema }), ...Errors } },
  }, async (request) => ({ member: await rooms.setRole(actorOf(request), request.params.roomId, request.params.userId, request.body.role) }))

  app.post<{ Params: Static<typeof DirectParams> }>('/direct/:userId', {
    preHandler,
    schema: {
      ...common,
      summary: 'Open the DIRECT room with a user (201 when it was created now, 200 when it existed)',
      params: DirectParams,
      response: { 200: RoomReply, 201: RoomReply, ...Errors },
    },
  }, async (request, reply) => {
    const { room, created } = await rooms.openDirect(actorOf(request), request.params.userId)
    return reply.code(created ? 201 : 200).send({ room })
  })
}
