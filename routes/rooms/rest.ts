import type { FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { callerOf } from '../../plugins/auth/request-auth.js'
import type { Actor } from '../../plugins/rooms/types.js'
import { ClientErrors } from '../../schemas/error.js'
import { MessageSchema } from '../../schemas/message.js'
import {
  CreateRoomInput, DirectoryAck, DirectoryQuery, MemberSchema, MembersHasMore, MembersPageQuery, MembersPageSchema, MemberWithStatusSchema, RoleSchema, RoomId,
  RoomPatch, RoomsPageQuery, RoomsPageSchema, RoomSummarySchema, UserId, UserIdsInput,
} from '../../schemas/room.js'

/** The acting user of a REST request: the caller, with no socket of theirs to skip in pushes. */
export function actorOf (request: FastifyRequest): Actor {
  return { user: callerOf(request) }
}

const RoomParams = Type.Object({ roomId: RoomId })
const MemberParams = Type.Object({ roomId: RoomId, userId: UserId })
const DirectParams = Type.Object({ userId: UserId })
const AddOrJoinBody = Type.Object({ userIds: Type.Optional(UserIdsInput) }, { additionalProperties: false })
const RoleBody = Type.Object({ role: RoleSchema }, { additionalProperties: false })

const RoomReply = Type.Object({ room: RoomSummarySchema })
const RoomWithMembers = Type.Object({ room: RoomSummarySchema, members: Type.Array(MemberWithStatusSchema), membersHasMore: MembersHasMore })
const AddOrJoinReply = Type.Object({
  room: Type.Optional(RoomSummarySchema),
  members: Type.Array(MemberWithStatusSchema),
  membersHasMore: Type.Optional(MembersHasMore),
  messages: Type.Optional(Type.Array(MessageSchema)),
}, { description: 'a join answers {room, members, messages} like room.join; an add answers {members} (those added)' })
const NoContent = Type.Null({ description: 'no content' })

/**
 * The REST surface of rooms (protocol section 9), in the API context (routes/api: authenticated, rate
 * limited). Every route calls the same service method as its WebSocket event (routes/rooms/events.ts),
 * so a REST write pushes to sockets exactly as the WebSocket one does.
 */
const roomsRest: FastifyPluginAsyncTypebox = async function roomsRest (app) {
  const rooms = app.chatRooms
  const common = { tags: ['rooms'], security: [{ bearerAuth: [] }] }

  app.get('/rooms', {
    schema: {
      ...common,
      summary: 'A page of the caller\'s rooms, most recently active first (offset, limit: default 100, at most 500)',
      querystring: Type.Object(RoomsPageQuery, { additionalProperties: false }),
      response: { 200: RoomsPageSchema, ...ClientErrors },
    },
  }, async (request) => await rooms.listPage(callerOf(request), request.query))

  app.post('/rooms', {
    schema: { ...common, summary: 'Create a GROUP, CHANNEL or SUPPORT room', body: CreateRoomInput, response: { 201: RoomReply, ...ClientErrors } },
  }, async (request, reply) => reply.code(201).send({ room: await rooms.create(actorOf(request), request.body) }))

  // A static segment: Fastify's router matches it before /rooms/:roomId.
  app.get('/rooms/directory', {
    schema: {
      ...common,
      summary: 'The directory: public rooms of the caller\'s tenant they may join, by name (query, type, cursor, limit: default 50, at most 100), as room.directory',
      querystring: DirectoryQuery,
      response: { 200: DirectoryAck, ...ClientErrors },
    },
  }, async (request) => await rooms.directory(callerOf(request), request.query))

  app.get('/rooms/:roomId', {
    schema: { ...common, summary: 'One room with its members', params: RoomParams, response: { 200: RoomWithMembers, ...ClientErrors } },
  }, async (request) => await rooms.get(actorOf(request), request.params.roomId))

  app.patch('/rooms/:roomId', {
    schema: { ...common, summary: 'Update the room (ADMIN and above)', params: RoomParams, body: RoomPatch, response: { 200: RoomReply, ...ClientErrors } },
  }, async (request) => ({ room: await rooms.update(actorOf(request), request.params.roomId, request.body) }))

  app.delete('/rooms/:roomId', {
    schema: { ...common, summary: 'Delete the room (OWNER)', params: RoomParams, response: { 204: NoContent, ...ClientErrors } },
  }, async (request, reply) => {
    await rooms.delete(actorOf(request), request.params.roomId)
    return reply.code(204).send(null)
  })

  app.get('/rooms/:roomId/members', {
    schema: {
      ...common,
      summary: 'A page of the room\'s members, oldest first (offset, limit: default 100, at most 500)',
      params: RoomParams,
      querystring: Type.Object(MembersPageQuery, { additionalProperties: false }),
      response: { 200: MembersPageSchema, ...ClientErrors },
    },
  }, async (request) => await rooms.members(actorOf(request), request.params.roomId, request.query))

  app.post('/rooms/:roomId/members', {
    schema: {
      ...common,
      summary: 'Join the room (body {}) or add users to it (body {userIds})',
      params: RoomParams,
      body: AddOrJoinBody,
      response: { 200: AddOrJoinReply, ...ClientErrors },
    },
  }, async (request) => {
    const userIds = request.body?.userIds
    if (userIds === undefined) return await rooms.join(actorOf(request), request.params.roomId)
    return { members: await rooms.addMembers(actorOf(request), request.params.roomId, userIds) }
  })

  app.delete('/rooms/:roomId/members/:userId', {
    schema: { ...common, summary: 'Leave the room (your own id) or remove a member of a lower role', params: MemberParams, response: { 204: NoContent, ...ClientErrors } },
  }, async (request, reply) => {
    await rooms.removeMember(actorOf(request), request.params.roomId, request.params.userId)
    return reply.code(204).send(null)
  })

  app.patch('/rooms/:roomId/members/:userId', {
    schema: { ...common, summary: 'Change a member\'s role', params: MemberParams, body: RoleBody, response: { 200: Type.Object({ member: MemberSchema }), ...ClientErrors } },
  }, async (request) => ({ member: await rooms.setRole(actorOf(request), request.params.roomId, request.params.userId, request.body.role) }))

  app.post('/direct/:userId', {
    schema: {
      ...common,
      summary: 'Open the DIRECT room with a user (201 when it was created now, 200 when it existed)',
      params: DirectParams,
      response: { 200: RoomReply, 201: RoomReply, ...ClientErrors },
    },
  }, async (request, reply) => {
    const { room, created } = await rooms.openDirect(actorOf(request), request.params.userId)
    return reply.code(created ? 201 : 200).send({ room })
  })
}

export default roomsRest
