import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'
import { WebSocket } from 'ws'
import { ChatOptionsSchema } from '../plugins/core/config.js'

export const ROOT = fileURLToPath(new URL('../', import.meta.url))

export interface Started {
  child: ChildProcess
  url: string
  /** What the child printed (its tail once it listens). */
  output (): string
  stop (): Promise<void>
}

export interface StartOptions {
  /** Extra node flags before the script (for example --cpu-prof). */
  nodeArgs?: string[]
  /** Keeps the child's output to this many characters once it listens (the rest is drained). */
  keepOutput?: number
}

/**
 * Starts a TypeScript entry point (`node --import tsx <script>`) in its own process and waits for its
 * "listening at http://…" line. The child is node itself, so its pid is the one to read CPU and RSS of.
 */
export async function startProcess (script: string, env: Record<string, string>, options: StartOptions = {}): Promise<Started> {
  // Every target can be told to collect its garbage (SIGWINCH), for the idle scenario's RSS readings.
  const gcOnSignal = ['--expose-gc', '--import', 'tsx', '--import', './bench/gc-on-signal.ts']
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...gcOnSignal, script], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const keep = options.keepOutput ?? 4000
  let output = ''
  let listening = false
  const collect = (chunk: Buffer): void => {
    output += chunk.toString()
    if (listening && output.length > keep) output = output.slice(-keep)
  }
  child.stderr?.on('data', collect)
  child.stdout?.on('data', collect)
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start:\n${output}`)), 60000)
    const watch = (): void => {
      const match = /listening at (http:\/\/127\.0\.0\.1:\d+)/i.exec(output)
      if (match === null) return
      clearTimeout(timer)
      listening = true
      child.stdout?.off('data', watch)
      resolve(match[1] as string)
    }
    child.stdout?.on('data', watch)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${script} exited with ${String(code)}:\n${output}`))
    })
  })
  return {
    child,
    url,
    output: () => output,
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000)
      await exited
      clearTimeout(timer)
    },
  }
}

/** Starts the standalone server (NODE_ENV=production) in its own process and waits for it to listen. */
export async function startServer (env: Record<string, string>, options: StartOptions = {}): Promise<Started> {
  return await startProcess('server.ts', { LOG_LEVEL: 'info', NODE_ENV: 'production', ...env }, options)
}

/** A fresh database on the Postgres server of `serverUrl`, dropped by the returned function. */
export async function scratchDatabase (serverUrl: string): Promise<{ url: string, drop (): Promise<void> }> {
  const name = `chat_bench_${randomBytes(4).toString('hex')}`
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database "${name}"`)
  await admin.end()
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop () {
      const again = postgres(serverUrl, { max: 1, onnotice: () => {} })
      await again.unsafe(`drop database if exists "${name}" with (force)`)
      await again.end()
    },
  }
}

/** A minimal client: requests resolve on their ack; pushes go to `onPush`. */
export class BenchClient {
  private counter = 0
  private readonly pending = new Map<string, { resolve: (data: Record<string, unknown>) => void, reject: (error: Error) => void }>()
  onPush: (frame: { event: string, data: Record<string, unknown> }) => void = () => {}

  private constructor (readonly socket: WebSocket) {
    socket.on('message', (raw) => {
      const frame = JSON.parse(raw.toString()) as { event: string, id?: string, data: Record<string, unknown>, error?: { code: string } }
      if (frame.id !== undefined) {
        const waiter = this.pending.get(frame.id)
        this.pending.delete(frame.id)
        if (frame.event === 'ack') waiter?.resolve(frame.data)
        else waiter?.reject(new Error(frame.error?.code ?? 'error'))
        return
      }
      this.onPush(frame)
    })
  }

  static async connect (wsUrl: string, token: string): Promise<BenchClient> {
    const socket = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${token}` } })
    const client = new BenchClient(socket)
    await new Promise<void>((resolve, reject) => {
      const onReady = (raw: Buffer): void => {
        if ((JSON.parse(raw.toString()) as { event: string }).event === 'session.ready') {
          socket.off('message', onReady)
          resolve()
        }
      }
      socket.on('message', onReady)
      socket.once('error', reject)
      socket.once('close', (code) => reject(new Error(`closed ${code}`)))
    })
    return client
  }

  request (event: string, data: unknown): Promise<Record<string, unknown>> {
    const id = String(++this.counter)
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.socket.send(JSON.stringify({ event, id, data }))
    })
  }

  close (): void {
    this.socket.close()
  }
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))
  return sorted[index] as number
}

export function round (value: number, digits = 2): number {
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}

/** CPU time (user + system) of a process in microseconds, from /proc/<pid>/stat (10 ms ticks). */
export async function cpuMicros (pid: number): Promise<number> {
  return cpuMicrosSync(pid)
}

/** The same, synchronously: a load generator reads it at step boundaries without yielding. */
export function cpuMicrosSync (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  return ticks * 10000
}

/**
 * CPU time of every PostgreSQL process on the machine (backends, WAL writer, checkpointer...), in
 * microseconds: the database's share of a durable send, which the server's own CPU does not show. The
 * benchmark's scratch databases are the only load the machine's PostgreSQL has while it runs.
 */
export function postgresCpuMicros (): number {
  let total = 0
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== 'postgres') continue
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total += (Number(fields[11]) + Number(fields[12])) * 10000
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return total
}

/** Resident set size of a process in bytes, from /proc/<pid>/status (VmRSS). */
export function rssBytes (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status)
  return match === null ? NaN : Number(match[1]) * 1024
}

export function median (values: number[]): number {
  const finite = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b)
  if (finite.length === 0) return NaN
  const middle = Math.floor(finite.length / 2)
  return finite.length % 2 === 1 ? finite[middle] as number : ((finite[middle - 1] as number) + (finite[middle] as number)) / 2
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * What a benchmark changes in the suite's options: every rate bucket the options schema has (per
 * socket and per user), the per-user socket cap and the per-user room quotas (an owner makes 100 rooms
 * in a few seconds) are raised so that the load generator is not refused. Validation, auth and
 * persistence stay on; rooms have no size limit unless one is set.
 */
export function benchLimits (): {
  maxConnectionsPerUser: number
  rateLimits: Record<string, { rate: number, burst: number }>
  quotas: { roomsPerMinute: number, maxRoomsPerUser: number }
} {
  const rateLimits: Record<string, { rate: number, burst: number }> = {}
  const buckets = (ChatOptionsSchema.properties.rateLimits as unknown as { properties: Record<string, { properties?: Record<string, unknown> }> }).properties
  for (const [name, schema] of Object.entries(buckets)) {
    if (schema.properties?.rate !== undefined && schema.properties.burst !== undefined) rateLimits[name] = { rate: 100_000, burst: 100_000 }
  }
  return { maxConnectionsPerUser: 50, rateLimits, quotas: { roomsPerMinute: 1_000_000, maxRoomsPerUser: 1_000_000 } }
}
