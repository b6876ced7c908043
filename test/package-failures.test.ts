import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import Fastify from 'fastify'
import postgres from 'postgres'
import chat, { configPlugin, databasePlugin, resolveConfig } from '../index.js'
import { settingsFromEnv } from '../plugins/core/env.js'
import { createScratchDatabase } from './fixtures/database.js'
import { runCli, ROOT } from './fixtures/process.js'
import { freePort } from './fixtures/redis-server.js'
import { TEST_SECRET } from './fixtures/server.js'

// Start-up and CLI failures say what is wrong, with real parts: the real Postgres at DATABASE_URL, closed
// ports for what is unreachable, child processes for the CLI.

const databaseServer = process.env.DATABASE_URL
const noPostgres = databaseServer === undefined || databaseServer === '' ? 'needs DATABASE_URL (a real Postgres)' : false
const ACCEPTED = /accepted: postgres:\/\/… or postgresql:\/\/…/
// avvio's plugin timeout (Fastify's default 10 s) is not what these tests are about: an in-memory PGlite
// took longer than that to start and migrate on a loaded CI machine, and its timeout then hid the
// connectTimeoutMs error under test.
const START_BUDGET_MS = 120_000

t.test('a database URL the suite does not know is refused with the accepted forms, never made a PGlite directory', async (t) => {
  for (const url of ['mysql://user:secret@db.example/app', 'not a url', 'sqlite:chat.db']) {
    t.throws(() => settingsFromEnv({ DATABASE_URL: url }), { message: ACCEPTED }, `DATABASE_URL=${url}`)
    t.throws(() => resolveConfig({ database: url }), { message: /^chat: invalid option "database": .*accepted: / }, `database: ${url}`)
  }
  t.throws(() => settingsFromEnv({ DATABASE_URL: 'mysql://user:secret@db.example/app' }), { message: /mysql:\/\/user:\*\*\*@db\.example\/app/ }, 'the password is not repeated')
  for (const url of ['postgres://u@h/db', 'postgresql://h/db', 'memory://', 'file:./data/x', 'file:///tmp/x', '/tmp/x', './data/x']) {
    t.doesNotThrow(() => resolveConfig({ database: url }), `${url} is accepted`)
  }

  const result = await runCli(['start'], { DATABASE_URL: 'not a url', JWT_SECRET: TEST_SECRET, PORT: '0' })
  t.equal(result.code, 1, 'the CLI exits 1')
  t.match(result.stderr, /DATABASE_URL: "not a url" is neither a database URL nor a directory path; accepted: /)
  t.notMatch(result.stderr, /chat: chat:/, 'one prefix')
  t.notOk(existsSync(join(ROOT, 'not a url')), 'no directory named after the value')
})

t.test('an unreachable Redis fails start-up within connectTimeoutMs, with its address and the cause', async (t) => {
  const port = await freePort()
  const app = Fastify({ pluginTimeout: START_BUDGET_MS })
  t.teardown(() => app.close())
  const started = Date.now()
  const error = await app.register(chat, { database: 'memory://', redis: `redis://127.0.0.1:${port}`, connectTimeoutMs: 1000, jwt: { secret: TEST_SECRET } })
    .then(() => app.ready()).then(() => null, (error: unknown) => error)
  const elapsed = Date.now() - started
  t.ok(error instanceof Error, 'start-up fails')
  const message = (error as Error).message
  t.match(message, `127.0.0.1:${port}`, 'names the address')
  t.match(message, /ECONNREFUSED/, 'and the cause')
  t.match(message, /within 1000 ms/, 'after connectTimeoutMs')
  t.notMatch(message, /did not start in time/, 'not avvio\'s plugin timeout')
  t.comment(`failed after ${elapsed} ms (PGlite start included)`)
})

t.test('an unreachable Postgres fails start-up at once with its address and the driver\'s cause', async (t) => {
  const port = await freePort()
  const app = Fastify({ pluginTimeout: START_BUDGET_MS })
  t.teardown(() => app.close())
  const started = Date.now()
  const error = await app.register(chat, { database: `postgres://postgres@127.0.0.1:${port}/chat`, connectTimeoutMs: 2000, jwt: { secret: TEST_SECRET } })
    .then(() => app.ready()).then(() => null, (error: unknown) => error)
  t.ok(error instanceof Error, 'start-up fails')
  t.match((error as Error).message, new RegExp(`^chat: cannot use Postgres at 127\\.0\\.0\\.1:${port}/chat: connect ECONNREFUSED`))
  t.equal((error as { code?: string }).code, 'ECONNREFUSED', 'the driver\'s code on the error')
  t.ok(Date.now() - started < 2000, 'a refusal does not wait for the timeout')
})

t.test('a Postgres that does not answer fails start-up after connectTimeoutMs', async (t) => {
  // A listening socket that never speaks: the TCP connection opens, the startup message gets no reply.
  const { createServer } = await import('node:net')
  const silent = createServer(() => {})
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { silent.close() })
  const port = (silent.address() as { port: number }).port
  const app = Fastify({ pluginTimeout: START_BUDGET_MS })
  t.teardown(() => app.close())
  await app.register(configPlugin, { config: resolveConfig({ database: `postgres://postgres@127.0.0.1:${port}/chat`, connectTimeoutMs: 700 }), hooks: {} })
  const started = Date.now()
  // Awaiting register() loads the plugin, so that is where the failure surfaces.
  const error = await app.register(databasePlugin).then(() => null, (error: unknown) => error)
  const elapsed = Date.now() - started
  t.match((error as Error).message, new RegExp(`127\\.0\\.0\\.1:${port}/chat: no answer within 700 ms \\(connectTimeoutMs\\)`))
  t.ok(elapsed >= 650 && elapsed < 15000, `after the bound, not a hang (${elapsed} ms)`)
})

t.test('migrate against a missing database shows the driver\'s cause', { skip: noPostgres }, async (t) => {
  const url = new URL(databaseServer!)
  url.pathname = '/chat_no_such_database'
  const result = await runCli(['migrate', '--database', url.toString()])
  t.equal(result.code, 1)
  t.match(result.stderr, /^chat: cannot use Postgres at .+\/chat_no_such_database: database "chat_no_such_database" does not exist/)
  t.notMatch(result.stderr, /Failed query/, 'not drizzle\'s query text alone')
})

t.test('every CLI command has its own --help, and start --help starts nothing', async (t) => {
  for (const [command, usage] of [['start', 'usage: chat-suite start'], ['migrate', 'usage: chat-suite migrate'], ['token', 'usage: chat-suite token']] as const) {
    const started = Date.now()
    const result = await runCli([command, '--help'], { PORT: '0', DATABASE_URL: 'memory://' })
    t.equal(result.code, 0, `${command} --help exits 0`)
    t.match(result.stdout, usage)
    t.notMatch(result.stdout + result.stderr, /listening|migrate:/i, `${command} --help does nothing else`)
    t.ok(Date.now() - started < 15000)
  }
  const general = await runCli(['--help'])
  t.match(general.stdout, /start .*\n.*migrate .*\n.*token /)
  const unknown = await runCli(['migrate', '--databse', 'memory://'])
  t.equal(unknown.code, 2, 'a mistyped option is an error, not ignored')
  t.match(unknown.stderr, /Unknown option '--databse'/)
  const bad = await runCli(['start'], { CHAT_OPTIONS: '{"maxMessageLength":0}', DATABASE_URL: 'memory://', JWT_SECRET: TEST_SECRET })
  t.equal(bad.code, 1)
  t.match(bad.stderr, /^chat: invalid option "maxMessageLength"/, 'an option error, prefixed once')
})

t.test('no "already exists" NOTICE reaches the host\'s stdout through its postgres.js client', { skip: noPostgres }, async (t) => {
  const url = await createScratchDatabase(t, databaseServer!)
  const logged: unknown[] = []
  const log = console.log
  console.log = (...args: unknown[]) => { logged.push(args) }
  t.teardown(() => { console.log = log })
  // The host's client as a host writes it: no onnotice, so postgres.js prints notices with console.log.
  const sql = postgres(url, { max: 3 })
  t.teardown(() => sql.end({ timeout: 1 }))
  for (let start = 0; start < 2; start++) {
    const app = Fastify({ pluginTimeout: START_BUDGET_MS })
    await app.register(chat, { databaseClient: sql, jwt: { secret: TEST_SECRET } })
    await app.ready()
    await app.close()
  }
  await sql`do $$ begin raise notice 'the host''s own notice'; end $$`
  console.log = log
  t.same(logged.filter((args) => JSON.stringify(args).includes('already exists')), [], 'the migrator\'s IF NOT EXISTS notices are dropped')
  t.equal(logged.filter((args) => JSON.stringify(args).includes('the host\'s own notice')).length, 1, 'the host\'s other notices still go where it sends them')
})
