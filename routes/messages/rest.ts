import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { callerOf } from '../../plugins/auth/request-auth.js'
import { EditReply, Emoji, HistoryQuery, HistoryReply, MessageReply, ReactionsReply, ReadReply, SearchQuery, SearchReply, Seq, SendInput, Uuid } from '../../schemas/messaging.js'

const security = [{ bearerAuth: [] }]
const tags = ['messages']
const RoomParams = Type.Object({ roomId: Uuid })
const MessageParams = Type.Object({ messageId: Uuid })
const ReactionParams = Type.Object({ messageId: Uuid, emoji: Emoji })
const { roomId: _roomId, ...sendFields } = SendInput.properties
const SendBody = Type.Object(sendFields, { additionalProperties: false })
const EditBody = Type.Object({ content: Type.String({ maxLength: 100000 }) }, { additionalProperties: false })
const ReactionBody = Type.Object({ emoji: Emoji }, { additionalProperties: false })
const ReadBody = Type.Object({ seq: Seq }, { additionalProperties: false })

/**
 * The REST surface of messaging (protocol section 9), in the API context (routes/api: authenticated,
 * rate limited). A REST send reaches every socket, the sender's too.
 */
const messagesRest: FastifyPluginAsyncTypebox = async function messagesRest (app) {
  const messaging = app.chatMessaging

  app.get('/rooms/:roomId/messages', {
    schema: { tags, security, summary: 'A history page, ascending by seq', params: RoomParams, querystring: HistoryQuery, response: { 200: HistoryReply } },
  }, async (request) => await messaging.history(callerOf(request), request.params.roomId, request.query))

  app.post('/rooms/:roomId/messages', {
    schema: { tags, security, summary: 'Send a message', params: RoomParams, body: SendBody, response: { 201: MessageReply, 200: MessageReply } },
  }, async (request, reply) => {
    const result = await messaging.send(callerOf(request), { ...request.body, roomId: request.params.roomId })
    return reply.code(result.duplicate ? 200 : 201).send({ message: result.message })
  })

  app.patch('/messages/:messageId', {
    schema: { tags, security, summary: 'Edit a message (sender only)', params: MessageParams, body: EditBody, response: { 200: EditReply } },
  }, async (request) => await messaging.edit(callerOf(request), request.params.messageId, request.body.content))

  app.delete('/messages/:messageId', {
    schema: { tags, security, summary: 'Delete a message', params: MessageParams, response: { 204: Type.Null() } },
  }, async (request, reply) => {
    await messaging.remove(callerOf(request), request.params.messageId)
    return reply.code(204).send(null)
  })

  app.post('/messages/:messageId/reactions', {
    schema: { tags, security, summary: 'Add a reaction', params: MessageParams, body: ReactionBody, response: { 200: ReactionsReply } },
  }, async (request) => await messaging.react(callerOf(request), request.params.messageId, request.body.emoji, true))

  app.delete('/messages/:messageId/reactions/:emoji', {
    schema: { tags, security, summary: 'Remove a reaction (idempotent); the room hears reaction.updated', params: ReactionParams, response: { 204: Type.Null({ description: 'no content' }) } },
  }, async (request, reply) => {
    await messaging.react(callerOf(request), request.params.messageId, request.params.emoji, false)
    return reply.code(204).send(null)
  })

  app.get('/search', {
    schema: { tags, security, summary: 'Full-text search in your rooms (or one: roomId), as message.search: query, roomId, cursor, limit (default 20, at most 50)', querystring: SearchQuery, response: { 200: SearchReply } },
  }, async (request) => await messaging.search(callerOf(request), request.query))

  app.post('/rooms/:roomId/read', {
    schema: { tags, security, summary: 'Mark read up to seq', params: RoomParams, body: ReadBody, response: { 200: ReadReply } },
  }, async (request) => await messaging.markRead(callerOf(request), request.params.roomId, request.body.seq))
}

export default messagesRest
