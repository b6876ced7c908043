import type { TSchema } from 'typebox'
import type { EventDefinition, Gateway, PushDefinition } from '../realtime/gateway.js'
import { CloseCodes } from '../realtime/connection.js'
import { ERROR_CODES, chatError, type ErrorCode } from './errors.js'
import type { ChatConfig } from './config.js'

/**
 * The WebSocket protocol as an AsyncAPI 3.0.0 document, built from the gateway's registry: every event a
 * plugin registered (with the schema that validates its `data` and its ack), every push a plugin
 * declared, the envelope, the three ways to authenticate, the close codes and the error codes. Nothing of
 * it is written by hand per event, so an event added to the registry is in the document at once.
 *
 * AsyncAPI describes the application, here the server: a client event is an operation the server
 * `receive`s and answers (`reply`: its ack or an error), a push is one it `send`s.
 */

type JsonObject = Record<string, unknown>

export interface AsyncApiOptions {
  gateway: Gateway
  config: ChatConfig
  /** The suite's route prefix ('' when mounted at the root). */
  prefix: string
  /** The suite's version (package.json). */
  version: string
  /** Where the document was asked for: the server entry points there. */
  server?: { host: string, secure: boolean }
}

export const PROTOCOL_VERSION = '1'
const CHANNEL = 'socket'
const CHANNEL_REF = `#/channels/${CHANNEL}`
const MAX_ID_LENGTH = 64

/** What each close code means; every code the server closes with is here (see the test). */
export const CLOSE_CODE_MEANINGS: ReadonlyArray<{ code: number, name: string, meaning: string }> = [
  { code: CloseCodes.GOING_AWAY, name: 'GOING_AWAY', meaning: 'the server is shutting down: reconnect (to another node)' },
  { code: CloseCodes.UNSUPPORTED_DATA, name: 'UNSUPPORTED_DATA', meaning: 'a binary frame: only UTF-8 JSON text frames are accepted' },
  { code: CloseCodes.MESSAGE_TOO_BIG, name: 'MESSAGE_TOO_BIG', meaning: 'a frame larger than maxPayload' },
  { code: 1011, name: 'INTERNAL_ERROR', meaning: 'the session could not be started (a backing service failed): reconnect later' },
  { code: CloseCodes.TRY_AGAIN_LATER, name: 'TRY_AGAIN_LATER', meaning: 'slow consumer: the socket\'s send buffer passed maxBufferedBytes' },
  { code: CloseCodes.UNAUTHENTICATED, name: 'UNAUTHENTICATED', meaning: 'a token that is missing (auth frame without one), malformed, badly signed, not yet valid, expired, without sub; or a refresh for another sub' },
  { code: CloseCodes.AUTH_TIMEOUT, name: 'AUTH_TIMEOUT', meaning: 'no auth frame within authTimeoutMs' },
  { code: CloseCodes.TOO_MANY_CONNECTIONS, name: 'TOO_MANY_CONNECTIONS', meaning: 'the user already has maxConnectionsPerUser open sockets' },
  { code: CloseCodes.FLOODING, name: 'FLOODING', meaning: 'too many RATE_LIMITED refusals within the flood window' },
]

const FRAME_ONLY_CODES = new Set<ErrorCode>(['BAD_FRAME', 'UNKNOWN_EVENT', 'REPLY_TOO_LARGE'])

/** A plain JSON copy: TypeBox's own (non-enumerable, `~`-prefixed) keys and symbols do not survive it. */
export function plainSchema (schema: unknown): JsonObject {
  return JSON.parse(JSON.stringify(schema ?? {}), (key, value: unknown) => (key.startsWith('~') ? undefined : value)) as JsonObject
}

function takesData (schema: TSchema): boolean {
  const required = (schema as { required?: unknown }).required
  return Array.isArray(required) && required.length > 0
}

const IdSchema = { type: 'string', minLength: 1, maxLength: MAX_ID_LENGTH, description: 'chosen by the client; the reply carries it back' }

function literal (value: string): JsonObject {
  return { type: 'string', const: value }
}

const ErrorObject: JsonObject = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', enum: [...ERROR_CODES] },
    message: { type: 'string' },
    details: { description: 'for VALIDATION_FAILED: [{field, message}]; for RATE_LIMITED: {retryAfterMs}; for QUOTA_EXCEEDED: {limit, retryAfterMs?, userIds?}' },
    event: { type: 'string', description: 'the failed event, when the request had no id' },
  },
}

const SessionReady: JsonObject = {
  type: 'object',
  required: ['user', 'connectionId', 'serverTime', 'rooms', 'people', 'favorites'],
  properties: {
    user: {
      type: 'object',
      required: ['id'],
      properties: { id: { type: 'string' }, name: { type: ['string', 'null'] }, avatar: { type: ['string', 'null'] } },
    },
    connectionId: { type: 'string' },
    serverTime: { type: 'string', format: 'date-time' },
    rooms: { type: 'array', items: { type: 'object', description: 'RoomSummary' } },
    unreadTotal: { type: 'integer', description: 'unread messages over all your rooms (those beyond roomsHasMore too)' },
    roomsHasMore: { type: 'boolean', description: 'present (true) when the rooms did not all fit in maxReplyBytes: page the rest with room.list from rooms.length' },
    people: { type: 'array', items: { type: 'object', description: 'Person' } },
    favorites: { type: 'array', items: { type: 'object', description: 'Favorite' } },
  },
}

function clientMessage (name: string, definition: Pick<EventDefinition, 'schema' | 'summary'>): JsonObject {
  const required = takesData(definition.schema) ? ['event', 'data'] : ['event']
  return {
    name,
    title: name,
    ...(definition.summary !== undefined ? { summary: definition.summary } : {}),
    correlationId: { location: '$message.payload#/id' },
    payload: {
      type: 'object',
      required,
      properties: { event: literal(name), id: IdSchema, data: plainSchema(definition.schema) },
    },
  }
}

function ackMessage (name: string, ack: TSchema | undefined): JsonObject {
  return {
    name: 'ack',
    title: `${name} ack`,
    summary: `The reply to a ${name} request that carried an id.`,
    correlationId: { location: '$message.payload#/id' },
    payload: {
      type: 'object',
      required: ['event', 'id', 'data'],
      properties: {
        event: literal('ack'),
        id: IdSchema,
        data: ack === undefined ? { type: 'object', description: 'not described by the plugin' } : plainSchema(ack),
      },
    },
  }
}

function pushMessage (name: string, definition: PushDefinition): JsonObject {
  return {
    name,
    title: name,
    ...(definition.summary !== undefined ? { summary: definition.summary } : {}),
    payload: {
      type: 'object',
      required: ['event', 'data'],
      properties: { event: literal(name), data: plainSchema(definition.schema) },
    },
  }
}

function ref (path: string): JsonObject {
  return { $ref: path }
}

function description (config: ChatConfig): string {
  const closeRows = CLOSE_CODE_MEANINGS.map((entry) => `| ${entry.code} | ${entry.name} | ${entry.meaning} |`).join('\n')
  const errorRows = ERROR_CODES.map((code) => `| ${code} | ${FRAME_ONLY_CODES.has(code) ? 'frames only' : chatError(code, '').statusCode} |`).join('\n')
  return `Real-time chat over one WebSocket. Text frames only, UTF-8 JSON, one envelope per frame, at most ${config.maxPayload} bytes.

**Envelope.** Client to server: \`{"event": "<namespace.action>", "id"?: "<at most ${MAX_ID_LENGTH} chars>", "data"?: {…}}\`. A request with an
\`id\` gets exactly one reply with that \`id\`: \`{"event":"ack","id",…,"data"}\` or \`{"event":"error","id",…,"error":{code,message,details?}}\`.
A failing request without \`id\` gets \`{"event":"error","error":{…,"event"}}\`. Bad input never closes the socket: malformed JSON
is \`BAD_FRAME\`, an unknown event \`UNKNOWN_EVENT\`, a schema violation \`VALIDATION_FAILED\` with \`details\` naming the field.
Server pushes are \`{"event","data"}\`; a push that changes a room's durable state carries the room's \`seq\`.

**Authentication** (a JWT; claims \`sub\`, \`name\`, \`avatar\`, \`roles\`, \`permissions\`, \`tenant\`, \`exp\`), one of:
1. \`Authorization: Bearer <jwt>\` on the upgrade request;
2. \`?token=<jwt>\` on the URL (browsers);
3. a first frame \`{"event":"auth","data":{"token":"<jwt>"}}\` within ${config.authTimeoutMs} ms.

Until then every other event but \`ping\` is answered with \`UNAUTHENTICATED\`. Authentication is answered by \`session.ready\`. Before
the token's \`exp\` a client sends a fresh \`auth\` frame (same \`sub\`), acked with \`{exp}\` when it has an \`id\`.

**Limits.** Per socket token buckets: \`message.send\` ${config.rateLimits.send.rate}/s (burst ${config.rateLimits.send.burst}), \`typing.*\` ${config.rateLimits.typing.rate}/s, everything else
${config.rateLimits.other.rate}/s; over the limit \`RATE_LIMITED\` with \`details.retryAfterMs\`. At most ${config.maxConnectionsPerUser} sockets per user. The server pings every
${config.heartbeatMs} ms and drops a socket that missed two pongs; clients without ping frames send \`{"event":"ping"}\`.

**Close codes**

| code | name | when |
| --- | --- | --- |
${closeRows}

**Error codes** (shared with REST; the HTTP status there)

| code | HTTP status |
| --- | --- |
${errorRows}
`
}

/** The AsyncAPI 3.0.0 document of the protocol as the gateway knows it right now. */
export function buildAsyncApi (options: AsyncApiOptions): JsonObject {
  const { gateway, config } = options
  const events = gateway.registeredEvents()
  const pushes = new Map<string, PushDefinition>(gateway.declaredPushes())
  if (!pushes.has('session.ready')) {
    pushes.set('session.ready', { schema: SessionReady as unknown as TSchema, summary: 'The first frame after authentication.' })
  }

  const messages: Record<string, JsonObject> = {}
  const operations: Record<string, JsonObject> = {}
  const channelMessages: Record<string, JsonObject> = {}
  const addMessage = (key: string, message: JsonObject): JsonObject => {
    messages[key] = message
    channelMessages[key] = ref(`#/components/messages/${key}`)
    return ref(`${CHANNEL_REF}/messages/${key}`)
  }

  const errorReply = addMessage('error', {
    name: 'error',
    title: 'error',
    summary: 'The reply to a failed request (with its id), or the report of a failed request without one.',
    correlationId: { location: '$message.payload#/id' },
    payload: {
      type: 'object',
      required: ['event', 'error'],
      properties: { event: literal('error'), id: IdSchema, error: ref('#/components/schemas/Error') },
    },
  })

  const receive = (name: string, definition: Pick<EventDefinition, 'schema' | 'summary' | 'ack' | 'rateClass' | 'public'>, reply: JsonObject[]): void => {
    const request = addMessage(name, clientMessage(name, definition))
    operations[name] = {
      action: 'receive',
      channel: ref(CHANNEL_REF),
      title: name,
      ...(definition.summary !== undefined ? { summary: definition.summary } : {}),
      messages: [request],
      reply: { channel: ref(CHANNEL_REF), messages: reply },
      'x-rate-class': definition.rateClass ?? 'other',
      'x-before-authentication': definition.public === true,
    }
  }

  // ping is answered by the gateway itself, before the registry, and works before authentication.
  const pong = addMessage('pong', {
    name: 'pong',
    title: 'pong',
    summary: 'The answer to ping, with its id when it had one.',
    correlationId: { location: '$message.payload#/id' },
    payload: { type: 'object', required: ['event'], properties: { event: literal('pong'), id: IdSchema } },
  })
  if (!events.has('ping')) {
    receive('ping', { schema: { type: 'object' } as unknown as TSchema, summary: 'Application-level ping (for clients that cannot send ping frames).', public: true }, [pong])
  }

  for (const [name, definition] of [...events].sort(([a], [b]) => a.localeCompare(b))) {
    const ack = addMessage(`${name}.ack`, ackMessage(name, definition.ack))
    receive(name, definition, [ack, errorReply])
  }

  for (const [name, definition] of [...pushes].sort(([a], [b]) => a.localeCompare(b))) {
    const key = events.has(name) || name === 'pong' || name === 'error' ? `${name}.push` : name
    const push = addMessage(key, pushMessage(name, definition))
    operations[key] = {
      action: 'send',
      channel: ref(CHANNEL_REF),
      title: name,
      ...(definition.summary !== undefined ? { summary: definition.summary } : {}),
      messages: [push],
    }
  }

  const security = [ref('#/components/securitySchemes/bearerHeader'), ref('#/components/securitySchemes/queryToken')]
  const server = options.server ?? { host: 'localhost:3000', secure: false }
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Chat WebSocket protocol',
      version: PROTOCOL_VERSION,
      description: description(config),
      externalDocs: { description: 'The REST API (OpenAPI, Swagger UI)', url: `${server.secure ? 'https' : 'http'}://${server.host}${options.prefix}/docs` },
      'x-suite-version': options.version,
    },
    defaultContentType: 'application/json',
    servers: {
      chat: {
        host: server.host,
        protocol: server.secure ? 'wss' : 'ws',
        ...(options.prefix !== '' ? { pathname: options.prefix } : {}),
        description: 'This node; behind a proxy, the public host and scheme the proxy serves.',
        security,
      },
    },
    channels: {
      [CHANNEL]: {
        address: config.wsPath,
        title: 'The chat socket',
        description: 'One socket per client; every event and push below travels on it.',
        servers: [ref('#/servers/chat')],
        messages: channelMessages,
        bindings: {
          ws: {
            method: 'GET',
            query: {
              type: 'object',
              properties: { token: { type: 'string', description: 'the JWT, for clients that cannot set headers (browsers)' } },
            },
            headers: {
              type: 'object',
              properties: { Authorization: { type: 'string', pattern: '^Bearer .+$', description: 'Bearer <jwt>' } },
            },
            bindingVersion: '0.1.0',
          },
        },
      },
    },
    operations,
    components: {
      messages,
      schemas: { Error: ErrorObject },
      securitySchemes: {
        bearerHeader: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Authorization: Bearer <jwt> on the upgrade request' },
        queryToken: { type: 'httpApiKey', name: 'token', in: 'query', description: '?token=<jwt> on the socket URL' },
      },
    },
    'x-auth-frame': { event: 'auth', within: `${config.authTimeoutMs} ms`, description: 'the third way: {"event":"auth","data":{"token":"<jwt>"}} as the first frame' },
    'x-close-codes': CLOSE_CODE_MEANINGS,
    'x-error-codes': ERROR_CODES.map((code) => ({ code, httpStatus: FRAME_ONLY_CODES.has(code) ? null : chatError(code, '').statusCode })),
  }
}
