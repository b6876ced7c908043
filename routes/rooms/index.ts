import type { FastifyInstance } from 'fastify'
import { registerRoomEvents } from './events.js'

/**
 * The WebSocket events of rooms. Their REST twins (routes/rooms/rest.ts) are registered in the API
 * context (routes/api) and call the same service.
 */
export default async function roomsRoutes (app: FastifyInstance): Promise<void> {
  registerRoomEvents(app)
}
