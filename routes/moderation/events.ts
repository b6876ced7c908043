import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { actorOf } from '../rooms/events.js'
import { BanAck, BanInput, BansAck, MuteInput, ReportAck, ReportInput, ReportsAck, ReportSchema, ReportsInput, ResolveInput, RoomUserInput } from '../../schemas/moderation.js'
import { MessageIdInput } from '../../schemas/messaging.js'
import { MemberSchema, RoomId, SupportQueueAck, SupportQueueQuery } from '../../schemas/room.js'

const MemberAck = Type.Object({ member: MemberSchema })

/** Moderation's WebSocket events and pushes (protocol 11.3); each calls the same service as its REST twin. */
export function registerModerationEvents (app: FastifyInstance): void {
  const gateway = app.chatGateway
  const rooms = app.chatRooms

  gateway.on('room.ban', {
    summary: 'Bans a user from the room (MODERATOR over MEMBERs, ADMIN over lower roles): a member is removed; no join or add until it ends (durationSec) or is lifted.',
    schema: BanInput,
    ack: BanAck,
    handler: async (ctx, data) => {
      const { roomId, userId, ...options } = data
      return { ban: await rooms.ban(actorOf(ctx), roomId, userId, options) }
    },
  })

  gateway.on('room.unban', {
    summary: 'Lifts a ban (as room.ban).',
    schema: RoomUserInput,
    ack: Type.Object({}),
    handler: async (ctx, data) => { await rooms.unban(actorOf(ctx), data.roomId, data.userId) },
  })

  gateway.on('room.bans', {
    summary: 'The bans in force in the room, newest first (MODERATOR and above).',
    schema: Type.Object({ roomId: RoomId }, { additionalProperties: false }),
    ack: BansAck,
    handler: async (ctx, data) => ({ bans: await rooms.bans(actorOf(ctx), data.roomId) }),
  })

  gateway.on('room.mute', {
    summary: 'Mutes a member of a lower role: they read, but cannot send, react or type (MUTED) until it ends (durationSec) or room.unmute.',
    schema: MuteInput,
    ack: MemberAck,
    handler: async (ctx, data) => {
      const { roomId, userId, ...options } = data
      return { member: await rooms.mute(actorOf(ctx), roomId, userId, options) }
    },
  })

  gateway.on('room.unmute', {
    summary: 'Ends a member\'s mute (as room.mute).',
    schema: RoomUserInput,
    ack: MemberAck,
    handler: async (ctx, data) => ({ member: await rooms.unmute(actorOf(ctx), data.roomId, data.userId) }),
  })

  gateway.on('support.queue', {
    summary: 'The tenant\'s open SUPPORT rooms, oldest first, for holders of chats:support (who join them as MODERATOR): offset, limit; hasMore, nextOffset.',
    schema: Type.Object(SupportQueueQuery, { additionalProperties: false }),
    ack: SupportQueueAck,
    handler: async (ctx, data) => await rooms.supportQueue(ctx.user, data),
  })

  if (app.chatConfig.concerns.messaging) registerReportAndPinEvents(app)

  const Seq = Type.Integer({ minimum: 1, description: 'the room\'s seq this event took' })
  const BanDetail = {
    by: Type.String(),
    until: Type.Union([Type.String(), Type.Null()], { description: 'when the ban ends by itself; null: until lifted' }),
    reason: Type.Optional(Type.String()),
  }
  gateway.declarePush('room.member_banned', {
    summary: 'To the room: a user who was not a member was banned (a member\'s ban is room.member_left with banned: true).',
    schema: Type.Object({ roomId: Type.String(), seq: Seq, userId: Type.String(), ...BanDetail }),
  })
  gateway.declarePush('room.ban_lifted', {
    summary: 'To the room: a ban was lifted.',
    schema: Type.Object({ roomId: Type.String(), seq: Seq, userId: Type.String(), by: Type.String() }),
  })
}

/** Reports and pins: messaging's part of moderation (plugins/messaging/reports.ts, pins.ts). */
function registerReportAndPinEvents (app: FastifyInstance): void {
  const gateway = app.chatGateway
  const messaging = app.chatMessaging
  const PinAck = Type.Object({ roomId: Type.Optional(Type.String()), seq: Type.Optional(Type.Integer()) })

  gateway.on('message.report', {
    summary: 'Reports a message to the room\'s moderators (any member; reporting again replaces the reason).',
    schema: ReportInput,
    ack: ReportAck,
    handler: async (ctx, data) => ({ report: await messaging.report(ctx.user, data.messageId, data.reason) }),
  })
  gateway.on('room.reports', {
    summary: 'The room\'s reports of one status (open by default), newest first (MODERATOR and above).',
    schema: ReportsInput,
    ack: ReportsAck,
    handler: async (ctx, data) => ({ reports: await messaging.reports(ctx.user, data.roomId, data.status ?? 'open') }),
  })
  gateway.on('room.report.resolve', {
    summary: 'Resolves a report: dismiss, or delete the message (every open report of it is then actioned).',
    schema: ResolveInput,
    ack: ReportAck,
    handler: async (ctx, data) => ({ report: await messaging.resolveReport(ctx.user, data.reportId, data.action) }),
  })
  gateway.on('message.pin', {
    summary: 'Pins a message (MODERATOR and above; any member in a DIRECT room): room.updated with pinnedMessageIds.',
    schema: MessageIdInput,
    ack: PinAck,
    handler: async (ctx, data) => await messaging.pin(ctx.user, data.messageId, true, ctx.connection),
  })
  gateway.on('message.unpin', {
    summary: 'Unpins a message (as message.pin).',
    schema: MessageIdInput,
    ack: PinAck,
    handler: async (ctx, data) => await messaging.pin(ctx.user, data.messageId, false, ctx.connection),
  })
  gateway.declarePush('message.reported', {
    summary: 'To the room\'s MODERATORs and above: a message was reported (ephemeral: no seq).',
    schema: Type.Object({ roomId: Type.String(), report: ReportSchema }),
  })
}
