import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { EditReply, Emoji, HistoryReply, MessageReply, ReactionsReply, ReadReply, Seq, SendInput, Uuid } from '../../schemas/messaging.js'
import type { ChatUser } from '../../plugins/realtime/connection.js'

const security = [{ bearerAuth: [] }]
const tags = ['messages']
const RoomParams = Type.Object({ roomId: Uuid })
const MessageParams = Type.Object({ messageId: Uuid })
const { roomId: _roomId, ...sendFields } = SendInput.properties
const SendBody = Type.Object(sendFields, { additionalProperties: false })

function userOf (request: FastifyRequest): ChatUser {
  return request.chatUser as ChatUser
}

/** The REST surface of messaging (protocol section 9). A REST send reaches every socket, the sender's too. */
export default async function messageRoutes (app: FastifyInstance): Promise<void> {
  const messaging = app.chatMessaging
  app.addHook('preHandler', app.chatAuthenticate)

  app.get('/rooms/:roomId/messages', {
    schema: {
      tags, security, summary: 'A history page, ascending by seq',
      params: RoomParams,
      querystring: Type.Object({ before: Type.Optional(Seq), after: Type.Optional(Seq), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })) }),
      response: { 200: HistoryReply },
    },
  }, async (request) => {
    const { roomId } = request.params as { roomId: string }
    return await messaging.history(userOf(request), roomId, request.query as { before?: number, after?: number, limit?: number })
  })

  app.post('/rooms/:roomId/messages', {
    schema: { tags, security, summary: 'Send a message', params: RoomParams, body: SendBody, response: { 201: MessageReply, 200: MessageReply } },
  }, async (request, reply) => {
    const { roomId } = request.params as { roomId: string }
    const result = await messaging.send(userOf(request), { ...(request.body as Omit<SendInput, 'roomId'>), roomId })
    return reply.code(result.duplicate ? 200 : 201).send({ message: result.message })
  })

  app.patch('/messages/:messageId', {
    schema: { tags, security, summary: 'Edit a message (sender only)', params: MessageParams, body: Type.Object({ content: Type.String({ maxLength: 100000 }) }, { additionalProperties: false }), response: { 200: EditReply } },
  }, async (request) => {
    const { messageId } = request.params as { messageId: string }
    return await messaging.edit(userOf(request), messageId, (request.body as { content: string }).content)
  })

  app.delete('/messages/:messageId', {
    schema: { tags, security, summary: 'Delete a message', params: MessageParams, response: { 204: Type.Null() } },
  }, async (request, reply) => {
    const { messageId } = request.params as { messageId: string }
    await messaging.remove(userOf(request), messageId)
    return reply.code(204).send()
  })

  app.post('/messages/:messageId/reactions', {
    schema: { tags, security, summary: 'Add a reaction', params: MessageParams, body: Type.Object({ emoji: Emoji }, { additionalProperties: false }), response: { 200: ReactionsReply } },
  }, async (request) => {
    const { messageId } = request.params as { messageId: string }
    return await messaging.react(userOf(request), messageId, (request.body as { emoji: string }).emoji, true)
  })

  app.delete('/messages/:messageId/reactions/:emoji', {
    schema: { tags, security, summary: 'Remove a reaction', params: Type.Object({ messageId: Uuid, emoji: Emoji }), response: { 200: ReactionsReply } },
  }, async (request) => {
    const { messageId, emoji } = request.params as { messageId: string, emoji: string }
    return await messaging.react(userOf(request), messageId, emoji, false)
  })

  app.post('/rooms/:roomId/read', {
    schema: { tags, security, summary: 'Mark read up to seq', params: RoomParams, body: Type.Object({ seq: Seq }, { additionalProperties: false }), response: { 200: ReadReply } },
  }, async (request) => {
    const { roomId } = request.params as { roomId: string }
    return await messaging.markRead(userOf(request), roomId, (request.body as { seq: number }).seq)
  })
}
