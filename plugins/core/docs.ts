import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifySchema } from 'fastify'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import { ErrorReply } from '../../schemas/error.js'

/**
 * The OpenAPI document of the suite's REST routes (@fastify/swagger, generated from the routes' schemas)
 * and Swagger UI at /docs, the document at /docs/json. Registered in the suite's own context before any
 * route: @fastify/swagger collects routes with an onRoute hook, so it sees the suite's routes (and no
 * host route). The AsyncAPI document of the WebSocket protocol is served by routes/docs.
 *
 * Every route under the API prefix is documented with the bearer scheme and the error reply; routes
 * outside it (health, metrics, documents) need no token. A route's own `tags`, `security` and response
 * codes win over these defaults.
 */

const TAG_DESCRIPTIONS: Record<string, string> = {
  rooms: 'Rooms and their members; direct rooms',
  messages: 'History, send, edit, delete, reactions, read marks',
  presence: 'Who is online',
  favorites: 'The caller\'s favorite rooms and people',
  service: 'The service API: other services (a token with chats:service) drive their tenant\'s rooms',
  health: 'Liveness and readiness',
  observability: 'Prometheus metrics',
  docs: 'These documents and the AsyncAPI document of the WebSocket protocol',
}

let cachedVersion: string | undefined

/** The suite's version from its package.json (sources run from the root, the build from dist/). */
export function suiteVersion (): string {
  if (cachedVersion !== undefined) return cachedVersion
  for (const candidate of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'fastify-chat-suite' && typeof pkg.version === 'string') return (cachedVersion = pkg.version)
    } catch {
      // not this one
    }
  }
  return (cachedVersion = '0.0.0')
}

function tagOf (url: string, apiRoot: string, prefix: string): string {
  if (url === apiRoot || url.startsWith(`${apiRoot}/`)) {
    const segments = url.slice(apiRoot.length).split('/').filter((segment) => segment !== '')
    const first = segments[0] ?? 'api'
    if (first === 'direct') return 'rooms'
    if (first === 'me') return segments[1] ?? 'me'
    return first
  }
  const local = url.slice(prefix.length)
  if (local === '/health' || local === '/ready') return 'health'
  if (local.startsWith('/metrics')) return 'observability'
  if (local.startsWith('/docs')) return 'docs'
  return 'other'
}

function hasInput (schema: FastifySchema): boolean {
  return schema.body !== undefined || schema.querystring !== undefined || schema.params !== undefined || schema.headers !== undefined
}

export const docsPlugin = fp(async function docsPlugin (app: FastifyInstance) {
  if (!app.chatConfig.docs.enabled) return
  if (app.hasDecorator('swagger')) {
    // The host runs @fastify/swagger itself: its document already lists the suite's routes (when it was
    // registered first), and a second Swagger UI would fight over its routes. Only AsyncAPI is served.
    app.log.info('chat docs: the host has @fastify/swagger; the suite serves no OpenAPI document of its own')
    return
  }
  const prefix = app.prefix
  const apiRoot = `${prefix}${app.chatConfig.apiPrefix}`

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Chat suite REST API',
        version: suiteVersion(),
        description: `REST surface of the chat suite. Every route under \`${apiRoot}\` needs \`Authorization: Bearer <jwt>\`. ` +
          `Errors are \`{statusCode, code, error, message}\` with the protocol's codes. The WebSocket protocol is described by ` +
          `the AsyncAPI document at \`${prefix}/docs/asyncapi.json\`.`,
      },
      tags: Object.entries(TAG_DESCRIPTIONS).map(([name, description]) => ({ name, description })),
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
    },
    transform ({ schema, url }) {
      const source: FastifySchema = schema ?? {}
      const isApi = url === apiRoot || url.startsWith(`${apiRoot}/`)
      const out: FastifySchema & Record<string, unknown> = { ...source }
      if (out.tags === undefined) out.tags = [tagOf(url, apiRoot, prefix)]
      if (out.security === undefined) out.security = isApi ? [{ bearerAuth: [] }] : []
      if (isApi) {
        const response: Record<string, unknown> = { ...(source.response as Record<string, unknown> | undefined) }
        const error = (description: string): Record<string, unknown> => ({ ...ErrorReply, description })
        if (hasInput(source) && response['400'] === undefined) response['400'] = error('VALIDATION_FAILED: a field does not match the schema')
        if (response['401'] === undefined) response['401'] = error('UNAUTHENTICATED: the bearer token is missing or invalid')
        if (response['4xx'] === undefined) response['4xx'] = error('FORBIDDEN, NOT_MEMBER, NOT_FOUND, CONFLICT, ROOM_FULL, PAYLOAD_TOO_LARGE, RATE_LIMITED, ...')
        if (response['5xx'] === undefined) response['5xx'] = error('UNAVAILABLE (database or broker down) or INTERNAL')
        out.response = response
      }
      return { schema: out, url }
    },
  })
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' })
}, { name: 'chat-docs', fastify: '5.x', dependencies: ['chat-config'] })
