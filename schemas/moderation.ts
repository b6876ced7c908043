import { Type, type Static } from 'typebox'
import { RoomId, UUID_PATTERN, UserId } from './room.js'

/** The longest timed ban or mute: a year (longer is a permanent one: leave durationSec out). */
export const MAX_MODERATION_SEC = 366 * 24 * 3600
export const MAX_REASON = 500

const Reason = Type.String({ minLength: 1, maxLength: MAX_REASON })
const DurationSec = Type.Integer({ minimum: 1, maximum: MAX_MODERATION_SEC, description: 'seconds until it ends by itself; absent: until lifted' })

/** What room.ban and room.mute take after the room and the user (the REST bodies). */
export const BanBody = Type.Object({ reason: Type.Optional(Reason), durationSec: Type.Optional(DurationSec) }, { additionalProperties: false })
export const MuteBody = BanBody
export type ModerationOptions = Static<typeof BanBody>

export const BanInput = Type.Object({ roomId: RoomId, userId: UserId, ...BanBody.properties }, { additionalProperties: false })
export const MuteInput = BanInput
export const RoomUserInput = Type.Object({ roomId: RoomId, userId: UserId }, { additionalProperties: false })

export const BanSchema = Type.Object({
  userId: Type.String(),
  by: Type.String({ description: 'who banned' }),
  reason: Type.Union([Type.String(), Type.Null()]),
  until: Type.Union([Type.String(), Type.Null()], { description: 'when the ban ends by itself; null: until lifted' }),
  createdAt: Type.String(),
})
export type Ban = Static<typeof BanSchema>
export const BanAck = Type.Object({ ban: BanSchema })
export const BansAck = Type.Object({ bans: Type.Array(BanSchema) })

export const ReportSchema = Type.Object({
  id: Type.String(),
  roomId: Type.String(),
  messageId: Type.String(),
  reporterId: Type.String(),
  reason: Type.String(),
  status: Type.Union([Type.Literal('open'), Type.Literal('dismissed'), Type.Literal('actioned')]),
  excerpt: Type.String({ description: 'the start of the reported message (empty once deleted)' }),
  resolvedBy: Type.Union([Type.String(), Type.Null()]),
  resolvedAt: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
})
export type Report = Static<typeof ReportSchema>
export const ReportStatusSchema = Type.Union([Type.Literal('open'), Type.Literal('dismissed'), Type.Literal('actioned')])
export const ReportBody = Type.Object({ reason: Reason }, { additionalProperties: false })
export const ReportInput = Type.Object({ messageId: Type.String({ pattern: UUID_PATTERN, maxLength: 36 }), reason: Reason }, { additionalProperties: false })
export const ReportsQuery = Type.Object({ status: Type.Optional(ReportStatusSchema) }, { additionalProperties: false })
export const ReportsInput = Type.Object({ roomId: RoomId, ...ReportsQuery.properties }, { additionalProperties: false })
export const ResolveAction = Type.Union([Type.Literal('dismiss'), Type.Literal('delete')], { description: 'dismiss: keep the message; delete: delete it (as message.delete by a moderator)' })
export const ResolveBody = Type.Object({ action: ResolveAction }, { additionalProperties: false })
export const ResolveInput = Type.Object({ reportId: Type.String({ pattern: UUID_PATTERN, maxLength: 36 }), action: ResolveAction }, { additionalProperties: false })
export const ReportAck = Type.Object({ report: ReportSchema })
export const ReportsAck = Type.Object({ reports: Type.Array(ReportSchema) })
