import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createVerifier } from 'fast-jwt'
import { TestClient } from './fixtures/ws-client.js'
import { spawnServer, runCli } from './fixtures/process.js'
import { freshDatabaseUrl } from './fixtures/database.js'
import { TEST_SECRET } from './fixtures/server.js'
import { settingsFromEnv } from '../plugins/core/env.js'
import { resolveConfig } from '../plugins/core/config.js'

t.test('options are validated once, with a message that names the option', async (t) => {
  t.throws(() => resolveConfig({ heartbeatMs: -1 }), /invalid option "heartbeatMs"/)
  t.throws(() => resolveConfig({ rateLimits: { send: { rate: 0 } } }), /invalid option "rateLimits.send.rate"/)
  t.throws(() => resolveConfig({ wsPath: 'no-slash' }), /invalid option "wsPath"/)
  t.throws(() => resolveConfig({ nonsense: true } as never), /unknown option "nonsense"/)
  const config = resolveConfig({})
  t.equal(config.maxPayload, 65536)
  t.equal(config.maxConnectionsPerUser, 5)
  t.equal(config.rateLimits.send.burst, 20)
})

t.test('environment: production needs a key; development generates one', async (t) => {
  t.throws(() => settingsFromEnv({ NODE_ENV: 'production' }), /JWT_SECRET or JWT_PUBLIC_KEY/)
  const dev = settingsFromEnv({})
  t.equal(dev.generatedSecret, true)
  t.equal(dev.port, 3000)
  t.equal(dev.host, '127.0.0.1')
  t.equal(dev.options.database, undefined, 'embedded PGlite by default')
  const prod = settingsFromEnv({ NODE_ENV: 'production', JWT_SECRET: 's'.repeat(32), PORT: '8080', DATABASE_URL: 'postgres://x/y', REDIS_URL: 'redis://r:6379', CHAT_OPTIONS: '{"maxMessageLength":100}' })
  t.equal(prod.generatedSecret, false)
  t.equal(prod.port, 8080)
  t.match(prod.options, { database: 'postgres://x/y', redis: 'redis://r:6379', maxMessageLength: 100, jwt: { secret: 's'.repeat(32) } })
  t.throws(() => settingsFromEnv({ PORT: 'abc' }), /PORT/)
})

t.test('the standalone server prints a working dev token, shuts down with 1001 and exits', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-life-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const database = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '' ? await freshDatabaseUrl(t) : `file:${join(dir, 'pglite')}`
  const env: Record<string, string> = { DATABASE_URL: database, JWT_SECRET: '' }
  const server = await spawnServer(t, env)
  const token = (await server.waitFor(/Bearer ([\w-]+\.[\w-]+\.[\w-]+)/))[1]
  t.ok(token, 'a dev token is printed with the wscat command')
  const { client, ready } = await TestClient.session(server.wsUrl, token as string)
  t.equal((ready.data?.user as { id: string }).id, 'alice')
  server.child.kill('SIGTERM')
  const closed = await client.closed
  t.equal(closed.code, 1001, 'sockets hear 1001 on shutdown')
  const exit = await server.exited
  t.equal(exit.code, 0, 'the process exits cleanly')

  // The same data again: migrations are already applied and the server starts as before.
  const again = await spawnServer(t, env)
  const health = await fetch(`${again.httpUrl}/ready`)
  t.equal(health.status, 200, 'starts a second time on the same data')
  again.child.kill('SIGTERM')
  t.equal((await again.exited).code, 0)
})

t.test('production refuses to start without a key', async (t) => {
  const result = await runCli(['start'], { NODE_ENV: 'production', JWT_SECRET: '', JWT_PUBLIC_KEY: '', DATABASE_URL: 'memory://' })
  t.equal(result.code, 1)
  t.match(result.stderr, /JWT_SECRET or JWT_PUBLIC_KEY/)
})

t.test('the CLI mints tokens with JWT_SECRET', async (t) => {
  const result = await runCli(['token', '--sub', 'bob', '--name', 'Bob', '--ttl', '2h', '--roles', 'admin,staff'], { JWT_SECRET: TEST_SECRET })
  t.equal(result.code, 0, result.stderr)
  const claims = createVerifier({ key: TEST_SECRET })(result.stdout.trim()) as Record<string, unknown>
  t.match(claims, { sub: 'bob', name: 'Bob', roles: ['admin', 'staff'] })
  t.ok((claims.exp as number) - (claims.iat as number) === 7200)
  const missing = await runCli(['token', '--sub', 'bob'], { JWT_SECRET: '' })
  t.equal(missing.code, 1)
  t.match(missing.stderr, /JWT_SECRET/)
})

t.test('the CLI migrates a database', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const first = await runCli(['migrate', '--database', `file:${join(dir, 'db')}`])
  t.equal(first.code, 0, first.stderr)
  t.match(first.stdout, /pglite/)
  const second = await runCli(['migrate', '--database', `file:${join(dir, 'db')}`])
  t.equal(second.code, 0, second.stderr)
  t.match(second.stdout, /0 applied/)
})
