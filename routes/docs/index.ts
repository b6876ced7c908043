import type { FastifyInstance } from 'fastify'
import { buildAsyncApi } from '../../plugins/core/asyncapi.js'
import { suiteVersion } from '../../plugins/core/docs.js'

/**
 * GET /docs/asyncapi.json: the WebSocket protocol as AsyncAPI 3.0.0, built from the gateway's registry
 * on every request, so it lists exactly the events and pushes the running suite knows.
 */
export default async function docsRoutes (app: FastifyInstance): Promise<void> {
  if (!app.chatConfig.docs.enabled) return
  const prefix = app.prefix
  app.get('/docs/asyncapi.json', {
    schema: {
      tags: ['docs'],
      summary: 'The WebSocket protocol as an AsyncAPI 3.0.0 document',
      response: { 200: { type: 'object', additionalProperties: true, description: 'AsyncAPI 3.0.0 document' } },
    },
  }, async (request, reply) => {
    const document = buildAsyncApi({
      gateway: app.chatGateway,
      config: app.chatConfig,
      prefix,
      version: suiteVersion(),
      server: { host: request.host, secure: request.protocol === 'https' },
    })
    // Serialized here: the response schema above documents the route, it must not filter the document.
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(document))
  })
}
