import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Sql } from 'postgres'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import type { MigrationConfig } from 'drizzle-orm/migrator'
import type { DatabaseHandle } from './client.js'

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
    await migratePglite(drizzlePglite({ client: handle.client }), config)
    return
  }
  await withMigrationLock(handle.client, () => migratePostgres(drizzlePostgres({ client: handle.client }), config))
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

async function lockedOn (session: Sql, run: () => Promise<void>): Promise<void> {
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
