import { Type, type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import { Value } from 'typebox/value'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Sql } from 'postgres'
import type { Cluster, Redis } from 'ioredis'
import { databaseUrlProblem } from '../../db/client.js'
import { redisUrlProblem } from '../../lib/redis-connection.js'
import { FeedWebhookSchema, checkWebhooks, type FeedWebhookConfig } from '../feed/webhook-options.js'

/** The feed's RabbitMQ exchange when `feed.rabbitmq.exchange` is not given. */
export const FEED_RABBITMQ_EXCHANGE = 'chat.feed'

/** A browser origin as browsers send it (scheme, host, optional port; no path), or "*". */
const ORIGIN_PATTERN = '^(\\*|[A-Za-z][A-Za-z0-9+.-]*://[^/?#\\s]+)$'

const Bucket = (rate: number, burst: number, description?: string) => Type.Object({
  rate: Type.Number({ exclusiveMinimum: 0, default: rate, description: 'tokens per second' }),
  burst: Type.Integer({ minimum: 1, default: burst, description: 'bucket size' }),
}, { additionalProperties: false, default: {}, ...(description !== undefined ? { description } : {}) })

/** The serializable options of the suite, with their defaults. Validated once, at registration. */
export const ChatOptionsSchema = Type.Object({
  apiPrefix: Type.String({ default: '/api', pattern: '^(/[A-Za-z0-9._~-]+)*$' }),
  wsPath: Type.String({ default: '/ws', pattern: '^(/[A-Za-z0-9._~-]+)+$' }),
  upgradeLogLevel: Type.Union([
    Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'),
    Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent'),
  ], {
    default: 'warn',
    description: 'level of Fastify\'s own lines for the WebSocket upgrade request (`incoming request`): at the default they are not written, since one line per connect was 7% of a connect\'s CPU; "info" writes one per socket. The socket\'s own lines are not affected',
  }),
  database: Type.String({
    default: 'file:./data/pglite',
    description: 'postgres:// URL (postgres.js), memory:// (throwaway PGlite) or file:<dir> / an absolute or ./relative directory (PGlite); anything else is refused',
  }),
  connectTimeoutMs: Type.Integer({
    minimum: 100, default: 5000,
    description: 'at start, how long the database and Redis get to answer a first command; past it (or on a refusal) startup fails with the address and the cause',
  }),
  redis: Type.Optional(Type.String({
    pattern: '^rediss?(\\+cluster|\\+sentinel)?://',
    description: 'Redis URL; redis+cluster://host:port,host:port (seed nodes) for a Redis Cluster; redis+sentinel://host:26379,host:26379/primaryName for a primary behind Sentinel; without it one node with an in-process bus',
  })),
  redisPrefix: Type.String({ default: 'chat:', maxLength: 64, description: 'prefix of every Redis key and channel' }),
  redisSharded: Type.Boolean({
    default: false,
    description: 'sharded pub/sub (Redis 7 SPUBLISH/SSUBSCRIBE): each room\'s channel is hash-tagged ({room:<id>}) so it lives on one shard; always on with a Redis Cluster',
  }),
  nodeId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  jwt: Type.Object({
    secret: Type.Optional(Type.String({ minLength: 16 })),
    publicKey: Type.Optional(Type.String({ minLength: 32 })),
    algorithms: Type.Optional(Type.Array(Type.Union([
      Type.Literal('HS256'), Type.Literal('HS384'), Type.Literal('HS512'),
      Type.Literal('RS256'), Type.Literal('RS384'), Type.Literal('RS512'),
      Type.Literal('ES256'), Type.Literal('ES384'), Type.Literal('ES512'),
    ]), { minItems: 1 })),
    issuer: Type.Optional(Type.String()),
    audience: Type.Optional(Type.String()),
  }, { additionalProperties: false, default: {} }),
  authTimeoutMs: Type.Integer({ minimum: 100, default: 5000 }),
  heartbeatMs: Type.Integer({ minimum: 50, default: 25000 }),
  maxPayload: Type.Integer({ minimum: 1024, default: 65536 }),
  maxConnectionsPerUser: Type.Integer({ minimum: 1, default: 5 }),
  maxConnectionsPerIp: Type.Integer({ minimum: 0, default: 0, description: 'open sockets per client address on one node (IPv6 by /64), authenticated or not; 0 is no limit; over it close 4409' }),
  maxBufferedBytes: Type.Integer({ minimum: 1024, default: 1048576 }),
  maxMessageLength: Type.Integer({ minimum: 1, maximum: 100000, default: 4000 }),
  blockedWords: Type.Array(Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' }), {
    default: [], maxItems: 10000,
    description: 'words (or phrases) a send or an edit may not contain: whole words, case-insensitive, in any script, after NFKC normalization; a match is FORBIDDEN (details.reason "blocked word")',
  }),
  moderationTimeoutMs: Type.Integer({
    minimum: 10, maximum: 60000, default: 1000,
    description: 'how long the moderateMessage hook may take for one send or edit; past it (or when it throws) the send is refused with UNAVAILABLE',
  }),
  maxReplyBytes: Type.Integer({
    minimum: 65536, default: 1048576,
    description: 'the largest reply frame (an ack, an error) the server writes, in UTF-8 bytes: sync, history, member lists and joins are paged below it; anything else past it is refused with REPLY_TOO_LARGE',
  }),
  syncMaxEvents: Type.Integer({ minimum: 1, maximum: 100000, default: 1000, description: 'events in one sync ack, over all its rooms; a room cut short says hasMore: true' }),
  presenceGraceMs: Type.Integer({ minimum: 0, default: 5000 }),
  presenceFanoutMaxMembers: Type.Integer({ minimum: 0, default: 200 }),
  presenceNodeTtlMs: Type.Integer({
    minimum: 300, default: 15000,
    description: 'life of a node\'s presence liveness key in Redis, refreshed every third of it; a dead node\'s users go offline within this + a third + presenceGraceMs + presenceSweepMs',
  }),
  presenceSweepMs: Type.Integer({ minimum: 10, maximum: 60000, default: 1000, description: 'how often a node expires presence grace periods' }),
  rateLimits: Type.Object({
    send: Bucket(10, 20),
    typing: Bucket(5, 5),
    other: Bucket(30, 30),
    floodRefusals: Type.Integer({ minimum: 1, default: 100, description: 'refusals within floodWindowMs that close with 4429' }),
    floodWindowMs: Type.Integer({ minimum: 100, default: 10000 }),
    userSend: Bucket(20, 40, 'per user, shared by the user\'s sockets on a node; unless set, twice rateLimits.send'),
    maxHoldOffMs: Type.Integer({
      minimum: 0, maximum: 60000, default: 1000,
      description: 'after a refusal a socket is not read until its next token is due, at most this long; 0 never pauses reading',
    }),
  }, { additionalProperties: false, default: {} }),
  quotas: Type.Object({
    roomsPerMinute: Type.Integer({
      minimum: 1, default: 30,
      description: 'room.create and dm.open (one that creates a direct room) per user and minute, shared by the user\'s sockets and REST calls on a node',
    }),
    maxRoomsPerUser: Type.Integer({
      minimum: 1, default: 5000,
      description: 'rooms one user may be a member of, however they got there (create, join, added, dm.open); checked by the writing transaction',
    }),
  }, { additionalProperties: false, default: {} }),
  feed: Type.Union([
    Type.Literal(false),
    Type.Object({
      redisStream: Type.Union([Type.Boolean(), Type.Object({
        maxLen: Type.Integer({ minimum: 1000, default: 1000000, description: 'approximate length the stream is trimmed to (XADD MAXLEN ~)' }),
      }, { additionalProperties: false })], { default: false, description: 'relay the feed to the Redis Stream <redisPrefix>feed (needs redis)' }),
      rabbitmq: Type.Optional(Type.Object({
        url: Type.String({ pattern: '^amqps?://', description: 'amqp:// or amqps:// URL of the broker (credentials, vhost and query options as amqplib takes them)' }),
        exchange: Type.Optional(Type.String({
          pattern: '^(?!amq\\.)[A-Za-z0-9_.:-]{1,255}$', default: FEED_RABBITMQ_EXCHANGE,
          description: 'the durable topic exchange entries are published to (routing key <tenant>.<type>); amq.* names are the broker\'s',
        })),
      }, { additionalProperties: false, description: 'relay the feed to a RabbitMQ topic exchange with publisher confirms (needs the optional package amqplib)' })),
      webhooks: Type.Array(FeedWebhookSchema, { default: [], maxItems: 20, description: 'webhook sinks: signed JSON batches POSTed to each URL (docs/feed.md, Webhooks)' }),
      keepHours: Type.Number({ minimum: 0, default: 24, description: 'feed entries every sink has confirmed are deleted after this many hours' }),
      leaseMs: Type.Integer({ minimum: 500, maximum: 60000, default: 5000, description: 'the relay lease: a node that stops renewing it is replaced within this time' }),
      batchSize: Type.Integer({ minimum: 1, maximum: 10000, default: 500, description: 'entries moved and delivered per relay step' }),
    }, { additionalProperties: false }),
  ], {
    // Off until the relay that drains the outbox lands (issue 22): an outbox nobody moves only grows.
    default: false,
    description: 'the event feed for other services (protocol 11.4): with an object, every durable event is written to an outbox with its own transaction; false (the default) writes no outbox at all',
  }),
  groupCommit: Type.Object({
    maxBatch: Type.Integer({ minimum: 1, maximum: 5000, default: 256 }),
    maxWaitMs: Type.Integer({ minimum: 0, maximum: 1000, default: 2, description: 'ms a batch waits for more sends while another batch is being written; with none in flight it starts at the end of the event loop turn' }),
  }, { additionalProperties: false, default: {} }),
  retention: Type.Object({
    maxAgeDays: Type.Integer({ minimum: 0, maximum: 36500, default: 0, description: 'messages older than this many days lose their content, like a delete (0: kept for ever; a room\'s retentionDays overrides it)' }),
    sweepMs: Type.Integer({ minimum: 100, maximum: 86_400_000, default: 60_000, description: 'how often the node holding the retention lease looks for expired messages' }),
    batchSize: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000, description: 'messages erased per statement (a sweep runs statements until none is left)' }),
  }, { additionalProperties: false, default: {} }),
  searchIndexPollMs: Type.Integer({
    minimum: 100, maximum: 3_600_000, default: 5000,
    description: 'how often the search indexer looks at its queue unprompted: it runs at once after this node\'s own writes, and this poll picks up changes queued by other nodes that died first or by SQL outside the suite',
  }),
  eventRetention: Type.Integer({ minimum: 0, default: 0, description: 'room events kept per room for sync; 0 keeps all' }),
  databaseTimeoutMs: Type.Integer({
    minimum: 100, default: 5000,
    description: 'bound on database work that other work waits behind (a group-commit batch, a gap fill): past it, UNAVAILABLE, and a send batch that reaches the database later writes nothing',
  }),
  restRateLimit: Type.Union([
    Type.Literal(false),
    Type.Object({
      max: Type.Integer({ minimum: 0, default: 300, description: 'requests per window and caller (the token\'s sub, else the address); 0 turns the limit off' }),
      timeWindowMs: Type.Integer({ minimum: 1000, default: 60000 }),
    }, { additionalProperties: false }),
  ], { default: { max: 300, timeWindowMs: 60000 }, description: 'REST rate limit (@fastify/rate-limit) on the routes under apiPrefix; false turns it off' }),
  cors: Type.Union([
    Type.Literal(false),
    Type.Object({
      origins: Type.Array(Type.String({ pattern: ORIGIN_PATTERN, maxLength: 2048 }), { minItems: 1, maxItems: 100, description: 'browser origins (scheme://host[:port]) allowed to call the REST API; "*" any (not with credentials)' }),
      credentials: Type.Boolean({ default: false, description: 'Access-Control-Allow-Credentials: for a host whose authenticate hook reads cookies' }),
      maxAgeSec: Type.Integer({ minimum: 0, maximum: 86400, default: 600, description: 'how long a browser may cache a preflight' }),
    }, { additionalProperties: false }),
  ], { default: false, description: 'CORS (@fastify/cors) on the routes under apiPrefix; false (the default) sends no CORS headers, so only same-origin pages use the API from a browser' }),
  allowedOrigins: Type.Array(Type.String({ pattern: ORIGIN_PATTERN, maxLength: 2048 }), {
    default: [], maxItems: 100,
    description: 'browser origins allowed to open a WebSocket besides the server\'s own (same Host); "*" any. An upgrade without Origin (not a browser) is always allowed; another is refused with HTTP 403',
  }),
  requirePermissions: Type.Boolean({ default: false, description: 'enforce the token\'s permissions claim (chats:create, chats:read, chats:join_private, chats:moderate)' }),
  concerns: Type.Object({
    messaging: Type.Boolean({ default: true }),
    presence: Type.Boolean({ default: true }),
    typing: Type.Boolean({ default: true }),
  }, { additionalProperties: false, default: {}, description: 'optional concerns; rooms, auth and the socket core are always on' }),
  metrics: Type.Object({
    enabled: Type.Boolean({ default: true, description: 'GET /metrics and /metrics.json (Prometheus, prom-client); app.chatMetrics stays callable when off' }),
    defaultMetrics: Type.Boolean({ default: true, description: 'Node process metrics (CPU, memory, GC, event loop lag) on the suite\'s registry' }),
  }, { additionalProperties: false, default: {} }),
  docs: Type.Object({
    enabled: Type.Boolean({ default: true, description: 'Swagger UI at /docs, OpenAPI at /docs/json, AsyncAPI at /docs/asyncapi.json' }),
  }, { additionalProperties: false, default: {} }),
}, { additionalProperties: false })

export type ChatConfig = Static<typeof ChatOptionsSchema>

/** What a host's resolveUser hook knows of a user. */
export interface UserProfile {
  name?: string | null
  avatar?: string | null
}

export interface AuthorizeRequest {
  action: string
  userId: string
  roomId?: string
  data?: unknown
  /** The acting user as their token (or the host's authenticate hook) describes them. */
  user?: { id: string, roles: string[], permissions: string[], tenant: string }
}

/** What the host's moderateMessage hook is asked about: a send, or an edit (then `messageId` is set). */
export interface ModerationRequest {
  tenant: string
  userId: string
  roomId: string
  /** Trimmed, within maxMessageLength, and past blockedWords. */
  content: string
  /** The message being edited; absent for a send. */
  messageId?: string
}

/** The hook's answer: allow as sent, reject (FORBIDDEN, `details.reason` = reason), or store `content` instead. */
export interface ModerationVerdict {
  action: 'allow' | 'reject' | 'replace'
  content?: string
  reason?: string
}

/** The options a host passes: the schema's values, all optional, plus what cannot be serialized. */
export type ChatOptions = Partial<Omit<ChatConfig, 'jwt' | 'rateLimits' | 'groupCommit' | 'metrics' | 'docs' | 'restRateLimit' | 'concerns' | 'quotas' | 'cors' | 'feed' | 'retention'>> & {
  feed?: false | (Partial<Omit<Exclude<ChatConfig['feed'], false>, 'webhooks'>> & {
    webhooks?: Array<Pick<FeedWebhookConfig, 'url' | 'secret'> & Partial<FeedWebhookConfig>>
  })
  quotas?: Partial<ChatConfig['quotas']>
  retention?: Partial<ChatConfig['retention']>
  cors?: false | (Pick<Exclude<ChatConfig['cors'], false>, 'origins'> & Partial<Exclude<ChatConfig['cors'], false>>)
  concerns?: Partial<ChatConfig['concerns']>
  restRateLimit?: false | Partial<Exclude<ChatConfig['restRateLimit'], false>>
  jwt?: Partial<ChatConfig['jwt']>
  metrics?: Partial<ChatConfig['metrics']>
  docs?: Partial<ChatConfig['docs']>
  rateLimits?: Partial<{ [K in keyof ChatConfig['rateLimits']]: Partial<ChatConfig['rateLimits'][K]> }>
  groupCommit?: Partial<ChatConfig['groupCommit']>
  /** The host's postgres.js client; the suite uses it and never closes it. */
  databaseClient?: Sql
  /**
   * The host's ioredis client (for example @fastify/redis; a `Redis` with `sentinels` and `name` for a
   * primary behind Sentinel), or its ioredis `Cluster` for a Redis Cluster; the suite duplicates it for
   * subscribing (a Cluster with `shardedSubscribers`, a Sentinel client with its Sentinels) and never closes it.
   */
  redisClient?: Redis | Cluster
  /** Veto hook: return false (or throw) to refuse an action with FORBIDDEN. */
  authorize?: (request: AuthorizeRequest) => boolean | Promise<boolean>
  /**
   * Screens the content of every user's send and edit before it is written (docs/messaging.md, Content
   * screening): sync or async, bounded by moderationTimeoutMs. Not asked for the server's SYSTEM messages.
   */
  moderateMessage?: (request: ModerationRequest) => ModerationVerdict | Promise<ModerationVerdict>
  /**
   * Verifies a token with the host's own means (for example `(token) => app.jwt.verify(token)` to reuse
   * the host's @fastify/jwt); returns its claims (`sub` required) or throws. Replaces `jwt` when given.
   */
  verifyToken?: (token: string) => unknown
  /**
   * Authenticates a REST request or a WebSocket upgrade from the host's session (a cookie, say);
   * returns claims (`sub` required), or null to fall back to the token ways.
   */
  authenticate?: (request: FastifyRequest) => unknown
  /**
   * Names and avatars for users whose tokens carry only `sub`; null or undefined for a user it does not
   * know. Called with the sub and its tenant ("" by default): a user is the pair (tenant, sub).
   */
  resolveUser?: (id: string, tenant: string) => Promise<UserProfile | null | undefined> | UserProfile | null | undefined
}

const SERIALIZABLE_KEYS = new Set(Object.keys(ChatOptionsSchema.properties))
const HOOK_KEYS = new Set(['databaseClient', 'redisClient', 'authorize', 'moderateMessage', 'verifyToken', 'authenticate', 'resolveUser', 'prefix', 'decorator', 'logLevel', 'logSerializers'])
const checkOptions = Compile(ChatOptionsSchema)

/** An origin as a browser serializes it (lower case, no default port); "*" stays. */
function normalOrigin (origin: string, option: string): string {
  if (origin === '*') return origin
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    throw new Error(`chat: invalid option "${option}": "${origin}" is not an origin (scheme://host[:port])`)
  }
  if (url.origin === 'null') throw new Error(`chat: invalid option "${option}": "${origin}" has no origin of its own`)
  return url.origin
}

/** Validates the options once and fills defaults; throws an error naming the first bad option. */
export function resolveConfig (options: ChatOptions = {}): ChatConfig {
  const plain: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue
    if (SERIALIZABLE_KEYS.has(key)) plain[key] = value
    else if (!HOOK_KEYS.has(key)) {
      throw new Error(`chat: unknown option "${key}"`)
    }
  }
  // Before the schema, whose pattern error would not say which forms are accepted.
  if (typeof plain.redis === 'string') {
    const problem = redisUrlProblem(plain.redis)
    if (problem !== undefined) throw new Error(`chat: invalid option "redis": ${problem}`)
  }
  const withDefaults = Value.Default(ChatOptionsSchema, Value.Clone(plain))
  if (!checkOptions.Check(withDefaults)) {
    // The deepest error names the field: a union (cors, restRateLimit) reports each branch at its root.
    const first = [...checkOptions.Errors(withDefaults)].reduce<ReturnType<typeof checkOptions.Errors>[number] | undefined>(
      (deepest, error) => deepest === undefined || error.instancePath.length > deepest.instancePath.length ? error : deepest, undefined)
    const field = first?.instancePath.replace(/^\//, '').replaceAll('/', '.') || (first?.params as { additionalProperties?: string[] } | undefined)?.additionalProperties?.join(', ') || 'options'
    throw new Error(`chat: invalid option "${field}": ${first?.message ?? 'invalid'}`)
  }
  const config = withDefaults as ChatConfig
  // The per-user send budget follows the per-socket one unless it is set: twice its rate and burst.
  const userSend = (options.rateLimits?.userSend ?? {}) as Partial<ChatConfig['rateLimits']['userSend']>
  if (userSend.rate === undefined) config.rateLimits.userSend.rate = 2 * config.rateLimits.send.rate
  if (userSend.burst === undefined) config.rateLimits.userSend.burst = 2 * config.rateLimits.send.burst
  if (config.cors !== false) {
    config.cors.origins = config.cors.origins.map((origin) => normalOrigin(origin, 'cors.origins'))
    // A credentialed answer cannot name every origin: any site would act with the user's cookies.
    if (config.cors.credentials && config.cors.origins.includes('*')) throw new Error('chat: invalid option "cors": origins "*" with credentials would let any site use the caller\'s cookies')
  }
  if (config.feed !== false) checkWebhooks(config.feed.webhooks)
  config.allowedOrigins = config.allowedOrigins.map((origin) => normalOrigin(origin, 'allowedOrigins'))
  if (options.databaseClient === undefined) {
    const problem = databaseUrlProblem(config.database)
    if (problem !== undefined) throw new Error(`chat: invalid option "database": ${problem}`)
  }
  return config
}

export interface ChatHooks {
  authorize?: ChatOptions['authorize']
  moderateMessage?: ChatOptions['moderateMessage']
  verifyToken?: ChatOptions['verifyToken']
  authenticate?: ChatOptions['authenticate']
  resolveUser?: ChatOptions['resolveUser']
  databaseClient?: Sql
  redisClient?: Redis | Cluster
}

declare module 'fastify' {
  interface FastifyInstance {
    chatConfig: ChatConfig
    chatHooks: ChatHooks
  }
}

export interface ConfigPluginOptions {
  config: ChatConfig
  hooks: ChatHooks
}

/** Decorates the already validated config so that every concern reads the same values. */
export const configPlugin = fp(async function configPlugin (app: FastifyInstance, opts: ConfigPluginOptions) {
  app.decorate('chatConfig', opts.config)
  app.decorate('chatHooks', opts.hooks)
}, { name: 'chat-config', fastify: '5.x' })
