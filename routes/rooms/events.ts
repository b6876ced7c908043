import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { EventContext } from '../../plugins/realtime/gateway.js'
import type { Actor } from '../../plugins/rooms/types.js'
import { MessageSchema } from '../../schemas/message.js'
import {
  CreateRoomInput, DirectoryAck, DirectoryQuery, MemberSchema, MembersHasMore, MembersPageQuery, MembersPageSchema, MemberWithStatusSchema, RoleSchema, RoomId,
  RoomPatch, RoomSchema, RoomsPageQuery, RoomsPageSchema, RoomSummarySchema, UserId, UserIdsInput, UserRefSchema,
} from '../../schemas/room.js'

/** The acting user of an event: the user, and the socket that asked (it gets the ack, not the push). */
export function actorOf (ctx: EventContext): Actor {
  return { user: ctx.user, connection: ctx.connection }
}

const RoomRef = Type.Object({ roomId: RoomId }, { additionalProperties: false })
const Empty = Type.Object({})
const RoomAck = Type.Object({ room: RoomSummarySchema })
const MembersAck = Type.Object({ members: Type.Array(MemberWithStatusSchema) })
export const JoinAck = Type.Object({ room: RoomSummarySchema, members: Type.Array(MemberWithStatusSchema), membersHasMore: MembersHasMore, messages: Type.Array(MessageSchema) })

/** The rooms concern's WebSocket events and pushes; each handler calls the same service as REST. */
export function registerRoomEvents (app: FastifyInstance): void {
  const gateway = app.chatGateway
  const rooms = app.chatRooms

  gateway.on('room.create', {
    summary: 'Creates a GROUP, CHANNEL or SUPPORT room; the creator is OWNER, memberIds join as MEMBER.',
    schema: CreateRoomInput,
    ack: RoomAck,
    handler: async (ctx, data) => ({ room: await rooms.create(actorOf(ctx), data) }),
  })

  gateway.on('dm.open', {
    summary: 'Opens the DIRECT room with a user: one room per pair, whoever opens it.',
    schema: Type.Object({ userId: UserId }, { additionalProperties: false }),
    ack: RoomAck,
    handler: async (ctx, data) => ({ room: (await rooms.openDirect(actorOf(ctx), data.userId)).room }),
  })

  gateway.on('room.join', {
    summary: 'Joins a public GROUP, CHANNEL or SUPPORT room; idempotent for a member.',
    schema: RoomRef,
    ack: JoinAck,
    handler: async (ctx, data) => await rooms.join(actorOf(ctx), data.roomId),
  })

  gateway.on('room.list', {
    summary: 'A page of your rooms as session.ready lists them (most recently active first): offset, limit (default 100, at most 500); hasMore, nextOffset. session.ready says roomsHasMore when it could not carry them all.',
    schema: Type.Object(RoomsPageQuery, { additionalProperties: false }),
    ack: RoomsPageSchema,
    handler: async (ctx, data) => await rooms.listPage(ctx.user, data),
  })

  gateway.on('room.directory', {
    summary: 'The directory: the public GROUP and CHANNEL rooms of your tenant you may join, by name (query: a name or a word of it that starts so, case-insensitive), type; cursor, limit (default 50, at most 100); nextCursor (null at the end). Each room says joined.',
    schema: DirectoryQuery,
    ack: DirectoryAck,
    handler: async (ctx, data) => await rooms.directory(ctx.user, data),
  })

  gateway.on('room.leave', {
    summary: 'Leaves a room. The OWNER hands over first unless alone (then the room is deleted).',
    schema: RoomRef,
    ack: Empty,
    handler: async (ctx, data) => { await rooms.leave(actorOf(ctx), data.roomId) },
  })

  gateway.on('room.update', {
    summary: 'Changes the room\'s name, description, avatar, privacy, capacity, slow mode (slowModeSec) or frozen state (ADMIN and above).',
    schema: Type.Object({ roomId: RoomId, ...RoomPatch.properties }, { additionalProperties: false }),
    ack: RoomAck,
    handler: async (ctx, data) => {
      const { roomId, ...patch } = data
      return { room: await rooms.update(actorOf(ctx), roomId, patch) }
    },
  })

  gateway.on('room.delete', {
    summary: 'Deletes the room with its messages (OWNER).',
    schema: RoomRef,
    ack: Empty,
    handler: async (ctx, data) => { await rooms.delete(actorOf(ctx), data.roomId) },
  })

  gateway.on('room.members', {
    summary: 'A page of the room\'s members (oldest first) with their roles and presence: offset, limit (default 100, at most 500); hasMore, nextOffset.',
    schema: Type.Object({ roomId: RoomId, ...MembersPageQuery }, { additionalProperties: false }),
    ack: MembersPageSchema,
    handler: async (ctx, data) => await rooms.members(actorOf(ctx), data.roomId, data),
  })

  gateway.on('room.member.add', {
    summary: 'Adds (invites) users to the room (MODERATOR and above); the ack lists those added.',
    schema: Type.Object({ roomId: RoomId, userIds: UserIdsInput }, { additionalProperties: false }),
    ack: MembersAck,
    handler: async (ctx, data) => ({ members: await rooms.addMembers(actorOf(ctx), data.roomId, data.userIds) }),
  })

  gateway.on('room.member.remove', {
    summary: 'Removes a member of a strictly lower role (kick); your own id leaves.',
    schema: Type.Object({ roomId: RoomId, userId: UserId }, { additionalProperties: false }),
    ack: Empty,
    handler: async (ctx, data) => { await rooms.removeMember(actorOf(ctx), data.roomId, data.userId) },
  })

  gateway.on('room.member.role', {
    summary: 'Sets a member\'s role (below your own; ADMIN and OWNER by the OWNER, OWNER hands over).',
    schema: Type.Object({ roomId: RoomId, userId: UserId, role: RoleSchema }, { additionalProperties: false }),
    ack: Type.Object({ member: MemberSchema }),
    handler: async (ctx, data) => ({ member: await rooms.setRole(actorOf(ctx), data.roomId, data.userId, data.role) }),
  })

  const Seq = Type.Integer({ minimum: 1, description: 'the room\'s seq this event took' })
  gateway.declarePush('room.added', {
    summary: 'To every socket of a user who gained a room (created, invited, joined on another socket, DM opened).',
    schema: Type.Object({ room: RoomSummarySchema }),
  })
  gateway.declarePush('room.removed', {
    summary: 'To every socket of a user who lost a room (left, kicked, room deleted).',
    schema: Type.Object({ roomId: Type.String(), reason: Type.Optional(Type.Literal('banned')) }),
  })
  gateway.declarePush('room.member_joined', {
    summary: 'To the room: a member joined or was added.',
    schema: Type.Object({ roomId: Type.String(), seq: Seq, user: UserRefSchema, role: RoleSchema }),
  })
  gateway.declarePush('room.member_left', {
    summary: 'To the room: a member left, or was removed by `by` (banned: true for a ban, with until and reason).',
    schema: Type.Object({
      roomId: Type.String(), seq: Seq, userId: Type.String(), by: Type.Optional(Type.String()),
      banned: Type.Optional(Type.Boolean()), until: Type.Optional(Type.Union([Type.String(), Type.Null()])), reason: Type.Optional(Type.String()),
    }),
  })
  gateway.declarePush('room.member_updated', {
    summary: 'To the room: a member\'s role changed, or they were muted or unmuted (action, by, reason; member.mutedUntil).',
    schema: Type.Object({
      roomId: Type.String(), seq: Seq, member: MemberSchema,
      by: Type.Optional(Type.String()), action: Type.Optional(Type.Union([Type.Literal('muted'), Type.Literal('unmuted')])), reason: Type.Optional(Type.String()),
    }),
  })
  gateway.declarePush('room.updated', {
    summary: 'To the room: its settings changed.',
    schema: Type.Object({ roomId: Type.String(), seq: Seq, room: RoomSchema }),
  })
}
