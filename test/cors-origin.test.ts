import t from 'tap'
import { WebSocket } from 'ws'
import { startNode, type TestNode } from './fixtures/server.js'
import { TestClient } from './fixtures/ws-client.js'
import { settingsFromEnv } from '../plugins/core/env.js'
import { resolveConfig } from '../index.js'
import { deployNginxConf, nginxSkip, startNginx } from './fixtures/nginx.js'

// Issue 20, item 7: CORS on the REST API (off unless configured) and the Origin of a WebSocket upgrade
// (a foreign browser origin refused with 403 before the upgrade, unless allowed).

const APP = 'https://app.example'
const EVIL = 'https://evil.example'

async function preflight (node: TestNode, origin: string, path = '/api/rooms', method = 'POST'): Promise<Response> {
  return await fetch(`${node.httpUrl}${path}`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' },
  })
}

/** The upgrade's outcome: 'open' (the socket opened), or the HTTP status it was refused with. */
async function upgrade (node: TestNode, headers: Record<string, string>, url = node.wsUrl): Promise<'open' | number> {
  const socket = new WebSocket(url, { headers: { authorization: `Bearer ${node.token('alice')}`, ...headers } })
  try {
    return await new Promise<'open' | number>((resolve, reject) => {
      socket.once('open', () => resolve('open'))
      socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0))
      socket.once('error', reject)
    })
  } finally {
    socket.terminate()
  }
}

t.test('CORS is off by default in the plugin: no preflight route, no Access-Control-Allow-Origin', async (t) => {
  const node = await startNode(t, { redis: null })
  t.equal(resolveConfig({}).cors, false, 'the default is false')
  const answer = await preflight(node, APP)
  t.equal(answer.headers.get('access-control-allow-origin'), null, 'no ACAO on a preflight')
  const get = await fetch(`${node.httpUrl}/api/rooms`, { headers: { origin: APP, authorization: `Bearer ${node.token('alice')}` } })
  t.equal(get.status, 200)
  t.equal(get.headers.get('access-control-allow-origin'), null, 'no ACAO on an answer')
})

t.test('CORS with origins: preflight and answers for allowed origins, nothing for others', async (t) => {
  const node = await startNode(t, { redis: null, options: { cors: { origins: [APP], maxAgeSec: 600 } } })
  const token = node.token('alice')

  const allowed = await preflight(node, APP)
  t.equal(allowed.status, 204, 'a preflight from an allowed origin is answered 204')
  t.equal(allowed.headers.get('access-control-allow-origin'), APP)
  t.match(allowed.headers.get('access-control-allow-methods') ?? '', /PATCH/, 'every method of the API is allowed')
  t.match(allowed.headers.get('access-control-allow-methods') ?? '', /DELETE/)
  t.match((allowed.headers.get('access-control-allow-headers') ?? '').toLowerCase(), /authorization/, 'the Authorization header is allowed')
  t.equal(allowed.headers.get('access-control-max-age'), '600')
  t.equal(allowed.headers.get('access-control-allow-credentials'), null, 'no credentials unless asked for')
  t.equal((await preflight(node, APP, '/api/messages/00000000-0000-4000-8000-000000000000/reactions/%F0%9F%91%8D', 'DELETE')).status, 204,
    'a preflight of any API route')

  const foreign = await preflight(node, EVIL)
  t.equal(foreign.headers.get('access-control-allow-origin'), null, 'a foreign origin gets no ACAO')

  const get = await fetch(`${node.httpUrl}/api/rooms`, { headers: { origin: APP, authorization: `Bearer ${token}` } })
  t.equal(get.status, 200)
  t.equal(get.headers.get('access-control-allow-origin'), APP, 'an answer carries ACAO for the allowed origin')
  t.match(get.headers.get('access-control-expose-headers') ?? '', /retry-after/i, 'the rate limit headers are readable')
  t.equal(get.headers.get('vary')?.toLowerCase().includes('origin'), true, 'Vary: Origin')
  const unauthenticated = await fetch(`${node.httpUrl}/api/rooms`, { headers: { origin: APP } })
  t.equal(unauthenticated.status, 401)
  t.equal(unauthenticated.headers.get('access-control-allow-origin'), APP, 'a refusal is readable by the allowed origin too')
  const evilGet = await fetch(`${node.httpUrl}/api/rooms`, { headers: { origin: EVIL, authorization: `Bearer ${token}` } })
  t.equal(evilGet.headers.get('access-control-allow-origin'), null, 'no ACAO for a foreign origin')

  const health = await fetch(`${node.httpUrl}/health`, { headers: { origin: APP } })
  t.equal(health.headers.get('access-control-allow-origin'), null, 'CORS covers the REST API only')
})

t.test('CORS with credentials', async (t) => {
  const node = await startNode(t, { redis: null, options: { cors: { origins: [APP], credentials: true } } })
  const answer = await preflight(node, APP)
  t.equal(answer.headers.get('access-control-allow-origin'), APP)
  t.equal(answer.headers.get('access-control-allow-credentials'), 'true')
  t.throws(() => resolveConfig({ cors: { origins: ['*'], credentials: true } }), /cors/, 'any origin with credentials is refused at registration')
  t.throws(() => resolveConfig({ cors: { origins: ['https://app.example/path'] } }), /cors\.origins/, 'an origin is scheme, host and port')
})

t.test('WebSocket upgrade: a foreign browser Origin is refused with 403, same-origin and no Origin connect', async (t) => {
  const node = await startNode(t, { redis: null })
  t.equal(await upgrade(node, { origin: EVIL }), 403, 'a foreign origin is refused before the upgrade')
  t.equal(await upgrade(node, { origin: 'null' }), 403, 'an opaque origin (sandboxed frame, file:) is refused')
  t.equal(await upgrade(node, {}), 'open', 'no Origin (a service, wscat) connects')
  t.equal(await upgrade(node, { origin: node.httpUrl }), 'open', 'the server\'s own origin connects')
  t.equal(await upgrade(node, { origin: APP }), 403, 'an app origin must be allowed explicitly')

  // The refused socket never reached the sessions: a session still starts normally afterwards.
  const { client } = await TestClient.session(node.wsUrl, node.token('bob'))
  client.close()
})

t.test('WebSocket upgrade: allowedOrigins admits the listed origins, "*" any', async (t) => {
  const node = await startNode(t, { redis: null, options: { allowedOrigins: [APP] } })
  t.equal(await upgrade(node, { origin: APP }), 'open', 'an allowed origin connects')
  t.equal(await upgrade(node, { origin: 'HTTPS://APP.EXAMPLE' }), 'open', 'origins compare case-insensitively')
  t.equal(await upgrade(node, { origin: EVIL }), 403, 'another is still refused')
  t.equal(await upgrade(node, { origin: node.httpUrl }), 'open', 'the server\'s own origin still connects')
  const open = await startNode(t, { redis: null, options: { allowedOrigins: ['*'] } })
  t.equal(await upgrade(open, { origin: EVIL }), 'open', '"*" turns the check off')
})

t.test('behind deploy/nginx.conf on a non-default port, a page of the proxy\'s own origin connects', { skip: nginxSkip }, async (t) => {
  const node = await startNode(t, { redis: null })
  const site = deployNginxConf()
    .replace(/^ {4}server chat-node-\d:3000[^\n]*\n/gm, '')
    .replace('    keepalive 32;', `    server ${new URL(node.httpUrl).host};\n    keepalive 32;`)
  const { front } = await startNginx(t, (port) => site.replace('listen 80;', `listen 127.0.0.1:${port};`))
  const url = `${front.replace(/^http/, 'ws')}/ws`
  t.equal(await upgrade(node, { origin: front }, url), 'open', 'the Host reaches the node with its port')
  t.equal(await upgrade(node, { origin: EVIL }, url), 403, 'a foreign origin is refused through nginx too')
})

t.test('the standalone server reads CORS_ORIGINS, CORS_CREDENTIALS and ALLOWED_ORIGINS', async (t) => {
  const settings = settingsFromEnv({ CORS_ORIGINS: `${APP}, https://admin.example`, CORS_CREDENTIALS: 'true', ALLOWED_ORIGINS: APP, JWT_SECRET: 'a-secret-that-is-long-enough' })
  t.same(settings.options.cors, { origins: [APP, 'https://admin.example'], credentials: true })
  t.same(settings.options.allowedOrigins, [APP])
  const none = settingsFromEnv({ JWT_SECRET: 'a-secret-that-is-long-enough' })
  t.equal(none.options.cors, undefined, 'unset: CORS stays off')
  t.equal(none.options.allowedOrigins, undefined)
})
