import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'
import { WebSocket } from 'ws'

export const ROOT = fileURLToPath(new URL('../', import.meta.url))

export interface Started {
  child: ChildProcess
  url: string
  stop (): Promise<void>
}

/** Starts the standalone server in its own process and waits for it to listen. */
export async function startServer (env: Record<string, string>): Promise<Started> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 60000)
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening at (http:\/\/127\.0\.0\.1:\d+)/i.exec(output)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match[1] as string)
      }
    })
    child.on('exit', () => reject(new Error(`server exited:\n${output}`)))
  })
  return {
    child,
    url,
    async stop () {
      if (child.exitCode !== null) return
      child.kill('SIGTERM')
      await new Promise((resolve) => child.once('exit', resolve))
    },
  }
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

/** CPU time (user + system) of a process in microseconds, from /proc. */
export async function cpuMicros (pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises')
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  return ticks * 10000
}
