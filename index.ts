import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import fastifyWebsocket from '@fastify/websocket'
import { configPlugin, resolveConfig, type ChatConfig, type ChatOptions } from './plugins/config.js'
import type { DevTokenClaims } from './plugins/auth.js'
import { databasePlugin } from './plugins/database.js'
import { brokerPlugin } from './plugins/broker.js'
import { hubPlugin } from './plugins/hub.js'
import { gatewayPlugin } from './plugins/gateway.js'
import { authPlugin } from './plugins/auth.js'
import { sessionsPlugin } from './plugins/sessions.js'
import { usersPlugin } from './plugins/users.js'
import { roomLogPlugin } from './plugins/room-log.js'
import { setChatErrorHandler } from './plugins/error-handler.js'
import { CloseCodes } from './plugins/connection.js'
import wsRoute from './routes/ws.js'
import healthRoutes from './routes/health/index.js'

/** What a host's own code uses: the suite's resolved options and its services, on any node. */
export interface ChatApi {
  readonly config: ChatConfig
  /** The suite's encapsulation context: its decorators (chatHub, chatDb, ...) live here. */
  readonly scope: FastifyInstance
  /** Mints a token with the configured secret (development, tests); throws with a public key only. */
  signToken (claims: DevTokenClaims, expiresIn?: string | number): string
}

export interface ChatSuiteOptions extends ChatOptions {
  /** Mount point of every route of the suite (REST, WebSocket, health); '' by default. */
  prefix?: string
  /** Name of the host decorator that carries the ChatApi; 'chat' by default, another for a second suite. */
  decorator?: string
}

/** Everything of the suite, registered in an explicit order inside its own encapsulation context. */
async function chatScope (app: FastifyInstance, options: { config: ChatConfig, raw: ChatOptions }): Promise<void> {
  const { config, raw } = options
  setChatErrorHandler(app)
  await app.register(configPlugin, {
    config,
    hooks: { authorize: raw.authorize, databaseClient: raw.databaseClient, redisClient: raw.redisClient },
  })
  await app.register(databasePlugin)
  await app.register(brokerPlugin)
  await app.register(hubPlugin)
  await app.register(gatewayPlugin)
  await app.register(usersPlugin)
  await app.register(authPlugin)
  await app.register(sessionsPlugin)
  await app.register(roomLogPlugin)
  await app.register(fastifyWebsocket, {
    options: { maxPayload: config.maxPayload },
    preClose (this: FastifyInstance, done: () => void) {
      for (const client of this.websocketServer.clients) client.close(CloseCodes.GOING_AWAY, 'server shutting down')
      this.websocketServer.close(() => done())
    },
  })
  await app.register(wsRoute)
  await app.register(healthRoutes)
}

/**
 * The suite plugin. The host sees exactly one decorator (`chat` unless renamed); every hook, error
 * handler and decorator of the suite stays inside its own context. Options are validated here, once:
 * a wrong option fails the host's startup with a message that names it.
 */
const chatSuite = fp(async function chatSuite (host: FastifyInstance, options: ChatSuiteOptions) {
  const { prefix, decorator = 'chat', ...raw } = options
  const config = resolveConfig(raw)
  let scope: FastifyInstance | null = null
  const api: ChatApi = {
    config,
    get scope () {
      if (scope === null) throw new Error('chat: the suite is not loaded yet')
      return scope
    },
    signToken (claims, expiresIn) {
      return api.scope.chatAuth.sign(claims, expiresIn)
    },
  }
  host.decorate(decorator, api)
  await host.register(async function chatContext (app: FastifyInstance) {
    await chatScope(app, { config, raw })
    scope = app
  }, { prefix: prefix ?? '' })
}, { fastify: '5.x' })

declare module 'fastify' {
  interface FastifyInstance {
    chat: ChatApi
  }
}

export default chatSuite
export { chatSuite, resolveConfig }
export type { ChatOptions, DevTokenClaims }
export type { ChatConfig, AuthorizeRequest } from './plugins/config.js'
export type { ChatUser } from './plugins/connection.js'
export { CloseCodes } from './plugins/connection.js'
export { ERROR_CODES, chatError, type ErrorCode } from './plugins/errors.js'
