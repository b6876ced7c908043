import type { FastifyInstance } from 'fastify'
import messageEvents from './events.js'
import messageRoutes from './rest.js'

export default async function messagesConcern (app: FastifyInstance): Promise<void> {
  await app.register(messageEvents)
  await app.register(messageRoutes, { prefix: app.chatConfig.apiPrefix })
}
