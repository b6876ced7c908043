import t from 'tap'
import Fastify, { type RouteOptions } from 'fastify'
import SwaggerParser from '@apidevtools/swagger-parser'
import { Parser, DiagnosticSeverity } from '@asyncapi/parser'
import { Type } from 'typebox'
import chatSuite from '../index.js'
import { ERROR_CODES } from '../plugins/core/errors.js'
import { plainSchema } from '../plugins/core/asyncapi.js'
import { freshDatabaseUrl } from './fixtures/database.js'
import { randomPrefix, TEST_SECRET } from './fixtures/server.js'

// A host with a route of its own and an onRoute hook registered before the suite: it sees every route
// the suite adds, whoever adds it, so the comparison below stays true as concerns add routes.
const PREFIX = '/chat'
const routes: RouteOptions[] = []
const app = Fastify({ logger: false })
app.addHook('onRoute', (route) => { routes.push(route) })
app.get('/host-only', async () => ({ host: true }))
await app.register(chatSuite, {
  prefix: PREFIX,
  database: await freshDatabaseUrl(t),
  jwt: { secret: TEST_SECRET },
  redisPrefix: randomPrefix(),
  ...(process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? { redis: process.env.REDIS_URL } : {}),
})
await app.ready()
t.teardown(() => app.close())
const scope = app.chat.scope
const apiRoot = `${PREFIX}${app.chat.config.apiPrefix}`

interface Operation { tags?: string[], security?: Array<Record<string, string[]>>, responses: Record<string, unknown>, summary?: string }
interface OpenApi { openapi: string, paths: Record<string, Record<string, Operation>>, components: { securitySchemes: Record<string, unknown> } }

async function openApi (): Promise<OpenApi> {
  const response = await app.inject(`${PREFIX}/docs/json`)
  if (response.statusCode !== 200) throw new Error(`GET /docs/json: ${response.statusCode}`)
  return response.json()
}

type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

async function asyncApi (): Promise<Json> {
  const response = await app.inject(`${PREFIX}/docs/asyncapi.json`)
  if (response.statusCode !== 200) throw new Error(`GET /docs/asyncapi.json: ${response.statusCode}`)
  return response.json()
}

async function asyncApiProblems (document: Json): Promise<string[]> {
  const { diagnostics } = await new Parser().parse(document as { asyncapi: string })
  return diagnostics
    .filter((diagnostic) => diagnostic.severity === DiagnosticSeverity.Error)
    .map((diagnostic) => `${diagnostic.code}: ${diagnostic.message} at ${diagnostic.path.join('/')}`)
}

function methodsOf (route: RouteOptions): string[] {
  return (Array.isArray(route.method) ? route.method : [route.method]).map((method) => method.toLowerCase())
}

function openApiPath (url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
}

t.test('the OpenAPI document passes a real validator', async (t) => {
  const document = await openApi()
  t.equal(document.openapi, '3.1.0')
  // validate() dereferences in place: hand it a copy.
  await t.resolves(SwaggerParser.validate(structuredClone(document) as never), 'swagger-parser validates it')
})

t.test('the OpenAPI document lists every REST route of the suite, and nothing else', async (t) => {
  const document = await openApi()
  const suiteRoutes = routes.filter((route) => route.url.startsWith(PREFIX))
  t.ok(suiteRoutes.length > 5, `${suiteRoutes.length} routes seen`)
  const hidden = suiteRoutes.filter((route) => (route.schema as { hide?: boolean } | undefined)?.hide === true)
  const documented = suiteRoutes.filter((route) => !hidden.includes(route))
  const expected = new Set<string>()
  for (const route of documented) {
    for (const method of methodsOf(route)) {
      if (method === 'head') continue // Fastify's automatic HEAD twins of GET routes
      expected.add(`${method} ${openApiPath(route.url)}`)
    }
  }
  const listed = new Set<string>()
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of Object.keys(item)) listed.add(`${method} ${path}`)
  }
  t.same([...listed].sort(), [...expected].sort(), 'the routes Fastify knows under the suite, exactly')
  t.ok(listed.has(`get ${PREFIX}/health`) && listed.has(`get ${PREFIX}/ready`) && listed.has(`get ${PREFIX}/metrics`))
  t.ok(listed.has(`get ${PREFIX}/docs/asyncapi.json`))
  t.notOk([...listed].some((entry) => entry.endsWith('/host-only')), 'no route of the host')

  // What is hidden is hidden on purpose: the WebSocket upgrade (AsyncAPI's) and Swagger UI's own files.
  const wsPath = `${PREFIX}${app.chat.config.wsPath}`
  t.ok(hidden.some((route) => route.url === wsPath), 'GET /ws is hidden (@fastify/websocket hides its routes)')
  t.notOk(listed.has(`get ${wsPath}`), 'and not in the document')
  t.same(hidden.filter((route) => route.url !== wsPath && !route.url.startsWith(`${PREFIX}/docs`)).map((route) => route.url), [],
    'nothing else is hidden')
})

t.test('API routes carry the bearer scheme, their errors and a tag; public routes need no token', async (t) => {
  const document = await openApi()
  t.match(document.components.securitySchemes, { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } })
  let apiOperations = 0
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      t.ok(operation.tags !== undefined && operation.tags.length > 0 && !operation.tags.includes('other'), `${method} ${path} has a concern tag`)
      if (path.startsWith(apiRoot)) {
        apiOperations += 1
        t.same(operation.security, [{ bearerAuth: [] }], `${method} ${path} needs a bearer token`)
        t.ok(operation.responses['401'] !== undefined, `${method} ${path} documents 401`)
        t.ok(operation.responses['5XX'] !== undefined || operation.responses['503'] !== undefined, `${method} ${path} documents 503`)
      } else {
        t.same(operation.security, [], `${method} ${path} needs no token`)
      }
    }
  }
  t.ok(apiOperations > 0 || !routes.some((route) => route.url.startsWith(apiRoot)), 'API routes were checked')
  const ready = document.paths[`${PREFIX}/ready`]?.get
  t.ok(ready?.responses['503'] !== undefined, '/ready documents its 503')
})

t.test('Swagger UI is served at /docs', async (t) => {
  const page = await app.inject(`${PREFIX}/docs/`)
  t.equal(page.statusCode, 200)
  t.match(page.body, /swagger-ui/i)
  t.equal((await app.inject(`${PREFIX}/docs/json`)).statusCode, 200)
})

t.test('the AsyncAPI document passes the official parser', async (t) => {
  const document = await asyncApi()
  t.equal(document.asyncapi, '3.0.0')
  t.same(await asyncApiProblems(document), [], 'no errors')
})

t.test('the AsyncAPI document lists every registered event with its schema, ack and error, and every push', async (t) => {
  const document = await asyncApi()
  const operations = document.operations as Record<string, Json>
  const messages = document.components.messages as Record<string, Json>
  const events = scope.chatGateway.registeredEvents()
  t.ok(events.has('auth'), 'auth is registered')
  for (const [name, definition] of events) {
    const operation = operations[name]
    t.equal(operation?.action, 'receive', `${name}: the server receives it`)
    t.same(operation?.messages, [{ $ref: `#/channels/socket/messages/${name}` }])
    t.same(operation?.reply?.messages, [{ $ref: `#/channels/socket/messages/${name}.ack` }, { $ref: '#/channels/socket/messages/error' }], `${name}: ack or error`)
    const payload = messages[name]?.payload
    t.same(payload?.properties?.event, { type: 'string', const: name })
    t.same(payload?.properties?.data, plainSchema(definition.schema), `${name}: the schema that validates its data`)
    if (definition.ack !== undefined) t.same(messages[`${name}.ack`]?.payload?.properties?.data, plainSchema(definition.ack), `${name}: its ack`)
  }
  for (const [name, definition] of scope.chatGateway.declaredPushes()) {
    const key = events.has(name) ? `${name}.push` : name
    t.equal(operations[key]?.action, 'send', `${name}: the server pushes it`)
    t.same(messages[key]?.payload?.properties?.data, plainSchema(definition.schema), `${name}: its schema`)
  }
  t.equal(operations.ping?.action, 'receive', 'ping (answered by the gateway itself)')
  t.equal(operations['session.ready']?.action, 'send', 'session.ready')
  t.same(messages.error?.payload?.properties?.error, { $ref: '#/components/schemas/Error' })
  t.same(document.components.schemas.Error.properties.code.enum, ERROR_CODES, 'every error code')
})

t.test('the AsyncAPI document describes the ways to authenticate and the close codes', async (t) => {
  const document = await asyncApi()
  t.match(document.components.securitySchemes, {
    bearerHeader: { type: 'http', scheme: 'bearer' },
    queryToken: { type: 'httpApiKey', in: 'query', name: 'token' },
  })
  t.same(document.servers.chat.security, [{ $ref: '#/components/securitySchemes/bearerHeader' }, { $ref: '#/components/securitySchemes/queryToken' }])
  t.match(document.servers.chat, { protocol: 'ws', pathname: PREFIX })
  t.equal(document.channels.socket.address, app.chat.config.wsPath)
  t.equal(document['x-auth-frame'].event, 'auth')
  t.equal(document.operations.auth['x-before-authentication'], true)
  const codes = (document['x-close-codes'] as Array<{ code: number }>).map((entry) => entry.code)
  for (const code of [1001, 1003, 1009, 1013, 4401, 4408, 4409, 4429]) {
    t.ok(codes.includes(code), `close code ${code}`)
    t.match(document.info.description, new RegExp(`\\| ${code} \\|`), `close code ${code} in the description`)
  }
  for (const code of ERROR_CODES) t.match(document.info.description, new RegExp(`\\| ${code} \\|`), `error code ${code} in the description`)
  t.notOk(JSON.stringify(document).includes('"~'), 'no TypeBox-internal keys')
})

t.test('an event added to the gateway is in the AsyncAPI document at once', async (t) => {
  const gateway = scope.chatGateway
  gateway.on('docs.added', {
    summary: 'added by the test',
    schema: Type.Object({ roomId: Type.String({ format: 'uuid' }), tags: Type.Optional(Type.Array(Type.String(), { maxItems: 3 })) }, { additionalProperties: false }),
    ack: Type.Object({ ok: Type.Boolean() }),
    handler: () => ({ ok: true }),
  })
  gateway.declarePush('docs.pushed', { schema: Type.Object({ roomId: Type.String(), seq: Type.Integer() }), summary: 'pushed by the test' })
  const document = await asyncApi()
  t.equal(document.operations['docs.added']?.action, 'receive')
  t.same(document.components.messages['docs.added'].payload.required, ['event', 'data'], 'data is required when its schema requires fields')
  t.same(document.components.messages['docs.added.ack'].payload.properties.data, { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' } } })
  t.equal(document.operations['docs.pushed']?.action, 'send')
  t.same(await asyncApiProblems(document), [], 'still valid')
})

t.test('a host that runs @fastify/swagger itself keeps its document; the suite adds AsyncAPI only', async (t) => {
  const { default: fastifySwagger } = await import('@fastify/swagger')
  const host = Fastify({ logger: false })
  // The suite's routes name the bearerAuth scheme: a host document must define it.
  await host.register(fastifySwagger, {
    openapi: { info: { title: 'host', version: '1' }, components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } } },
  })
  await host.register(chatSuite, { database: await freshDatabaseUrl(t), jwt: { secret: TEST_SECRET }, redisPrefix: randomPrefix() })
  await host.ready()
  t.teardown(() => host.close())
  const paths = Object.keys((host.swagger() as { paths: Record<string, unknown> }).paths)
  t.ok(paths.includes('/ready'), 'the host\'s document lists the suite\'s routes')
  t.equal((await host.inject('/docs/asyncapi.json')).statusCode, 200)
})

t.test('docs can be turned off', async (t) => {
  const host = Fastify({ logger: false })
  await host.register(chatSuite, { database: await freshDatabaseUrl(t), jwt: { secret: TEST_SECRET }, redisPrefix: randomPrefix(), docs: { enabled: false } })
  await host.ready()
  t.teardown(() => host.close())
  for (const url of ['/docs', '/docs/json', '/docs/asyncapi.json']) t.equal((await host.inject(url)).statusCode, 404, url)
  t.equal((await host.inject('/ready')).statusCode, 200, 'the rest of the suite runs')
})
