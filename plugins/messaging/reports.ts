import type { FastifyInstance } from 'fastify'
import { and, desc, eq, or, sql } from 'drizzle-orm'
import { messageReports, messages, type ReportStatus } from '../../db/schema/index.js'
import { stageEntry } from '../../db/queries/feed-outbox.js'
import { messageById } from '../../db/queries/message-reader.js'
import { chatError, refusals } from '../core/errors.js'
import type { ChatUser } from '../realtime/connection.js'
import { excerptOf, isoOf } from '../../schemas/message.js'
import type { Report } from '../../schemas/moderation.js'
import { ROLE_RANK } from '../rooms/permissions.js'
import { userKeyOf } from '../../lib/user-key.js'

type ReportRow = typeof messageReports.$inferSelect

function reportOf (row: ReportRow, message: { content: string, deletedAt: Date | null }): Report {
  return {
    id: row.id,
    roomId: row.roomId,
    messageId: row.messageId,
    reporterId: row.reporterId,
    reason: row.reason,
    status: row.status,
    excerpt: excerptOf(message.content, message.deletedAt !== null),
    resolvedBy: row.resolvedBy,
    resolvedAt: row.resolvedAt === null ? null : isoOf(row.resolvedAt),
    createdAt: isoOf(row.createdAt),
  }
}

export interface Reports {
  report (user: ChatUser, messageId: string, reason: string): Promise<Report>
  reports (user: ChatUser, roomId: string, status: ReportStatus): Promise<Report[]>
  resolve (user: ChatUser, reportId: string, action: 'dismiss' | 'delete'): Promise<Report>
}

/** Reports at most listed at once (the open queue of one room). */
const REPORTS_PAGE = 200

/**
 * Reports (protocol 11.3): any member reports a message to the room's moderators, who get
 * `message.reported` live (ephemeral, to MODERATOR and above only: a report names its reporter, which
 * the room should not see) and list and resolve them. A report goes to the event feed as
 * `message.reported`. `deleteMessage` is messaging's own delete, so resolving with "delete" is the
 * same path (and room event) as message.delete by a moderator.
 */
export function createReports (app: FastifyInstance, deleteMessage: (user: ChatUser, messageId: string) => Promise<unknown>): Reports {
  const db = app.chatDb
  const rooms = (): FastifyInstance['chatRooms'] => app.chatRooms

  /** The moderators of the room this node's cache knows (members of MODERATOR and above), told at once. */
  async function tellModerators (roomId: string, tenant: string, report: Report): Promise<void> {
    const entry = await rooms().cache.room(roomId)
    if (entry === null) return
    const frame = JSON.stringify({ event: 'message.reported', data: { roomId, report } })
    const moderators = [...entry.members].filter(([, role]) => ROLE_RANK[role] >= ROLE_RANK.MODERATOR).map(([id]) => id)
    await app.chatHub.publishUsers(moderators.map((id) => userKeyOf({ id, tenant })), frame)
      .catch((error: unknown) => app.log.warn({ err: error, roomId }, 'reports: telling the moderators failed after the commit'))
  }

  async function moderatorOf (user: ChatUser, roomId: string): Promise<void> {
    const role = await rooms().actingRole(user, roomId, 'room.reports')
    if (role === null) throw refusals.roomNotFound()
    if (!rooms().can(role, 'room.reports')) throw chatError('FORBIDDEN', 'reports are for MODERATOR and above')
  }

  return {
    async report (user, messageId, reason) {
      const message = await messageById(db, messageId)
      if (message === null) throw refusals.messageNotFound()
      const { room, role } = await rooms().requireMember(message.roomId, user)
      if (!rooms().can(role, 'message.report')) throw chatError('FORBIDDEN', 'your role may not report here')
      if (message.deletedAt !== null) throw refusals.messageDeleted()
      await rooms().authorize(user, 'message.report', message.roomId, { messageId, reason })
      const row = await db.transaction(async (tx) => {
        // Reporting again replaces the reason and reopens it: one report per reporter and message.
        const [written] = await tx.insert(messageReports).values({ roomId: message.roomId, messageId, reporterId: user.id, reason })
          .onConflictDoUpdate({ target: [messageReports.messageId, messageReports.reporterId], set: { reason, status: 'open', resolvedBy: null, resolvedAt: null, createdAt: sql`now()` } })
          .returning()
        const report = written as ReportRow
        if (app.chatConfig.feed !== false) {
          await stageEntry(tx, { type: 'message.reported', tenant: room.tenant, roomId: message.roomId, actorId: user.id, data: { reportId: report.id, messageId, reason } })
        }
        return report
      })
      const report = reportOf(row, message)
      await tellModerators(message.roomId, room.tenant, report)
      return report
    },

    async reports (user, roomId, status) {
      await moderatorOf(user, roomId)
      await rooms().authorize(user, 'room.reports', roomId, { status })
      const found = await db.select({ report: messageReports, content: messages.content, deletedAt: messages.deletedAt }).from(messageReports)
        .innerJoin(messages, eq(messages.id, messageReports.messageId))
        .where(and(eq(messageReports.roomId, roomId), eq(messageReports.status, status)))
        .orderBy(desc(messageReports.createdAt)).limit(REPORTS_PAGE)
      return found.map((row) => reportOf(row.report, row))
    },

    async resolve (user, reportId, action) {
      const [found] = await db.select().from(messageReports).where(eq(messageReports.id, reportId))
      if (found === undefined) throw chatError('NOT_FOUND', 'report not found')
      // A report of another tenant's room, or of a room the caller cannot moderate, does not exist for them.
      await moderatorOf(user, found.roomId).catch((error: unknown) => {
        throw (error as { code?: string }).code === 'FORBIDDEN' ? error : chatError('NOT_FOUND', 'report not found')
      })
      await rooms().authorize(user, 'room.report.resolve', found.roomId, { reportId, action })
      if (action === 'delete') await deleteMessage(user, found.messageId)
      // A deleted message settles every open report of it, not only this one.
      const which = action === 'delete'
        ? or(eq(messageReports.id, reportId), and(eq(messageReports.messageId, found.messageId), eq(messageReports.status, 'open')))
        : eq(messageReports.id, reportId)
      const updated = await db.update(messageReports)
        .set({ status: action === 'delete' ? 'actioned' : 'dismissed', resolvedBy: user.id, resolvedAt: sql`now()` })
        .where(which).returning()
      const row = updated.find((one) => one.id === reportId)
      const message = await messageById(db, found.messageId)
      return reportOf(row as ReportRow, message ?? { content: '', deletedAt: new Date() })
    },
  }
}
