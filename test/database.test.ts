import t, { type Test } from 'tap'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import postgres from 'postgres'
import { eq, sql } from 'drizzle-orm'
import { openDatabase, pgliteDataDir, rows, type DatabaseHandle } from '../db/client.js'
import { MIGRATION_LOCK_KEY, migrateDatabase } from '../db/migrate.js'
import { messages, rooms, users } from '../db/schema/index.js'
import { configPlugin, resolveConfig } from '../plugins/core/config.js'
import { databasePlugin } from '../plugins/core/database.js'
import { runMigrate } from '../bin/migrate.js'
import { createScratchDatabase, freshDatabaseUrl } from './fixtures/database.js'
import { sleep } from './fixtures/timing.js'

// Every migration drizzle-kit wrote (the journal lists them): a fresh database gets all of them once.
const MIGRATIONS = (JSON.parse(readFileSync(new URL('../db/migrations/meta/_journal.json', import.meta.url), 'utf8')) as { entries: unknown[] }).entries.length
const CHAT_TABLES = ['favorites', 'feed', 'feed_lease', 'feed_outbox', 'feed_parked', 'feed_positions', 'message_reports', 'message_search', 'message_search_queue', 'messages', 'reactions', 'room_bans', 'room_events', 'room_members', 'rooms', 'users']

/** The server the Postgres subtests use, or undefined when none answers (those subtests then skip). */
async function reachablePostgres (): Promise<string | undefined> {
  const url = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
  const probe = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} })
  try {
    await probe`select 1`
    return url
  } catch {
    return undefined
  } finally {
    await probe.end({ timeout: 1 })
  }
}

const server = await reachablePostgres()
const noPostgres = server === undefined ? 'PostgreSQL is not reachable (set DATABASE_URL)' : false

async function tablesIn (handle: DatabaseHandle, schema: string): Promise<string[]> {
  const result = await handle.db.execute(sql`
    select table_name from information_schema.tables where table_schema = ${schema} order by table_name`)
  return rows<{ table_name: string }>(result).map((row) => row.table_name)
}

async function appliedMigrations (handle: DatabaseHandle): Promise<number> {
  const result = await handle.db.execute(sql`select count(*)::int as n from chat.__drizzle_migrations`)
  return rows<{ n: number }>(result)[0]?.n ?? -1
}

/** What a migrated database must look like, whichever driver: everything in `chat`, nothing elsewhere. */
async function assertMigrated (t: Test, handle: DatabaseHandle): Promise<void> {
  t.same(await tablesIn(handle, 'chat'), ['__drizzle_migrations', ...CHAT_TABLES], 'chat holds the tables and the migrations table')
  t.same(await tablesIn(handle, 'public'), [], 'nothing is created in public')
  const strays = rows<{ table_schema: string, table_name: string }>(await handle.db.execute(sql`
    select table_schema, table_name from information_schema.tables
    where table_schema <> 'chat' and table_name in ${CHAT_TABLES.concat('__drizzle_migrations')}`))
  t.same(strays, [], 'no chat table outside the chat schema')
  const drizzleSchema = rows<{ n: number }>(await handle.db.execute(sql`
    select count(*)::int as n from information_schema.schemata where schema_name = 'drizzle'`))
  t.equal(drizzleSchema[0]?.n, 0, 'no separate drizzle schema')
  t.equal(await appliedMigrations(handle), MIGRATIONS, 'every migration recorded once')
}

/** A typed round trip through the tables, so a driver that mangles dates or jsonb shows here. */
async function assertRoundTrip (t: Test, handle: DatabaseHandle): Promise<void> {
  const { db } = handle
  const [room] = await db.insert(rooms).values({ type: 'GROUP', name: 'general', createdBy: 'u1' }).returning()
  if (room === undefined) throw new Error('no room returned')
  const attachments = [{ url: 'https://x/y.png', name: 'y.png', size: 3, mimeType: 'image/png' }]
  await db.insert(messages).values({ roomId: room.id, seq: 1, senderId: 'u1', content: 'hi', attachments })
  const [message] = await db.select().from(messages).where(eq(messages.roomId, room.id))
  t.same(message?.attachments, attachments, 'jsonb comes back as it went in')
  t.type(message?.createdAt, Date, 'timestamps map to Date')
  await t.rejects(
    db.insert(messages).values({ roomId: room.id, seq: 1, senderId: 'u2', content: 'dup' }),
    { cause: { code: '23505' } },
    'the unique (room_id, seq) index holds; the driver error is the cause of drizzle\'s error',
  )
}

/** An empty database of `driver` migrates, a second run applies nothing, and rows go in and out. */
async function assertMigratesTwice (t: Test, handle: DatabaseHandle, driver: DatabaseHandle['driver']): Promise<void> {
  t.teardown(() => handle.close())
  t.equal(handle.driver, driver)
  t.same(await tablesIn(handle, 'chat'), [], 'starts empty')
  await migrateDatabase(handle)
  await assertMigrated(t, handle)
  await migrateDatabase(handle)
  t.equal(await appliedMigrations(handle), MIGRATIONS, 'a second run applies nothing')
  await assertRoundTrip(t, handle)
  await handle.ping()
}

t.test('migrations apply to an empty Postgres database, twice without harm', { skip: noPostgres }, async (t) => {
  await assertMigratesTwice(t, await openDatabase(await createScratchDatabase(t, server!)), 'postgres')
})

t.test('migrations apply to in-memory PGlite', async (t) => {
  await assertMigratesTwice(t, await openDatabase('memory://'), 'pglite')
})

t.test('a PGlite directory opens twice in a row and keeps its data', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'chat-db-test-')), 'nested', 'data')
  t.teardown(() => rmSync(join(dir, '..', '..'), { recursive: true, force: true }))

  const first = await openDatabase(`file:${dir}`)
  t.ok(existsSync(join(dir, 'PG_VERSION')), 'the directory is created and holds a cluster')
  await migrateDatabase(first)
  await first.db.insert(users).values({ id: 'kept', name: 'Kept' })
  await first.close()
  await first.close()

  // A plain path names the same directory as its file: form.
  const second = await openDatabase(dir)
  t.teardown(() => second.close())
  await migrateDatabase(second)
  t.equal(await appliedMigrations(second), MIGRATIONS, 'the reopened directory is not migrated again')
  const kept = await second.db.select().from(users).where(eq(users.id, 'kept'))
  t.equal(kept[0]?.name, 'Kept', 'the row written before closing is there')
})

t.test('two nodes migrating one fresh Postgres database at once', { skip: noPostgres }, async (t) => {
  const url = await createScratchDatabase(t, server!)
  const handles = await Promise.all([openDatabase(url), openDatabase(url)])
  t.teardown(() => Promise.all(handles.map((handle) => handle.close())))
  // Without the lock this fails nearly every time: both race on CREATE SCHEMA / CREATE TABLE.
  await Promise.all(handles.map((handle) => migrateDatabase(handle)))
  await assertMigrated(t, handles[0])
})

t.test('a migrator waits while another node holds the migration lock', { skip: noPostgres }, async (t) => {
  const url = await createScratchDatabase(t, server!)
  const other = postgres(url, { max: 1, onnotice: () => {} })
  t.teardown(() => other.end({ timeout: 1 }))
  const [classId, objId] = MIGRATION_LOCK_KEY
  await other`select pg_advisory_lock(${classId}, ${objId})`

  const handle = await openDatabase(url)
  t.teardown(() => handle.close())
  let finished = false
  const migrating = migrateDatabase(handle).then(() => { finished = true })
  await sleep(300)
  t.equal(finished, false, 'still waiting')
  const [schema] = await other`select to_regnamespace('chat') is null as absent`
  t.equal(schema?.absent, true, 'no DDL ran while the lock was held elsewhere')

  await other`select pg_advisory_unlock(${classId}, ${objId})`
  await migrating
  await assertMigrated(t, handle)
})

t.test('a host client with a pool of one migrates without starving itself', { skip: noPostgres, timeout: 15000 }, async (t) => {
  const url = await createScratchDatabase(t, server!)
  const client = postgres(url, { max: 1, onnotice: () => {} })
  t.teardown(() => client.end({ timeout: 1 }))
  const handle = await openDatabase('ignored when a client is given', { client })
  await migrateDatabase(handle)
  await assertMigrated(t, handle)
  await handle.close()
  const [alive] = await client`select 1 as one`
  t.equal(alive?.one, 1, 'close() leaves the host\'s client open')
})

t.test('the fixture hands out isolated, migrated databases and removes them', async (t) => {
  const modes: Array<[string, string | undefined]> = [['pglite', undefined]]
  if (server !== undefined) modes.push(['postgres', server])
  const saved = process.env.DATABASE_URL
  t.teardown(() => {
    if (saved === undefined) delete process.env.DATABASE_URL
    else process.env.DATABASE_URL = saved
  })

  for (const [mode, databaseUrl] of modes) {
    const urls: string[] = []
    await t.test(mode, async (t) => {
      if (databaseUrl === undefined) delete process.env.DATABASE_URL
      else process.env.DATABASE_URL = databaseUrl
      urls.push(await freshDatabaseUrl(t), await freshDatabaseUrl(t))
      t.not(urls[0], urls[1])
      const [a, b] = await Promise.all(urls.map((url) => openDatabase(url)))
      if (a === undefined || b === undefined) throw new Error('two handles expected')
      t.teardown(() => Promise.all([a.close(), b.close()]))
      t.equal(a.driver, mode)
      await assertMigrated(t, a)
      await assertMigrated(t, b)
      await a.db.insert(users).values({ id: 'only-in-a' })
      t.equal((await a.db.select().from(users)).length, 1, 'written in a')
      t.same(await b.db.select().from(users), [], 'absent from b')
    })
    if (mode === 'pglite') {
      for (const url of urls) t.notOk(existsSync(pgliteDataDir(url) ?? ''), `${url} removed in teardown`)
    } else {
      const admin = postgres(databaseUrl!, { max: 1, onnotice: () => {} })
      const names = urls.map((url) => new URL(url).pathname.slice(1))
      const left = await admin`select datname from pg_database where datname in ${admin(names)}`
      await admin.end({ timeout: 1 })
      t.same([...left], [], 'scratch databases dropped in teardown')
    }
  }
})

t.test('the database plugin decorates, migrates and closes what it opened', async (t) => {
  const database = await freshDatabaseUrl(t)
  const app = Fastify()
  await app.register(configPlugin, { config: resolveConfig({ database }), hooks: {} })
  await app.register(databasePlugin)
  await app.ready()
  t.equal(app.chatDatabase.driver, process.env.DATABASE_URL ? 'postgres' : 'pglite')
  await app.chatDatabase.ping()
  await app.chatDb.insert(users).values({ id: 'p1' })
  t.equal((await app.chatDb.select().from(users)).length, 1)
  await app.close()
  await t.rejects(app.chatDatabase.ping(), 'the database is closed with the app')
})

t.test('the database plugin leaves a host\'s postgres.js client open', { skip: noPostgres }, async (t) => {
  const url = await createScratchDatabase(t, server!)
  const client = postgres(url, { max: 2, onnotice: () => {} })
  t.teardown(() => client.end({ timeout: 1 }))
  const app = Fastify()
  await app.register(configPlugin, { config: resolveConfig({ database: 'memory://' }), hooks: { databaseClient: client } })
  await app.register(databasePlugin)
  await app.ready()
  t.equal(app.chatDatabase.driver, 'postgres', 'the client wins over the database option')
  const [row] = await client`select count(*)::int as n from chat.__drizzle_migrations`
  t.equal(row?.n, MIGRATIONS, 'migrated through the host client')
  await app.close()
  const [alive] = await client`select 1 as one`
  t.equal(alive?.one, 1)
})

t.test('the database plugin fails to start on an unreachable database', async (t) => {
  const app = Fastify()
  await app.register(configPlugin, {
    config: resolveConfig({ database: 'postgres://postgres@127.0.0.1:1/none' }),
    hooks: {},
  })
  // Awaiting register() already loads the plugin, so that is where the failure surfaces.
  const error = await app.register(databasePlugin).then(() => undefined, (error: unknown) => error)
  t.ok(error instanceof Error, 'start fails')
  // Raw from postgres.js, or wrapped by drizzle with the driver error as its cause.
  const { code, cause } = error as { code?: string, cause?: { code?: string } }
  t.equal(code ?? cause?.code, 'ECONNREFUSED', 'with the connection error')
  await app.close()
})

t.test('runMigrate prints one line', async (t) => {
  const database = await freshDatabaseUrl(t)
  const lines: string[] = []
  const log = console.log
  console.log = (...args: unknown[]) => { lines.push(args.join(' ')) }
  try {
    await runMigrate(database)
  } finally {
    console.log = log
  }
  t.equal(lines.length, 1)
  t.match(lines[0], new RegExp(`^chat migrate: .+ \\((postgres|pglite)\\): 0 applied, ${MIGRATIONS} in total, \\d+ ms$`))
})

t.test('rows() reads both drivers\' results and refuses anything else', async (t) => {
  t.same(rows([{ a: 1 }]), [{ a: 1 }])
  t.same(rows({ rows: [{ a: 1 }], fields: [] }), [{ a: 1 }])
  t.throws(() => rows({ count: 1 }), TypeError)
  t.throws(() => rows(null), TypeError)
})

t.test('database option spellings', async (t) => {
  t.equal(pgliteDataDir('memory://'), undefined)
  t.equal(pgliteDataDir('file:/tmp/x'), '/tmp/x')
  t.equal(pgliteDataDir('file:///tmp/y'), '/tmp/y')
  t.equal(pgliteDataDir('/tmp/z'), '/tmp/z')
  t.equal(pgliteDataDir('file:rel'), join(process.cwd(), 'rel'))
})

t.test('0004 keeps existing users and favorites: a users row keeps its tenant, a favorite takes its user\'s', async (t) => {
  const handle = await openDatabase('memory://')
  t.teardown(() => handle.close())
  if (handle.driver !== 'pglite') throw new Error('expected PGlite')
  // The database as it was before the (tenant, user) model: migrations 0000 to 0003 only.
  const before = mkdtempSync(join(tmpdir(), 'chat-migrations-'))
  t.teardown(() => rmSync(before, { recursive: true, force: true }))
  const source = new URL('../db/migrations/', import.meta.url)
  const journal = JSON.parse(readFileSync(new URL('meta/_journal.json', source), 'utf8')) as { entries: Array<{ tag: string }> }
  const upTo = journal.entries.findIndex((entry) => entry.tag === '0004_tenant_users')
  t.ok(upTo > 0, 'the journal has 0004')
  mkdirSync(join(before, 'meta'))
  writeFileSync(join(before, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries: journal.entries.slice(0, upTo) }))
  for (const entry of journal.entries.slice(0, upTo)) writeFileSync(join(before, `${entry.tag}.sql`), readFileSync(new URL(`${entry.tag}.sql`, source)))
  const { drizzle } = await import('drizzle-orm/pglite')
  const { migrate } = await import('drizzle-orm/pglite/migrator')
  await migrate(drizzle({ client: handle.client }), { migrationsFolder: before, migrationsSchema: 'chat', migrationsTable: '__drizzle_migrations' })
  await handle.db.execute(sql`insert into chat.users (id, tenant, name) values ('ann', 'acme', 'Ann of Acme'), ('bob', '', 'Bob')`)
  await handle.db.execute(sql`insert into chat.favorites (user_id, type, target_id) values ('ann', 'USER', 'bob'), ('bob', 'USER', 'ann'), ('zed', 'USER', 'bob')`)

  await migrateDatabase(handle)
  t.equal(await appliedMigrations(handle), MIGRATIONS, 'the rest applied')
  t.same(rows<{ tenant: string, id: string, name: string }>(await handle.db.execute(sql`select tenant, id, name from chat.users order by id`)),
    [{ tenant: 'acme', id: 'ann', name: 'Ann of Acme' }, { tenant: '', id: 'bob', name: 'Bob' }], 'users rows kept with their tenant')
  t.same(rows<{ tenant: string, user_id: string }>(await handle.db.execute(sql`select tenant, user_id from chat.favorites order by user_id`)),
    [{ tenant: 'acme', user_id: 'ann' }, { tenant: '', user_id: 'bob' }, { tenant: '', user_id: 'zed' }], 'a favorite belongs to its user\'s tenant (the default one without a users row)')
  await handle.db.insert(users).values({ id: 'ann', tenant: '', name: 'Ann of the default tenant' })
  t.equal(rows<{ n: number }>(await handle.db.execute(sql`select count(*)::int as n from chat.users where id = 'ann'`))[0]?.n, 2, 'the same sub in another tenant is another row')
})
