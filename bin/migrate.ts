import { sql } from 'drizzle-orm'
import { describePostgresUrl, isPostgresUrl, openDatabase, pgliteDataDir, rows, type DatabaseHandle } from '../db/client.js'
import { MIGRATIONS_SCHEMA, MIGRATIONS_TABLE, migrateDatabase } from '../db/migrate.js'

/** How long `migrate` gives Postgres to answer before it says why it cannot (the server's default too). */
const CONNECT_TIMEOUT_MS = 5000

/**
 * `chat migrate`: brings the database the URL names up to date and says what it did, on one line. A
 * database that cannot be used fails before any migration query, with its address and the driver's
 * reason (`database "x" does not exist`, ECONNREFUSED, a refused password).
 */
export async function runMigrate (databaseUrl: string): Promise<void> {
  const started = performance.now()
  const handle = await openDatabase(databaseUrl, { connectTimeoutMs: CONNECT_TIMEOUT_MS })
  try {
    const before = await appliedCount(handle)
    await migrateDatabase(handle)
    const after = await appliedCount(handle)
    const ms = Math.round(performance.now() - started)
    console.log(`chat migrate: ${describeTarget(databaseUrl)} (${handle.driver}): ${after - before} applied, ${after} in total, ${ms} ms`)
  } finally {
    await handle.close()
  }
}

async function appliedCount (handle: DatabaseHandle): Promise<number> {
  const table = `${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`
  const [exists] = rows<{ present: boolean }>(
    await handle.db.execute(sql`select to_regclass(${table}) is not null as present`),
  )
  if (exists?.present !== true) return 0
  // ::int because a bare count(*) is a bigint, which postgres.js returns as a string and PGlite as a number.
  const [count] = rows<{ n: number }>(
    await handle.db.execute(sql`select count(*)::int as n from ${sql.identifier(MIGRATIONS_SCHEMA)}.${sql.identifier(MIGRATIONS_TABLE)}`),
  )
  return count?.n ?? 0
}

/** The target without credentials, since this line ends up in deploy logs. */
function describeTarget (databaseUrl: string): string {
  if (isPostgresUrl(databaseUrl)) return describePostgresUrl(databaseUrl)
  return pgliteDataDir(databaseUrl) ?? 'memory'
}
