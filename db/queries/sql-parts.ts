import { sql, type SQL } from 'drizzle-orm'

/**
 * The pieces the hand-written statements of db/queries (and the concerns' own SQL) share, so that each is
 * written once: both drivers (postgres.js, PGlite) must get the same plain values back.
 */

const ISO_FORMAT = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`

/**
 * A timestamptz column as ISO text in UTC to the millisecond, as SQL text (for sql.raw and column lists);
 * only ever of a column name written in the code, which test/abuse.test.ts checks wherever it is raw SQL.
 */
export function iso (column: string): string {
  return `to_char(${column} at time zone 'UTC', ${ISO_FORMAT})`
}

/**
 * The values as one bound parameter, an array (`unnest(${arrayOf(ids)})`, `x = any(${arrayOf(ids)})`):
 * a statement's text then does not depend on how many values it has, which a prepared statement
 * (db/client.ts executePrepared) needs.
 */
export function arrayOf (values: readonly string[], type: 'text' | 'uuid' = 'text'): SQL {
  // An array literal: every element double-quoted, backslash and double quote escaped.
  const literal = `{${values.map((value) => `"${value.replace(/[\\"]/g, (char) => `\\${char}`)}"`).join(',')}}`
  return type === 'uuid' ? sql`${literal}::uuid[]` : sql`${literal}::text[]`
}

/** The bound parameters of an `in (…)` list, each cast to uuid when asked. */
export function inList (values: readonly string[], cast?: 'uuid'): SQL {
  return sql.join(values.map((value) => cast === 'uuid' ? sql`${value}::uuid` : sql`${value}`), sql`, `)
}
