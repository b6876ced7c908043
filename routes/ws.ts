import type { FastifyInstance, FastifyRequest } from 'fastify'
import type {} from '@fastify/websocket'
import type { WebSocket } from 'ws'

/**
 * The one upgrade route. It only hands the socket over: its whole life (authentication, session.ready,
 * frames, heartbeats, expiry, close and shutdown) is the sessions plugin's (plugins/realtime/sessions.ts).
 */
export default async function wsRoute (app: FastifyInstance): Promise<void> {
  const { chatSessions: sessions, chatConfig: config } = app
  app.get(config.wsPath, { websocket: true }, (socket: WebSocket, request: FastifyRequest) => {
    sessions.accept(socket, request)
  })
}
