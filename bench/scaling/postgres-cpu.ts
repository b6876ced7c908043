/**
 * PostgreSQL CPU of one database: the backends serving it, found by their process title
 * ("postgres: <version>/main: <user> <database> 127.0.0.1(port) …"). postgresCpuMicros() in lib.ts
 * counts every postgres process, which on a machine shared with another agent's benchmarks counts their
 * statements too; this leaves out the WAL writer, checkpointer and other shared processes instead, so the
 * simulation prints both.
 */
import { readdirSync, readFileSync } from 'node:fs'

export function databaseCpuMicros (database: string): number {
  let total = 0
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      if (!title.startsWith('postgres: ') || !title.includes(` ${database} `)) continue
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total += (Number(fields[11]) + Number(fields[12])) * 10000
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return total
}
