import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ReservedSql, Sql } from 'postgres'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator'
import type { MigrationConfig } from 'drizzle-orm/migrator'
import { loadPglite, type DatabaseHandle } from './client.js'

const besideThisFile = fileURLToPath(new URL('./migrations', import.meta.url))
const fromBuildOutput = fileURLToPath(new URL('../../db/migrations', import.meta.url))

/**
 * The SQL drizzle-kit generated. Beside this file when run from source; a build (dist/db/migrate.js) has
 * no copy, since tsc emits no SQL, so the package's own db/migrations is used from there.
 */
export const MIGRATIONS_FOLDER = existsSync(join(besideThisFile, 'meta', '_journal.json')) || !existsSync(fromBuildOutput)
  ? besideThisFile
  : fromBuildOutput

/** The migrations table lives with the tables it describes, so a host database gains one schema only. */
export const MIGRATIONS_SCHEMA = 'chat'
export const MIGRATIONS_TABLE = '__drizzle_migrations'

const config: MigrationConfig = {
  migrationsFolder: MIGRATIONS_FOLDER,
  migrationsSchema: MIGRATIONS_SCHEMA,
  migrationsTable: MIGRATIONS_TABLE,
}

/** pg_advisory_lock(int4, int4) keys: 'chat' in ASCII, then 1 for "migrations". Scoped to one database. */
export const MIGRATION_LOCK_KEY = [0x63686174, 1] as const

/** Applies the pending migrations; a second run finds nothing to do. */
export async function migrateDatabase (handle: DatabaseHandle): Promise<void> {
  if (handle.driver === 'pglite') {
    // One embedded instance belongs to one process, so there is no other migrator to wait for.
    // Loaded here, not imported at the top: PGlite (which drizzle's adapter imports) is an optional peer.
    const [, { drizzle: drizzlePglite }] = await loadPglite()
    const { migrate: migratePglite } = await import('drizzle-orm/pglite/migrator')
    await migratePglite(drizzlePglite({ client: handle.client }), config)
    return
  }
  const client = handle.client
  await withoutIfNotExistsNotices(client, () =>
    withMigrationLock(client, () => migratePostgres(drizzlePostgres({ client }), config)))
}

/** duplicate_schema and duplicate_table: what `CREATE … IF NOT EXISTS` reports when there is nothing to do. */
const IF_NOT_EXISTS_NOTICES = new Set(['42P06', '42P07'])

/**
 * The migrator's `CREATE SCHEMA IF NOT EXISTS "chat"` and `CREATE TABLE IF NOT EXISTS` answer every start
 * with a NOTICE, and postgres.js prints notices with console.log unless the client has an `onnotice`: a
 * host's client would write them to the host's stdout. postgres.js reads `options.onnotice` when a
 * notice arrives, so for the duration of the migration those two notices are dropped and every other
 * notice still goes where the host sends it (console.log by default, nowhere for `onnotice: false`).
 */
async function withoutIfNotExistsNotices (client: Sql, run: () => Promise<void>): Promise<void> {
  const options = client.options as { onnotice?: ((notice: { code?: string }) => void) | false }
  const original = options.onnotice
  options.onnotice = (notice) => {
    if (IF_NOT_EXISTS_NOTICES.has(notice.code ?? '')) return
    if (typeof original === 'function') original(notice)
    else if (original !== false) console.log(notice)
  }
  try {
    await run()
  } finally {
    options.onnotice = original
  }
}

/**
 * Several nodes starting at once would all run the DDL: drizzle's migrator reads the last applied
 * migration before its transaction, and even `CREATE SCHEMA IF NOT EXISTS` fails when it races. A session
 * advisory lock held on one reserved connection makes them take turns; the later ones then find nothing
 * to apply. The migrator itself runs on the pool, because drizzle needs `begin`, which a reserved
 * connection lacks. With a pool of one connection, reserving it would starve the migrator, and every
 * query already shares that one session, so the lock is taken through the pool.
 */
async function withMigrationLock (client: Sql, run: () => Promise<void>): Promise<void> {
  if (client.options.max <= 1) return lockedOn(client, run)
  const reserved = await client.reserve()
  try {
    await lockedOn(reserved, run)
  } finally {
    reserved.release()
  }
}

async function lockedOn (session: Sql | ReservedSql, run: () => Promise<void>): Promise<void> {
  const [classId, objId] = MIGRATION_LOCK_KEY
  await session`select pg_advisory_lock(${classId}, ${objId})`
  let failed = false
  try {
    await run()
  } catch (error) {
    failed = true
    throw error
  } finally {
    // A failed unlock after a failed migration must not hide why the migration failed; the lock goes
    // away with the connection in that case anyway, which is the usual reason both fail.
    await session`select pg_advisory_unlock(${classId}, ${objId})`.catch((error: unknown) => {
      if (!failed) throw error
    })
  }
}
