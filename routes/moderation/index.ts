import type { FastifyInstance } from 'fastify'
import { registerModerationEvents } from './events.js'

/**
 * Moderation's WebSocket events (bans, mutes). Their REST twins (routes/moderation/rest.ts) are
 * registered in the API context (routes/api) and call the same rooms service.
 */
export default async function moderationRoutes (app: FastifyInstance): Promise<void> {
  registerModerationEvents(app)
}
