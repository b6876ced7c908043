import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import fastifyWebsocket from '@fastify/websocket'
import { configPlugin, resolveConfig, type ChatConfig, type ChatOptions } from './plugins/core/config.js'
import type { DevTokenClaims } from './plugins/auth/auth.js'
import { databasePlugin } from './plugins/core/database.js'
import { brokerPlugin } from './plugins/core/broker.js'
import { hubPlugin } from './plugins/realtime/hub.js'
import { gatewayPlugin } from './plugins/realtime/gateway.js'
import { authPlugin } from './plugins/auth/auth.js'
import { sessionsPlugin } from './plugins/realtime/sessions.js'
import { usersPlugin } from './plugins/auth/users.js'
import { roomLogPlugin } from './plugins/messaging/room-log.js'
import { presenceStorePlugin } from './plugins/presence/presence-store.js'
import { roomsPlugin } from './plugins/rooms/rooms.js'
import { presencePlugin } from './plugins/presence/presence.js'
import { typingPlugin } from './plugins/typing/typing.js'
import { feedPlugin } from './plugins/feed/feed.js'
import { retentionPlugin } from './plugins/messaging/retention.js'
import { searchIndexerPlugin } from './plugins/messaging/search-indexer.js'
import presenceRoutes from './routes/presence/index.js'
import roomsRoutes from './routes/rooms/index.js'
import moderationRoutes from './routes/moderation/index.js'
import favoritesRoutes from './routes/favorites/index.js'
import { setChatErrorHandler } from './plugins/core/error-handler.js'
import { messagingPlugin } from './plugins/messaging/messaging.js'
import messagesConcern from './routes/messages/index.js'
import wsRoute from './routes/ws.js'
import healthRoutes from './routes/health/index.js'
import { metricsPlugin } from './plugins/core/metrics.js'
import { docsPlugin } from './plugins/core/docs.js'
import { chatLogSerializers, useChatLogSerializers } from './plugins/core/logging.js'
import { closeStrayUpgrades } from './plugins/realtime/stray-upgrades.js'
import metricsRoutes from './routes/metrics/index.js'
import docsRoutes from './routes/docs/index.js'
import apiRoutes from './routes/api/index.js'
import { createServerApi, type ServerApi } from './plugins/core/server-api.js'

/** What a host's own code uses: the suite's resolved options and its services, on any node. */
export interface ChatApi extends ServerApi {
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
  useChatLogSerializers(app)
  setChatErrorHandler(app)
  await app.register(configPlugin, {
    config,
    hooks: {
      authorize: raw.authorize,
      moderateMessage: raw.moderateMessage,
      verifyToken: raw.verifyToken,
      authenticate: raw.authenticate,
      resolveUser: raw.resolveUser,
      databaseClient: raw.databaseClient,
      redisClient: raw.redisClient,
    },
  })
  // OpenAPI collects routes as they are added: it comes before every route of the suite.
  await app.register(docsPlugin)
  await app.register(databasePlugin)
  await app.register(brokerPlugin, { sharded: config.redisSharded })
  await app.register(hubPlugin)
  await app.register(gatewayPlugin)
  await app.register(metricsPlugin)
  await app.register(usersPlugin)
  await app.register(authPlugin)
  await app.register(sessionsPlugin)
  await app.register(roomLogPlugin)
  // The presence store before rooms, which shows members' status from it; the presence concern (which
  // keeps the store up to date and pushes changes to rooms) after rooms.
  await app.register(presenceStorePlugin)
  await app.register(roomsPlugin)
  // The search indexer before the writers of messages, which wake it after their commits.
  if (config.concerns.messaging) await app.register(searchIndexerPlugin)
  if (config.concerns.messaging) await app.register(messagingPlugin)
  if (config.concerns.messaging) await app.register(retentionPlugin)
  if (config.concerns.presence) await app.register(presencePlugin)
  if (config.concerns.typing) await app.register(typingPlugin)
  await app.register(feedPlugin)
  await app.register(fastifyWebsocket, {
    // The sessions keep the open sockets (and close them at shutdown); ws's own set of clients would hold
    // a second entry and a 'close' listener per socket for nothing.
    options: { maxPayload: config.maxPayload, clientTracking: false },
    // After the send writer's drain (registered before): the sessions say 1001 and cut the peers that do
    // not answer, then the WebSocket server stops.
    preClose (this: FastifyInstance, done: () => void) {
      void this.chatSessions.shutdown().then(() => this.websocketServer.close(() => done()))
    },
  })
  await app.register(wsRoute)
  await app.register(healthRoutes)
  await app.register(roomsRoutes)
  await app.register(moderationRoutes)
  if (config.concerns.messaging) await app.register(messagesConcern)
  if (config.concerns.presence) await app.register(presenceRoutes)
  await app.register(favoritesRoutes)
  // Every REST route of the concerns, in one context: authenticated once, rate limited, typed.
  await app.register(apiRoutes, { prefix: config.apiPrefix })
  await app.register(metricsRoutes)
  await app.register(docsRoutes)
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
    sendSystemMessage: (...args) => server().sendSystemMessage(...args),
    sendAs: (...args) => server().sendAs(...args),
    createRoom: (...args) => server().createRoom(...args),
    updateRoom: (...args) => server().updateRoom(...args),
    history: (...args) => server().history(...args),
    addMembers: (...args) => server().addMembers(...args),
    removeMember: (...args) => server().removeMember(...args),
    presence: (...args) => server().presence(...args),
    publishToRoom: (...args) => server().publishToRoom(...args),
    publishToUser: (...args) => server().publishToUser(...args),
  }
  let serverApi: ServerApi | null = null
  const server = (): ServerApi => {
    serverApi ??= createServerApi(api.scope)
    return serverApi
  }
  host.decorate(decorator, api)
  closeStrayUpgrades(host)
  await host.register(async function chatContext (app: FastifyInstance) {
    await chatScope(app, { config, raw })
    scope = app
  }, { prefix: prefix ?? '', logSerializers: chatLogSerializers })
}, { fastify: '5.x' })

declare module 'fastify' {
  interface FastifyInstance {
    chat: ChatApi
  }
}

export default chatSuite
export { chatSuite, resolveConfig }
export type { ChatOptions, DevTokenClaims }
export type { ChatConfig, AuthorizeRequest, ModerationRequest, ModerationVerdict } from './plugins/core/config.js'
export type { ChatUser } from './plugins/realtime/connection.js'
export { CloseCodes } from './plugins/realtime/connection.js'
export { ERROR_CODES, chatError, type ErrorCode } from './plugins/core/errors.js'
export type { ChatMetrics } from './plugins/core/metrics.js'
// For hosts' loggers: every line without tokens (docs/observability.md, Logs).
export { chatLoggerOptions, redactSecrets } from './plugins/core/logging.js'

// The building blocks, for hosts that compose their own subset (each declares its dependencies, and a
// missing one fails startup with a message that names it).
export { configPlugin, databasePlugin, brokerPlugin, hubPlugin, gatewayPlugin, metricsPlugin, usersPlugin, authPlugin, sessionsPlugin }
export { roomLogPlugin, presenceStorePlugin, roomsPlugin, searchIndexerPlugin, messagingPlugin, presencePlugin, typingPlugin }
export type { ServerApi } from './plugins/core/server-api.js'

