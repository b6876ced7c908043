import type { FastifyInstance, FastifyRequest } from 'fastify'
import type {} from '@fastify/websocket'
import type { WebSocket } from 'ws'
import { originCheck } from '../plugins/realtime/origin.js'

/**
 * The one upgrade route. It checks the browser's Origin (403 before the upgrade) and hands the socket
 * over: its whole life (authentication, session.ready, frames, heartbeats, expiry, close and shutdown)
 * is the sessions plugin's (plugins/realtime/sessions.ts).
 */
export default async function wsRoute (app: FastifyInstance): Promise<void> {
  const { chatSessions: sessions, chatConfig: config } = app
  app.get(config.wsPath, { websocket: true, onRequest: originCheck(config.allowedOrigins) }, (socket: WebSocket, request: FastifyRequest) => {
    sessions.accept(socket, request)
  })
}
