/**
 * Readings at window boundaries and what they give per node. A window is measured with the CPU of
 * every node (/proc), PostgreSQL's CPU (every postgres process on the machine), Redis' command calls
 * and the clients' counters, all read back to back at its start and its end.
 */
import type { Redis } from 'ioredis'
import { cpuMicrosSync, postgresCpuMicros } from '../lib.js'
import type { ClientProcess } from './clients.js'
import type { Counters } from './messages.js'
import { databaseCpuMicros } from './postgres-cpu.js'
import { callsBetween, commandCalls, type CommandCalls } from './redis-stats.js'

export interface Reading {
  at: number
  cpu: number[]
  postgres: number
  /** CPU of the backends of the scratch database only. */
  database: number
  calls: CommandCalls
  counters: Counters[]
}

export interface Window {
  seconds: number
  /** Server CPU µs per node. */
  cpu: number[]
  postgres: number
  database: number
  calls: CommandCalls
  /** Per node (its client process): acks and deliveries received. */
  acks: number[]
  deliveries: number[]
  errors: number
  skipped: number
  /** Ack latency in the window, ms: the worst node's p50 and p99 (null when a node acked nothing). */
  p50: number | null
  p99: number | null
}

export async function read (pids: number[], database: string, redis: Redis, clients: ClientProcess[]): Promise<Reading> {
  // The counters first (an IPC round trip each, in parallel), then the synchronous /proc reads, so that
  // the CPU and the counts are taken within a few milliseconds of each other.
  const counters = await Promise.all(clients.map((client) => client.counters()))
  const at = performance.now()
  const cpu = pids.map((pid) => cpuMicrosSync(pid))
  const postgres = postgresCpuMicros()
  const ownDatabase = databaseCpuMicros(database)
  const calls = await commandCalls(redis)
  return { at, cpu, postgres, database: ownDatabase, calls, counters }
}

function worst (values: Array<number | null>): number | null {
  const known = values.filter((value): value is number => value !== null)
  return known.length === 0 ? null : Math.max(...known)
}

export function between (start: Reading, end: Reading): Window {
  const sum = (pick: (counters: Counters) => number): number => end.counters.reduce((total, counters, index) => total + pick(counters) - pick(start.counters[index] as Counters), 0)
  return {
    seconds: (end.at - start.at) / 1000,
    cpu: end.cpu.map((value, index) => value - (start.cpu[index] as number)),
    postgres: end.postgres - start.postgres,
    database: end.database - start.database,
    calls: callsBetween(start.calls, end.calls),
    acks: end.counters.map((counters, index) => counters.acks - (start.counters[index] as Counters).acks),
    deliveries: end.counters.map((counters, index) => counters.deliveries - (start.counters[index] as Counters).deliveries),
    errors: sum((counters) => counters.errors),
    skipped: sum((counters) => counters.skipped),
    p50: worst(end.counters.map((counters) => counters.p50)),
    p99: worst(end.counters.map((counters) => counters.p99)),
  }
}
