import { Type, type Static } from 'typebox'
import { UUID_PATTERN, UserId } from './room.js'

/** Mentions one message may carry (protocol 11.6). */
export const MAX_MENTIONS = 50
import { AttachmentSchema, MessageSchema, MessageTypeSchema, ReactionSchema } from './message.js'

export const Uuid = Type.String({ pattern: UUID_PATTERN, maxLength: 36, description: 'uuid' })
export const Seq = Type.Integer({ minimum: 0, maximum: 2147483647 })
/**
 * One emoji as one grapheme (a pictograph with its variation selector, skin tone, tag sequence or ZWJ
 * joins; a flag; a keycap), or a `:shortcode:` of a host's custom emoji. Anything else would be shown
 * to every member as a reaction: words, markup, several emojis.
 */
const EMOJI_GRAPHEME = '\\p{Regional_Indicator}{2}|[#*0-9]\\uFE0F?\\u20E3|\\p{Extended_Pictographic}\\uFE0F?\\p{Emoji_Modifier}?(?:[\\u{E0020}-\\u{E007E}]+\\u{E007F})?(?:\\u200D\\p{Extended_Pictographic}\\uFE0F?\\p{Emoji_Modifier}?)*'
export const Emoji = Type.String({
  minLength: 1, maxLength: 32, pattern: `^(?::[a-z0-9_+-]{1,30}:|${EMOJI_GRAPHEME})$`,
  description: 'one emoji, or a :shortcode: (lower case letters, digits, _ + -; up to 30 between the colons)',
})
export { AttachmentSchema, MessageTypeSchema, ReactionSchema, MessageSchema, type Message } from './message.js'

export const SendInput = Type.Object({
  roomId: Uuid,
  // The length rule (1..maxMessageLength after trimming) is an option, so the service checks it.
  content: Type.String({ maxLength: 100000 }),
  type: Type.Optional(MessageTypeSchema),
  replyToId: Type.Optional(Uuid),
  attachments: Type.Optional(Type.Array(AttachmentSchema, { maxItems: 10 })),
  clientMsgId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  threadRootId: Type.Optional(Uuid),
  mentions: Type.Optional(Type.Array(UserId, {
    maxItems: MAX_MENTIONS,
    description: `users mentioned (at most ${MAX_MENTIONS}); ids that are not members of the room are dropped; ["*"] mentions everyone (MODERATOR and above)`,
  })),
}, { additionalProperties: false })
export type SendInput = Static<typeof SendInput>

export const EditInput = Type.Object({ messageId: Uuid, content: Type.String({ maxLength: 100000 }) }, { additionalProperties: false })
export const MessageIdInput = Type.Object({ messageId: Uuid }, { additionalProperties: false })
export const ReactionInput = Type.Object({ messageId: Uuid, emoji: Emoji }, { additionalProperties: false })
export const HistoryInput = Type.Object({
  roomId: Uuid,
  before: Type.Optional(Seq),
  after: Type.Optional(Seq),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  threadRootId: Type.Optional(Type.String({ pattern: UUID_PATTERN, maxLength: 36, description: 'page this thread\'s replies (without it: the main timeline, thread replies left out)' })),
}, { additionalProperties: false })
export type HistoryInput = Static<typeof HistoryInput>
export const ReadInput = Type.Object({ roomId: Uuid, seq: Seq }, { additionalProperties: false })
export const SyncInput = Type.Object({
  // At most 100 rooms, each once (the service refuses a repeated room: the schema cannot say it).
  cursors: Type.Array(Type.Object({ roomId: Uuid, seq: Seq }, { additionalProperties: false }), { maxItems: 100 }),
}, { additionalProperties: false })

export const MessageReply = Type.Object({ message: MessageSchema })
// Where a change landed in its room's log: the acting socket gets the ack instead of the push, and its
// cursor moves over this seq as over its own send's (absent when the change wrote nothing).
const eventPlace = {
  roomId: Type.String({ description: 'the room of the event the change wrote' }),
  seq: Type.Integer({ description: 'the room seq of that event (its push went to every other socket)' }),
}
const eventPlaceIfWritten = { roomId: Type.Optional(eventPlace.roomId), seq: Type.Optional(eventPlace.seq) }
export const EditReply = Type.Object({ message: MessageSchema, ...eventPlace })
export const DeleteReply = Type.Object(eventPlaceIfWritten)
export const HistoryReply = Type.Object({ messages: Type.Array(MessageSchema), hasMore: Type.Boolean() })
/** GET …/rooms/:roomId/messages: a history page (the user's and the service API's). */
export const HistoryQuery = Type.Object({ before: Type.Optional(Seq), after: Type.Optional(Seq), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })), threadRootId: HistoryInput.properties.threadRootId }, { additionalProperties: false })
export const ReactionsReply = Type.Object({ reactions: Type.Array(ReactionSchema), ...eventPlaceIfWritten })
export const ReadReply = Type.Object({ lastReadSeq: Type.Integer(), unreadCount: Type.Integer(), mentionCount: Type.Integer() })
export const PushedEvent = Type.Object({ event: Type.String(), data: Type.Record(Type.String(), Type.Unknown()) })
export const SyncRoom = Type.Object({
  roomId: Type.String(),
  events: Type.Array(PushedEvent),
  lastSeq: Type.Integer(),
  hasMore: Type.Boolean(),
  resync: Type.Optional(Type.Boolean()),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
})
export const SyncReply = Type.Object({ rooms: Type.Array(SyncRoom) })

/** message.search's default and largest `limit`, and the longest query. */
export const SEARCH_LIMIT = 20
export const SEARCH_LIMIT_MAX = 50
export const SEARCH_QUERY_MAX = 200
/** A search cursor's longest text: base64url of the last hit's rank, time and id. */
export const SEARCH_CURSOR_MAX = 256
/** message.search and GET /search (protocol 11.6). */
export const SearchQuery = Type.Object({
  query: Type.String({
    minLength: 1,
    maxLength: SEARCH_QUERY_MAX,
    description: 'words to find (web search syntax: "a phrase", -without, or); case-insensitive, whole words as written (no stemming)',
  }),
  roomId: Type.Optional(Uuid),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: SEARCH_CURSOR_MAX, description: 'the nextCursor of the previous page (opaque)' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: SEARCH_LIMIT_MAX, description: `messages in the page (default ${SEARCH_LIMIT}); fewer when they would not fit in maxReplyBytes` })),
}, { additionalProperties: false })
export type SearchRequest = Static<typeof SearchQuery>
export const SearchReply = Type.Object({
  messages: Type.Array(MessageSchema, { description: 'best match first, newest first among equals; in rooms the caller is a member of; never deleted or expired ones' }),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'the cursor of the next page; null at the end' }),
})
export type SearchPage = Static<typeof SearchReply>
