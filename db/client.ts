import { mkdirSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import postgres, { type Sql } from 'postgres'
// Types only: PGlite is an optional peer, loaded (with drizzle's adapter for it) when a URL asks for it.
import type { PGlite } from '@electric-sql/pglite'
import { sql, type SQL } from 'drizzle-orm'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { PgDialect, type PgDatabase, type PgQueryResultHKT } from 'drizzle-orm/pg-core'
import * as schema from './schema/index.js'
import { withTimeout } from '../lib/deadline.js'

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
  /**
   * When set, a Postgres database must answer a first query within this many ms, or openDatabase
   * rejects with an error that names the address and the driver's cause (and ends what it opened).
   */
  connectTimeoutMs?: number
}

const POSTGRES_URL = /^postgres(ql)?:\/\//i
const MEMORY_URL = 'memory://'
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/
const PGLITE_PACKAGE = '@electric-sql/pglite'

/** The spellings of a `database` option (and DATABASE_URL) the suite accepts, for error messages. */
export const ACCEPTED_DATABASE_FORMS = 'postgres://… or postgresql://… (PostgreSQL through postgres.js), memory:// (a throwaway PGlite), ' +
  'file:<dir>, file:///<dir>, /<dir> or ./<dir> (PGlite in that directory)'

/**
 * Why a `database` value is not one the suite accepts, or undefined when it is. Anything else used to
 * become a PGlite directory named after it (`mysql://…`, a typo): a scheme the suite does not know, or a
 * bare word, is refused instead, so that a wrong URL fails at start rather than writing somewhere else.
 */
export function databaseUrlProblem (url: string): string | undefined {
  if (url.length === 0) return 'empty'
  if (isPostgresUrl(url)) {
    try {
      // postgres.js parses the URL itself, but a malformed one should fail here with the option's name.
      new URL(url) // eslint-disable-line no-new
      return undefined
    } catch {
      return `"${redactDatabaseUrl(url)}" is not a valid URL; accepted: ${ACCEPTED_DATABASE_FORMS}`
    }
  }
  if (url === MEMORY_URL || url === 'memory:' || url.startsWith('file:')) return undefined
  const scheme = SCHEME.exec(url)?.[1]
  // A Windows drive letter (C:\data) is a path, not a scheme.
  if (scheme !== undefined && !(scheme.length === 1 && /^[A-Za-z]:[\\/]/.test(url))) {
    return `unsupported scheme "${scheme}:" in "${redactDatabaseUrl(url)}"; accepted: ${ACCEPTED_DATABASE_FORMS}`
  }
  if (isAbsolute(url) || /^\.\.?[\\/]/.test(url)) return undefined
  return `"${redactDatabaseUrl(url)}" is neither a database URL nor a directory path; accepted: ${ACCEPTED_DATABASE_FORMS}`
}

/** The URL with its password replaced, for messages that may end up in logs. */
export function redactDatabaseUrl (url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^:/@]*:)[^@/]*@/, '$1***@')
}

/**
 * Where a PGlite database lives for a `database` option that is not a postgres URL: undefined for memory,
 * otherwise an absolute directory. `file:` URLs and plain paths are both accepted because the option is
 * typed by people, and relative paths resolve against the working directory like any CLI argument.
 */
export function pgliteDataDir (url: string): string | undefined {
  const problem = databaseUrlProblem(url)
  if (problem !== undefined && !isPostgresUrl(url)) throw new Error(`chat: invalid database: ${problem}`)
  if (url === MEMORY_URL || url === 'memory:') return undefined
  if (url.startsWith('file://')) return fileURLToPath(url)
  if (url.startsWith('file:')) return resolve(url.slice('file:'.length))
  return resolve(url)
}

export function isPostgresUrl (url: string): boolean {
  return POSTGRES_URL.test(url)
}

export async function openDatabase (url: string, opts: OpenDatabaseOptions = {}): Promise<DatabaseHandle> {
  if (opts.client !== undefined) return await verified(wrapPostgres(opts.client, false), describePostgres(opts.client), opts.connectTimeoutMs)
  const problem = databaseUrlProblem(url)
  if (problem !== undefined) throw new Error(`chat: invalid database: ${problem}`)
  if (isPostgresUrl(url)) {
    // Notices (for example "schema already exists, skipping" from the migrator) are not news to anyone.
    const client = postgres(url, { max: 10, onnotice: () => {}, ...failFast(url) })
    return await verified(wrapPostgres(client, true), describePostgresUrl(url), opts.connectTimeoutMs)
  }
  const dataDir = pgliteDataDir(url)
  const [{ PGlite }, { drizzle: drizzlePglite }] = await loadPglite()
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
 * PGlite and drizzle's adapter for it (which imports it): only a PGlite URL loads them, so a host that
 * brings Postgres does not need the optional peer (27 MB of WebAssembly) installed.
 */
export async function loadPglite (): Promise<[typeof import('@electric-sql/pglite'), typeof import('drizzle-orm/pglite')]> {
  try {
    return await Promise.all([import('@electric-sql/pglite'), import('drizzle-orm/pglite')])
  } catch (error) {
    const { code, message } = error as { code?: string, message?: string }
    if (code === 'ERR_MODULE_NOT_FOUND' && message?.includes(PGLITE_PACKAGE) === true) {
      throw new Error(
        `chat: the embedded database (PGlite) needs the optional package ${PGLITE_PACKAGE}: \`npm install ${PGLITE_PACKAGE}\`, ` +
        'or give a postgres:// URL (DATABASE_URL, the database option) or a databaseClient',
        { cause: error },
      )
    }
    throw error
  }
}

/** host:port/database of a postgres:// URL, without credentials. */
export function describePostgresUrl (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname || 'localhost'}${parsed.port === '' ? '' : `:${parsed.port}`}${parsed.pathname}`
  } catch {
    return redactDatabaseUrl(url)
  }
}

function describePostgres (client: Sql): string {
  const { host, port, database, path } = client.options as { host?: string[], port?: number[], database?: string, path?: string | false }
  if (typeof path === 'string' && path !== '') return `${path}/${database ?? ''}`
  const hosts = (host ?? ['localhost']).map((name, index) => `${name}:${port?.[index] ?? port?.[0] ?? 5432}`)
  return `${hosts.join(',')}/${database ?? ''}`
}

/**
 * The first query, bounded: an unreachable or refusing database fails here with its address and the
 * driver's own words (ECONNREFUSED, `database "x" does not exist`, a password failure), not later as
 * drizzle's "Failed query: …" or as the host's plugin timeout.
 */
async function verified (handle: DatabaseHandle, where: string, timeoutMs: number | undefined): Promise<DatabaseHandle> {
  if (timeoutMs === undefined) return handle
  try {
    await withTimeout(handle.ping(), timeoutMs, () => new Error(`no answer within ${timeoutMs} ms (connectTimeoutMs)`))
    return handle
  } catch (error) {
    // Ours is ended at once (close() would give the query still connecting 5 s); a host's stays open.
    if (handle.driver === 'postgres' && handle.ownsClient) await handle.client.end({ timeout: 0 }).catch(() => {})
    const cause = driverCause(error)
    const reason = cause instanceof Error ? cause.message : String(cause)
    const failure = new Error(`chat: cannot use Postgres at ${where}: ${reason}`, { cause })
    // The driver's code (ECONNREFUSED, 3D000, 28P01, …) stays readable on the error itself.
    const code = (cause as { code?: unknown }).code
    if (typeof code === 'string') Object.assign(failure, { code })
    throw failure
  }
}

/** The driver's error under drizzle's "Failed query: …" wrapper (its `cause`), else the error itself. */
export function driverCause (error: unknown): unknown {
  let current = error
  for (let depth = 0; depth < 5; depth++) {
    const next = (current as { cause?: unknown } | null)?.cause
    if (next === undefined || next === null || !(current instanceof Error) || !current.message.startsWith('Failed query')) break
    current = next
  }
  return current
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

const dialect = new PgDialect()

/**
 * `db.execute`, but as a prepared statement on PostgreSQL: each connection parses the statement once
 * and keeps it, instead of parsing and analyzing its text on every run (drizzle runs `db.execute` as an
 * unnamed statement). For the large read statements that run on every session start (a summaries
 * statement is 2.7 KB of SQL; half of its time was spent before it ran). Only for statements whose text
 * is the same on every run (values as parameters, arrays with sql-parts' anyOf, not `in (…)` lists of
 * varying length): each distinct text is a statement kept on every connection. On PGlite the same as
 * `db.execute`. Behind PgBouncer in transaction mode it needs PgBouncer 1.21 or later with
 * `max_prepared_statements` set, or `?prepare=false` on the URL (docs/deployment.md).
 */
export async function executePrepared (db: ChatDb, name: string, query: SQL): Promise<unknown> {
  return await db._.session.prepareQuery(dialect.sqlToQuery(query), undefined, name, false).execute()
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
