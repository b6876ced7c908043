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
  // Fastify's request lines for the upgrade follow upgradeLogLevel, not the app's level (docs/observability.md).
  app.get(config.wsPath, { websocket: true, logLevel: config.upgradeLogLevel, onRequest: originCheck(config.allowedOrigins) }, (socket: WebSocket, request: FastifyRequest) => {
    sessions.accept(socket, request)
  })
}
