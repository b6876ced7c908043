import type { FastifyInstance } from 'fastify'
import messageEvents from './events.js'

/**
 * The WebSocket events of messaging. Their REST twins (routes/messages/rest.ts) are registered in the
 * API context (routes/api) and call the same service.
 */
export default async function messagesConcern (app: FastifyInstance): Promise<void> {
  await app.register(messageEvents)
}
