import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import Fastify from 'fastify'
import { buildServer } from '../server.js'
import chatSuite, { chatLoggerOptions } from '../index.js'
import { settingsFromEnv } from '../plugins/core/env.js'
import { freshDatabaseUrl } from './fixtures/database.js'
import { randomPrefix, TEST_SECRET } from './fixtures/server.js'
import { sleep, within } from './fixtures/timing.js'

// Issue 20, item 6: no token in any log line, whatever the URL a client puts it in. Every line a real
// server writes (a pino destination stream of the test, at debug) is searched for the token and for its
// signature, after upgrades and requests to the suite's routes, to routes that do not exist (Fastify's
// own 404 line names the URL), with the key in any case or percent-encoded, and in an Authorization
// header of a request that fails.

/** The outcome of a WebSocket upgrade to `url`: 'open' or the HTTP status of a refused upgrade. */
async function upgrade (url: string, headers: Record<string, string> = {}): Promise<string> {
  const socket = new WebSocket(url, { headers })
  const outcome = await within(new Promise<string>((resolve) => {
    socket.once('open', () => resolve('open'))
    socket.once('unexpected-response', (_request, response) => resolve(String(response.statusCode)))
    socket.once('error', (error) => resolve(`error: ${error.message}`))
  }), 5000, `the upgrade to ${url}`)
  socket.terminate()
  return outcome
}

/** The URL forms of issue 20 item 6 and their neighbours, on a server at `base` (http://host:port). */
function urlForms (base: string, token: string): Array<{ what: string, url: string, ws: boolean }> {
  const ws = base.replace(/^http/, 'ws')
  return [
    { what: 'the socket path with ?token=', url: `${ws}/ws?token=${token}`, ws: true },
    { what: 'a trailing slash', url: `${ws}/ws/?token=${token}`, ws: true },
    { what: 'another case of the path', url: `${ws}/WS?token=${token}`, ws: true },
    { what: 'a wrong prefix', url: `${ws}/chat/ws?token=${token}`, ws: true },
    { what: 'a percent-encoded key', url: `${ws}/ws?%74oken=${token}`, ws: true },
    { what: 'an upper-case key', url: `${ws}/ws?TOKEN=${token}`, ws: true },
    { what: 'access_token after another parameter', url: `${ws}/ws?v=1&access_token=${token}`, ws: true },
    { what: 'a fragment-free REST path', url: `${base}/api/rooms?token=${token}`, ws: false },
    { what: 'a REST path that does not exist', url: `${base}/api/nothing/?Token=${token}`, ws: false },
    { what: 'a percent-encoded key on REST', url: `${base}/api/rooms?%74%6F%6B%65%6E=${token}`, ws: false },
  ]
}

async function visitAll (t: Test, base: string, token: string): Promise<void> {
  for (const form of urlForms(base, token)) {
    if (form.ws) t.comment(`${form.what}: ${await upgrade(form.url)}`)
    else t.comment(`${form.what}: ${(await fetch(form.url)).status}`)
  }
  // A bearer header on a route that does not exist and on a refused upgrade.
  t.comment(`bearer, no route: ${(await fetch(`${base}/nothing`, { headers: { authorization: `Bearer ${token}` } })).status}`)
  t.comment(`bearer, upgrade to no route: ${await upgrade(`${base.replace(/^http/, 'ws')}/nothing`, { authorization: `Bearer ${token}` })}`)
}

function checkLog (t: Test, lines: string[], token: string): void {
  const output = lines.join('')
  const signature = token.split('.')[2] as string
  t.ok(lines.length > 10, `${lines.length} lines captured`)
  t.ok(output.includes('not found'), 'Fastify\'s 404 lines are among them')
  for (const line of lines) {
    if (line.includes(signature) || line.includes(token)) t.fail(`a line carries the token: ${line.slice(0, 300)}`)
  }
  t.notOk(output.includes(signature), 'no line carries the token or its signature')
  t.match(output, /\[redacted\]/, 'the places it was are marked')
}

t.test('the standalone server: no line of its log carries the token, whatever the URL', async (t) => {
  const lines: string[] = []
  const settings = settingsFromEnv({ ...process.env, JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'debug', DATABASE_URL: await freshDatabaseUrl(t), PORT: '0' })
  settings.options.redisPrefix = randomPrefix()
  // The upgrade requests' own lines too (at the default upgradeLogLevel they are not written).
  settings.options.upgradeLogLevel = 'debug'
  const app = await buildServer(settings, { demo: false, logStream: { write: (line: string) => { lines.push(line) } } })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const token = app.chat.signToken({ sub: 'alice', name: 'Alice' })
  t.equal(await upgrade(`${base.replace(/^http/, 'ws')}/ws?%74oken=${token}`), 'open', 'a percent-encoded key authenticates (so it must be redacted too)')
  await visitAll(t, base, token)
  await sleep(100)
  checkLog(t, lines, token)
})

t.test('a host that logs with chatLoggerOptions: the same', async (t) => {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'debug', ...chatLoggerOptions, stream: { write: (line: string) => { lines.push(line) } } } })
  await app.register(chatSuite, { database: await freshDatabaseUrl(t), jwt: { secret: TEST_SECRET }, redisPrefix: randomPrefix(), upgradeLogLevel: 'debug' })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const token = app.chat.signToken({ sub: 'bob', name: 'Bob' })
  await visitAll(t, base, token)
  await sleep(100)
  checkLog(t, lines, token)
})
