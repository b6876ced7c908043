import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import postgres, { type Sql } from 'postgres'
import { PGlite } from '@electric-sql/pglite'
import { sql } from 'drizzle-orm'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import * as schema from './schema/index.js'

/** What every concern queries through: the same type whichever driver is underneath. */
export type ChatDb = PgDatabase<PgQueryResultHKT, typeof schema>

export type DatabaseDriver = 'postgres' | 'pglite'

interface HandleBase {
  db: ChatDb
  ping (): Promise<void>
  /** Ends only what openDatabase created: a host's postgres.js client is left open. */
  close (): Promise<void>
}

/** The raw client is exposed because the migrator and a few driver-specific paths need it. */
export type DatabaseHandle =
  | HandleBase & { driver: 'postgres', client: Sql, ownsClient: boolean }
  | HandleBase & { driver: 'pglite', client: PGlite, dataDir: string | undefined }

export interface OpenDatabaseOptions {
  /** A host's postgres.js client: used as is, never ended. */
  client?: Sql
}

const POSTGRES_URL = /^postgres(ql)?:\/\//i
const MEMORY_URL = 'memory://'

/**
 * Where a PGlite database lives for a `database` option that is not a postgres URL: undefined for memory,
 * otherwise an absolute directory. `file:` URLs and plain paths are both accepted because the option is
 * typed by people, and relative paths resolve against the working directory like any CLI argument.
 */
export function pgliteDataDir (url: string): string | undefined {
  if (url === MEMORY_URL || url === 'memory:') return undefined
  if (url.startsWith('file://')) return fileURLToPath(url)
  if (url.startsWith('file:')) return resolve(url.slice('file:'.length))
  return resolve(url)
}

export function isPostgresUrl (url: string): boolean {
  return POSTGRES_URL.test(url)
}

export async function openDatabase (url: string, opts: OpenDatabaseOptions = {}): Promise<DatabaseHandle> {
  if (opts.client !== undefined) return wrapPostgres(opts.client, false)
  if (isPostgresUrl(url)) {
    // Notices (for example "schema already exists, skipping" from the migrator) are not news to anyone.
    const client = postgres(url, { max: 10, onnotice: () => {}, ...failFast(url) })
    return wrapPostgres(client, true)
  }
  const dataDir = pgliteDataDir(url)
  if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true })
  const client = await PGlite.create(dataDir)
  const db: ChatDb = drizzlePglite({ client, schema })
  return {
    driver: 'pglite',
    client,
    dataDir,
    db,
    ping: () => ping(db),
    async close () {
      if (!client.closed) await client.close()
    },
  }
}

/**
 * While the database is away, a query must fail in well under a second, and the first query after it
 * returns must get through. postgres.js connects on demand and waits its reconnect backoff before each
 * attempt, and its default backoff grows to 20 s (so a send would wait that long to learn UNAVAILABLE,
 * and the first sends after the database returned would still be waiting); its default connect timeout
 * is 30 s (a database behind a partition). Both are capped here unless the URL sets them
 * (`?connect_timeout=…&backoff=…`, in seconds).
 */
function failFast (url: string): { connect_timeout?: number, backoff?: (retries: number) => number } {
  let query: URLSearchParams
  try {
    query = new URL(url).searchParams
  } catch {
    return {}
  }
  const options: { connect_timeout?: number, backoff?: (retries: number) => number } = {}
  if (!query.has('connect_timeout')) options.connect_timeout = 5
  if (!query.has('backoff')) options.backoff = (retries) => Math.min(0.025 * 2 ** retries, 0.5)
  return options
}

function wrapPostgres (client: Sql, ownsClient: boolean): DatabaseHandle {
  // drizzle-orm/postgres-js replaces the client's date and json (de)serializers here, on the shared options
  // object: a host's client is changed for the host's own queries too. drizzle needs it that way.
  const db: ChatDb = drizzlePostgres({ client, schema })
  let closed = false
  return {
    driver: 'postgres',
    client,
    ownsClient,
    db,
    ping: () => ping(db),
    async close () {
      if (closed || !ownsClient) return
      closed = true
      await client.end({ timeout: 5 })
    },
  }
}

async function ping (db: ChatDb): Promise<void> {
  await db.execute(sql`select 1`)
}

/**
 * The rows of a `db.execute(sql...)` result: postgres.js resolves to an array of rows, PGlite to
 * `{ rows, fields, affectedRows }`. The caller states the row type; nothing here checks it.
 */
export function rows<T> (result: unknown): T[] {
  if (Array.isArray(result)) return result as T[]
  if (typeof result === 'object' && result !== null && 'rows' in result && Array.isArray(result.rows)) {
    return result.rows as T[]
  }
  throw new TypeError('rows(): not a query result of postgres.js or PGlite')
}
