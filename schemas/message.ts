import { Type, type Static, type TLiteral, type TUnion } from 'typebox'
import { MESSAGE_TYPES } from '../db/schema/messages.js'

/** How much of a replied-to message a reply carries. */
export const EXCERPT_LENGTH = 100

/** A user as others see them: the sender of a message, a member, a person. */
export const UserRefSchema = Type.Object({
  id: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
  avatar: Type.Union([Type.String(), Type.Null()]),
})
export const MessageSenderSchema = UserRefSchema

/** A union of string literals typed as those literals (documented as anyOf consts, like a hand-written union). */
function literalUnion<const T extends readonly string[]> (values: T): TUnion<{ -readonly [K in keyof T]: TLiteral<T[K]> }> {
  return Type.Union(values.map((value) => Type.Literal(value))) as never
}

/** The message types, from the column's own list. */
export const MessageTypeSchema = literalUnion(MESSAGE_TYPES)
export type MessageType = Static<typeof MessageTypeSchema>

export const ReplyRefSchema = Type.Object({
  id: Type.String(),
  seq: Type.Integer(),
  senderId: Type.String(),
  excerpt: Type.String({ description: `the first ${EXCERPT_LENGTH} characters; empty when that message was deleted` }),
})

/** An attachment as a send must describe it (enforced) and as every reply shows it. */
export const AttachmentSchema = Type.Object({
  // http(s) only: a client renders it as a link, and javascript:, data: or file: there run or read
  // what the sender chose. A host, then anything but white space.
  url: Type.String({ minLength: 1, maxLength: 2048, pattern: '^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/?#]+[^\\s]*$', description: 'an http or https URL' }),
  name: Type.String({ minLength: 1, maxLength: 256 }),
  size: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  mimeType: Type.String({ minLength: 1, maxLength: 128 }),
}, { additionalProperties: false })
export type Attachment = Static<typeof AttachmentSchema>

export const ReactionSchema = Type.Object({
  emoji: Type.String(),
  count: Type.Integer({ minimum: 1 }),
  userIds: Type.Array(Type.String()),
})

/** The protocol's Message (section 5). Timestamps are ISO 8601 strings. */
export const MessageSchema = Type.Object({
  id: Type.String(),
  roomId: Type.String(),
  seq: Type.Integer({ minimum: 1 }),
  sender: MessageSenderSchema,
  type: MessageTypeSchema,
  content: Type.String({ description: 'empty when the message was deleted' }),
  replyTo: Type.Optional(ReplyRefSchema),
  threadRootId: Type.Optional(Type.String({ description: 'a thread reply: the top-level message it answers in its thread' })),
  thread: Type.Optional(Type.Object({
    replyCount: Type.Integer(),
    lastReplyAt: Type.String(),
    participantIds: Type.Array(Type.String(), { description: 'who replied, first reply first' }),
  }, { description: 'a thread root: its replies so far (as of the read)' })),
  attachments: Type.Array(AttachmentSchema),
  reactions: Type.Array(ReactionSchema),
  clientMsgId: Type.Optional(Type.String()),
  mentions: Type.Optional(Type.Array(Type.String(), { description: 'users mentioned (members of the room when sent), or ["*"] for everyone; absent when none' })),
  editedAt: Type.Optional(Type.String()),
  deletedAt: Type.Optional(Type.String()),
  createdAt: Type.String(),
})

export type MessageSender = Static<typeof MessageSenderSchema>
export type ReplyRef = Static<typeof ReplyRefSchema>
export type Reaction = Static<typeof ReactionSchema>

export type Message = Static<typeof MessageSchema>

/** A messages row as Drizzle or a raw query returns it; timestamps as Date or ISO string. */
export interface MessageRecord {
  id: string
  roomId: string
  seq: number
  senderId: string
  type: MessageType
  content: string
  attachments: Attachment[] | null
  clientMsgId: string | null
  /** Absent in reads that do not select it (the room log's frames embed the message as sent). */
  mentions?: string[] | null
  threadRootId?: string | null
  editedAt: Date | string | null
  deletedAt: Date | string | null
  createdAt: Date | string
}

export interface MessageExtras {
  sender?: { name: string | null, avatar: string | null } | null
  replyTo?: ReplyRef | null
  reactions?: Reaction[]
  thread?: ThreadSummary | null
}

export type ThreadSummary = NonNullable<Static<typeof MessageSchema>['thread']>

export function isoOf (value: Date | string): string {
  return typeof value === 'string' ? new Date(value).toISOString() : value.toISOString()
}

/** What a reply shows of the message it answers. */
export function excerptOf (content: string, deleted: boolean): string {
  return deleted ? '' : content.slice(0, EXCERPT_LENGTH)
}

/** Reaction rows (one per user and emoji) grouped per emoji, in the order each emoji first appeared. */
export function groupReactions (rows: Iterable<{ emoji: string, userId: string }>): Reaction[] {
  const byEmoji = new Map<string, string[]>()
  for (const row of rows) {
    const users = byEmoji.get(row.emoji)
    if (users === undefined) byEmoji.set(row.emoji, [row.userId])
    else users.push(row.userId)
  }
  return [...byEmoji].map(([emoji, userIds]) => ({ emoji, count: userIds.length, userIds }))
}

/**
 * The one mapper from a stored message to the protocol's Message. A deleted message keeps its id, seq
 * and place and loses its content, attachments and reactions.
 */
export function toMessage (record: MessageRecord, extras: MessageExtras = {}): Message {
  const deleted = record.deletedAt !== null
  const message: Message = {
    id: record.id,
    roomId: record.roomId,
    seq: record.seq,
    sender: { id: record.senderId, name: extras.sender?.name ?? null, avatar: extras.sender?.avatar ?? null },
    type: record.type,
    content: deleted ? '' : record.content,
    attachments: deleted ? [] : record.attachments ?? [],
    reactions: deleted ? [] : extras.reactions ?? [],
    createdAt: isoOf(record.createdAt),
  }
  if (extras.replyTo != null) message.replyTo = extras.replyTo
  if (record.clientMsgId !== null) message.clientMsgId = record.clientMsgId
  if (record.mentions != null && record.mentions.length > 0 && !deleted) message.mentions = record.mentions
  if (record.threadRootId != null) message.threadRootId = record.threadRootId
  if (extras.thread != null) message.thread = extras.thread
  if (record.editedAt !== null) message.editedAt = isoOf(record.editedAt)
  if (record.deletedAt !== null) message.deletedAt = isoOf(record.deletedAt)
  return message
}
