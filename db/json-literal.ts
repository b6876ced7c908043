import { sql, type SQL } from 'drizzle-orm'

/**
 * A JSON document as an escaped SQL literal (`E'…'::json`) instead of a bound parameter, for the
 * group-commit statements. Drizzle runs every `execute` as an unnamed statement, and postgres.js then
 * describes a statement with parameters before binding it: two round trips per statement. A statement
 * without parameters goes in one (the simple protocol), and the batch's rows are one JSON value anyway.
 * The E'' form reads backslashes the same whatever standard_conforming_strings says; doubling quotes
 * and backslashes is the whole escaping; JSON text holds no NUL (JSON.stringify escapes control
 * characters), so the literal cannot end early.
 */
export function jsonLiteral (json: string): SQL {
  return sql.raw(`E'${json.replace(/\\/g, '\\\\').replace(/'/g, "''")}'::json`)
}
