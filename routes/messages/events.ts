import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { JsonReply } from '../../plugins/realtime/gateway.js'
import {
  DeleteReply, EditInput, EditReply, HistoryInput, HistoryReply, MessageIdInput, MessageReply, MessageSchema, ReactionInput, ReactionsReply,
  ReactionSchema, ReadInput, ReadReply, SearchQuery, SearchReply, SendInput, SyncInput, SyncReply, Uuid,
} from '../../schemas/messaging.js'

/** The WebSocket events of messaging: each one a thin call into the same service REST uses. */
export default async function messageEvents (app: FastifyInstance): Promise<void> {
  const gateway = app.chatGateway
  const messaging = app.chatMessaging

  gateway.on('message.send', {
    summary: 'Sends a message; the ack comes after the commit. A repeated clientMsgId returns the original and broadcasts nothing.',
    schema: SendInput,
    ack: MessageReply,
    rateClass: 'send',
    handler: async (ctx, data) => {
      const sent = await messaging.send(ctx.user, data, { except: ctx.connection })
      // The ack embeds the message as its push serialized it: one serialization per message.
      return sent.messageJson === undefined ? { message: sent.message } : new JsonReply(`{"message":${sent.messageJson}}`)
    },
  })
  gateway.on('message.edit', {
    summary: 'Edits a message (sender only); the ack says where the edit landed in the room (roomId, seq).',
    schema: EditInput,
    ack: EditReply,
    handler: (ctx, data) => messaging.edit(ctx.user, data.messageId, data.content, ctx.connection),
  })
  gateway.on('message.delete', {
    summary: 'Deletes a message (sender, or MODERATOR and above); it keeps its seq and loses its content. The ack says where the deletion landed (roomId, seq; nothing if it was already deleted).',
    schema: MessageIdInput,
    ack: DeleteReply,
    handler: (ctx, data) => messaging.remove(ctx.user, data.messageId, ctx.connection),
  })
  gateway.on('reaction.add', {
    summary: 'Adds a reaction; when something changed, the ack says where it landed in the room (roomId, seq).',
    schema: ReactionInput,
    ack: ReactionsReply,
    handler: (ctx, data) => messaging.react(ctx.user, data.messageId, data.emoji, true, ctx.connection),
  })
  gateway.on('reaction.remove', {
    summary: 'Removes a reaction; when something changed, the ack says where it landed in the room (roomId, seq).',
    schema: ReactionInput,
    ack: ReactionsReply,
    handler: (ctx, data) => messaging.react(ctx.user, data.messageId, data.emoji, false, ctx.connection),
  })
  gateway.on('history.fetch', {
    summary: 'A page of history, ascending by seq: before, after, or the latest.',
    schema: HistoryInput,
    ack: HistoryReply,
    handler: (ctx, data) => messaging.history(ctx.user, data.roomId, data),
  })
  gateway.on('message.search', {
    summary: 'Full-text search in your rooms (or one of them: roomId): best match first, newest first among equals; deleted messages are never found. query: words, "a phrase", -without, or; cursor, limit (default 20, at most 50); nextCursor (null at the end).',
    schema: SearchQuery,
    ack: SearchReply,
    handler: async (ctx, data) => await messaging.search(ctx.user, data),
  })
  gateway.on('message.read', {
    summary: 'Moves the read mark forward (never backwards).',
    schema: ReadInput,
    ack: ReadReply,
    handler: (ctx, data) => messaging.markRead(ctx.user, data.roomId, data.seq, ctx.connection),
  })
  gateway.on('sync', {
    summary: 'Every durable event after each cursor, in order, from the database; resync:true beyond retention.',
    schema: SyncInput,
    ack: SyncReply,
    handler: (ctx, data) => messaging.sync(ctx.user, data.cursors),
  })

  const seqOf = { roomId: Type.String(), seq: Type.Integer() }
  gateway.declarePush('message.new', { summary: 'A new message in one of your rooms.', schema: Type.Object({ ...seqOf, message: MessageSchema }) })
  gateway.declarePush('message.updated', { summary: 'A message was edited.', schema: Type.Object({ ...seqOf, message: MessageSchema }) })
  gateway.declarePush('message.deleted', { summary: 'A message was deleted.', schema: Type.Object({ ...seqOf, messageId: Uuid }) })
  gateway.declarePush('reaction.updated', { summary: 'The reactions of a message changed.', schema: Type.Object({ ...seqOf, messageId: Uuid, reactions: Type.Array(ReactionSchema) }) })
  gateway.declarePush('receipt.read', { summary: 'A member read up to seq (ephemeral, no room seq).', schema: Type.Object({ roomId: Type.String(), userId: Type.String(), seq: Type.Integer() }) })
  gateway.declarePush('unread.updated', { summary: 'Your read mark moved on another socket.', schema: Type.Object({ roomId: Type.String(), lastReadSeq: Type.Integer(), unreadCount: Type.Integer(), mentionCount: Type.Integer() }) })
}
