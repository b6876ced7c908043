import type { FastifyInstance } from 'fastify'
import { searchMessages, type SearchKey } from '../../db/queries/message-search.js'
import { hydrate } from '../../db/queries/message-reader.js'
import { UUID_RE, decodeCursor, encodeCursor } from '../../lib/page-cursor.js'
import { ENVELOPE_RESERVE, ReplyBudget } from '../../lib/reply-budget.js'
import { SEARCH_CURSOR_MAX, SEARCH_LIMIT, SEARCH_LIMIT_MAX, type SearchPage, type SearchRequest } from '../../schemas/messaging.js'
import { chatError, refusals } from '../core/errors.js'
import type { ChatUser } from '../realtime/connection.js'

/** The answer around its messages, with the longest cursor. */
const SEARCH_FRAME_BYTES = '{"messages":[],"nextCursor":""}'.length + SEARCH_CURSOR_MAX
const RANK_RE = /^-?[0-9.e+-]{1,32}$/i
const AT_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/

function decodeSearchCursor (text: string): SearchKey {
  const [rank, at, id] = decodeCursor(text, [RANK_RE, AT_RE, UUID_RE], 'message.search') as [string, string, string]
  if (!Number.isFinite(Number(rank))) throw chatError('VALIDATION_FAILED', 'cursor: not a cursor of message.search', [{ field: 'cursor', message: 'invalid cursor' }])
  return { rank, at, id }
}

export type Search = (user: ChatUser, request: SearchRequest) => Promise<SearchPage>

/**
 * Message search (protocol 11.6): full-text search over the messages of the caller's rooms, or of one
 * room they are a member of. A page is `limit` hits (default 20, at most 50) cut to fit maxReplyBytes; its
 * cursor is the last listed hit's sort key, so the next page starts right after it at any depth.
 */
export function createSearch (app: FastifyInstance): Search {
  const db = app.chatDb
  return async function search (user, request) {
    const words = request.query.trim()
    if (words === '') throw chatError('VALIDATION_FAILED', 'query: must not be empty', [{ field: 'query', message: 'must not be empty' }])
    // Another tenant's room is NOT_FOUND and a room one is not in NOT_MEMBER, as everywhere.
    if (request.roomId !== undefined) await app.chatRooms.requireMember(request.roomId, user)
    const after = request.cursor === undefined ? null : decodeSearchCursor(request.cursor)
    const limit = Math.min(request.limit ?? SEARCH_LIMIT, SEARCH_LIMIT_MAX)
    const hits = await searchMessages(db, user, words, { roomId: request.roomId, after, limit: limit + 1 })
    const listed = hits.slice(0, limit)
    const found = listed.flatMap((hit) => hit.row === null ? [] : [hit.row])
    const messages = await hydrate(db, found)
    // Hits are kept in order while they fit; the cursor is the last hit looked at (a hit that went
    // between the statements is passed over, not listed, and the next page starts after it).
    const budget = new ReplyBudget(app.chatConfig.maxReplyBytes, ENVELOPE_RESERVE + SEARCH_FRAME_BYTES)
    const byId = new Map(messages.map((message) => [message.id, message]))
    const page: SearchPage['messages'] = []
    let last: SearchKey | null = null
    let cut = false
    for (const hit of listed) {
      const message = hit.row === null ? undefined : byId.get(hit.row.id)
      if (message !== undefined) {
        if (!budget.take(JSON.stringify(message))) {
          cut = true
          break
        }
        page.push(message)
      }
      last = hit.key
    }
    if (cut && last === null) throw refusals.replyTooLarge()
    const more = cut || hits.length > limit
    return { messages: page, nextCursor: more && last !== null ? encodeCursor([last.rank, last.at, last.id]) : null }
  }
}
