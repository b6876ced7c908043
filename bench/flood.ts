/**
 * Flood resistance: one user floods 10,000 frames while two others exchange messages; prints the other
 * users' message latency (send to the peer's message.new, and send to ack), median and p99, without and
 * with the flood. The server runs in its own process with the protocol's default limits; the flooder
 * runs in a third process, so neither the flood nor its bookkeeping shares an event loop with the
 * measurement.
 *
 * Scenarios, each on a fresh server:
 *   reconnecting  default limits: the flooder's socket is closed with 4429 after 100 refusals, and it
 *                 reconnects (up to maxConnectionsPerUser at once) until its 10,000 frames are out
 *   one-socket    floodRefusals raised so the socket is never closed: 10,000 frames against the
 *                 per-socket buckets alone (the cost of refusing)
 *   garbage       default limits, frames that are not JSON (answered BAD_FRAME, then RATE_LIMITED)
 *
 *   npx tsx bench/flood.ts [--frames 10000] [--samples 300] [--scenario reconnecting,one-socket,garbage] [--hold-off ms] [--no-pin]
 * --hold-off sets rateLimits.maxHoldOffMs (0: the server reads a flooding socket as fast as it writes).
 * Uses DATABASE_URL (a scratch database on that server) when set, else PGlite in memory; REDIS_URL when set.
 */
import { execFileSync, fork } from 'node:child_process'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createSigner } from 'fast-jwt'
import { WebSocket } from 'ws'
import { BenchClient, cpuMicrosSync, percentile, round, scratchDatabase, sleep, startServer } from './lib.js'

const SECRET = 'bench-secret-bench-secret-bench-secret'
/** A turn every 120 ms: each user of a pair sends 4 messages a second. */
const TURN_MS = 120
/** Pairs of users exchanging messages at once, each pair in a room of its own. */
const PAIRS = 8
/** The flooder's frames sent and not yet answered, at most. */
const IN_FLIGHT = 256
const sign = createSigner({ key: SECRET, expiresIn: 3600_000 })

type Scenario = 'reconnecting' | 'one-socket' | 'garbage'

interface FloodOrder { wsUrl: string, token: string, roomId: string, frames: number, garbage: boolean }
interface FloodReport { sent: number, acked: number, rateLimited: number, otherErrors: number, sockets: number, closes: Record<string, number>, ms: number }

// ---- the flooder (a child process of this script) ----------------------------------------------------

async function floodSocket (order: FloodOrder, report: FloodReport): Promise<void> {
  const socket = new WebSocket(order.wsUrl, { headers: { authorization: `Bearer ${order.token}` } })
  report.sockets += 1
  let sentHere = 0
  let answeredHere = 0
  await new Promise<void>((resolve) => {
    let ready = false
    const pump = (): void => {
      // As fast as the server answers: at most IN_FLIGHT frames unanswered, so that every frame sent is
      // one the server reads and handles (not bytes left in a socket buffer when it closes).
      while (report.sent < order.frames && socket.readyState === WebSocket.OPEN && sentHere - answeredHere < IN_FLIGHT) {
        report.sent += 1
        sentHere += 1
        socket.send(order.garbage ? `{not json ${report.sent}` : JSON.stringify({ event: 'message.send', id: `f${report.sent}`, data: { roomId: order.roomId, content: `flood ${report.sent}` } }))
      }
    }
    socket.on('message', (raw) => {
      const text = raw.toString()
      if (!ready) {
        if (text.startsWith('{"event":"session.ready"')) {
          ready = true
          pump()
        }
        return
      }
      if (text.startsWith('{"event":"ack"')) report.acked += 1
      else if (text.includes('"code":"RATE_LIMITED"')) report.rateLimited += 1
      else if (text.startsWith('{"event":"error"')) report.otherErrors += 1
      else return
      answeredHere += 1
      // Everything this socket sent was answered: the flood is over for it.
      if (report.sent >= order.frames && answeredHere >= sentHere) socket.close()
      else if (sentHere - answeredHere < IN_FLIGHT / 2) pump()
    })
    socket.on('close', (code) => {
      // Frames left unanswered when the server closed the socket are sent again on the next one: the
      // flood counts frames the server answered.
      report.sent -= sentHere - answeredHere
      report.closes[String(code)] = (report.closes[String(code)] ?? 0) + 1
      resolve()
    })
    socket.on('error', () => {})
  })
}

async function flooder (): Promise<void> {
  const ordered = new Promise<FloodOrder>((resolve) => process.once('message', (message) => resolve(message as FloodOrder)))
  // Loaded and compiled: the measurement starts only now, so the child's start-up is not in it.
  process.send?.('ready')
  const order = await ordered
  const report: FloodReport = { sent: 0, acked: 0, rateLimited: 0, otherErrors: 0, sockets: 0, closes: {}, ms: 0 }
  const started = performance.now()
  while (report.sent < order.frames) await floodSocket(order, report)
  report.ms = performance.now() - started
  process.send?.(report, () => process.exit(0))
}

// ---- the measurement ----------------------------------------------------------------------------------

interface Latencies { delivery: number[], ack: number[] }

/**
 * Two users take turns: each message is sent when the previous one arrived, a turn every TURN_MS, so that
 * each of them stays under the default send limit (10/s per socket) and is never refused.
 */
async function exchange (alice: BenchClient, bob: BenchClient, roomId: string, until: () => boolean, minimum: number): Promise<Latencies> {
  const result: Latencies = { delivery: [], ack: [] }
  const waiting = new Map<string, { sentAt: number, resolve: () => void }>()
  const onPush = (frame: { event: string, data: Record<string, unknown> }): void => {
    if (frame.event !== 'message.new') return
    const content = (frame.data.message as { content: string }).content
    const entry = waiting.get(content)
    if (entry === undefined) return
    waiting.delete(content)
    result.delivery.push(performance.now() - entry.sentAt)
    entry.resolve()
  }
  alice.onPush = onPush
  bob.onPush = onPush
  let turn = 0
  while (result.delivery.length < minimum || !until()) {
    const [from, text] = turn % 2 === 0 ? [alice, `a${turn}`] : [bob, `b${turn}`]
    turn += 1
    const delivered = new Promise<void>((resolve) => waiting.set(text, { sentAt: performance.now(), resolve }))
    const sentAt = performance.now()
    await from.request('message.send', { roomId, content: text })
    result.ack.push(performance.now() - sentAt)
    await delivered
    await sleep(Math.max(0, TURN_MS - (performance.now() - sentAt)))
  }
  return result
}

function summary (values: number[]): { n: number, p50: number, p99: number, max: number } {
  const sorted = [...values].sort((a, b) => a - b)
  return { n: sorted.length, p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted[sorted.length - 1] ?? NaN) }
}

async function scenario (name: Scenario, frames: number, samples: number): Promise<void> {
  const database = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '' ? await scratchDatabase(process.env.DATABASE_URL) : null
  const rateLimits: Record<string, number> = {}
  if (name === 'one-socket') rateLimits.floodRefusals = 1_000_000_000
  if (values['hold-off'] !== undefined) rateLimits.maxHoldOffMs = Number(values['hold-off'])
  const options = { rateLimits }
  const server = await startServer({
    DATABASE_URL: database?.url ?? 'memory://',
    JWT_SECRET: SECRET,
    CHAT_OPTIONS: JSON.stringify(options),
    ...(process.env.REDIS_URL !== undefined ? { REDIS_URL: process.env.REDIS_URL } : {}),
  })
  const wsUrl = `${server.url.replace(/^http/, 'ws')}/ws`
  pin(server.child.pid as number, 0)
  try {
    const pairs: Array<{ alice: BenchClient, bob: BenchClient, roomId: string }> = []
    for (let index = 0; index < PAIRS; index += 1) {
      const alice = await BenchClient.connect(wsUrl, sign({ sub: `alice${index}` }))
      const bob = await BenchClient.connect(wsUrl, sign({ sub: `bob${index}` }))
      const roomId = ((await alice.request('room.create', { name: `victims ${index}`, type: 'GROUP', memberIds: [`bob${index}`] })).room as { id: string }).id
      pairs.push({ alice, bob, roomId })
    }
    const mallory = await BenchClient.connect(wsUrl, sign({ sub: 'mallory' }))
    const floodRoom = ((await mallory.request('room.create', { name: 'flood', type: 'GROUP' })).room as { id: string }).id
    mallory.close()
    const everyPair = async (until: () => boolean, minimum: number): Promise<Latencies> => {
      const results = await Promise.all(pairs.map(({ alice, bob, roomId }) => exchange(alice, bob, roomId, until, minimum)))
      return { delivery: results.flatMap((result) => result.delivery), ack: results.flatMap((result) => result.ack) }
    }

    // Warm-up, then the baseline.
    await everyPair(() => true, 10)
    const quiet = await everyPair(() => true, Math.ceil(samples / PAIRS))

    const child = fork(fileURLToPath(import.meta.url), ['--role', 'flooder'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    await new Promise((resolve) => child.once('message', resolve))
    pin(child.pid as number, 1)
    await sleep(500)
    let report: FloodReport | null = null
    const done = new Promise<void>((resolve) => child.once('message', (message) => {
      report = message as FloodReport
      resolve()
    }))
    const cpuBefore = cpuMicrosSync(server.child.pid as number)
    const floodStarted = performance.now()
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.send({ wsUrl, token: sign({ sub: 'mallory' }), roomId: floodRoom, frames, garbage: name === 'garbage' } satisfies FloodOrder)
    let flooding = true
    void done.then(() => { flooding = false })
    const loud = await everyPair(() => !flooding, 4)
    await done
    const load = loadavg()[0] as number
    const serverCpu = (cpuMicrosSync(server.child.pid as number) - cpuBefore) / 1000 / (performance.now() - floodStarted)
    await exited
    // The quiet phase again, so that a change of the machine's load shows.
    const after = await everyPair(() => true, Math.ceil(samples / PAIRS))
    for (const { alice, bob } of pairs) {
      alice.close()
      bob.close()
    }

    const flood = report as unknown as FloodReport
    const rows = [
      { phase: 'no flood', ...summary(quiet.delivery), ack_p50: summary(quiet.ack).p50, ack_p99: summary(quiet.ack).p99 },
      { phase: 'during flood', ...summary(loud.delivery), ack_p50: summary(loud.ack).p50, ack_p99: summary(loud.ack).p99 },
      { phase: 'no flood, after', ...summary(after.delivery), ack_p50: summary(after.ack).p50, ack_p99: summary(after.ack).p99 },
    ]
    console.log(`\n## ${name}: ${flood.sent} frames in ${round(flood.ms / 1000)} s on ${flood.sockets} socket(s); ` +
      `acked ${flood.acked}, RATE_LIMITED ${flood.rateLimited}, other errors ${flood.otherErrors}, closes ${JSON.stringify(flood.closes)}; ` +
      `server CPU ${Math.round(serverCpu * 100)}% of a core during the flood; machine load average ${round(load)}`)
    console.log('other users\' messages, milliseconds (delivery: send -> the peer\'s message.new; ack: send -> ack)')
    console.table(rows)
  } finally {
    await server.stop()
    await database?.drop()
  }
}

/**
 * With --pin (default where taskset exists), the server gets CPU 0 and the clients (this process and
 * the flooder) CPU 1, as if the flooder were another machine: otherwise, on a 2-core box, the flooder's
 * own CPU use is what delays everyone. The database and Redis are not pinned.
 */
function pin (pid: number, cpu: number): void {
  if (!PIN) return
  try {
    execFileSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { stdio: 'ignore' })
  } catch {
    console.log(`(taskset failed for ${pid}; not pinned)`)
  }
}

const { values } = parseArgs({
  options: {
    pin: { type: 'boolean', default: true },
    'hold-off': { type: 'string' },
    role: { type: 'string', default: 'measure' },
    frames: { type: 'string', default: '10000' },
    samples: { type: 'string', default: '300' },
    scenario: { type: 'string', default: 'reconnecting,one-socket,garbage' },
  },
})

const PIN = values.pin && (() => {
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

if (values.role === 'flooder') {
  await flooder()
} else {
  pin(process.pid, 1)
  console.log(`flood bench: ${values.frames} frames per flood, node ${process.version}, database ${process.env.DATABASE_URL !== undefined ? 'postgres' : 'pglite (memory)'}, ` +
    `broker ${process.env.REDIS_URL !== undefined ? 'redis' : 'in-process'}, ${PIN ? 'server on CPU 0, clients on CPU 1' : 'not pinned'}, ` +
    `maxHoldOffMs ${values['hold-off'] ?? 'default (1000)'}`)
  for (const name of values.scenario.split(',') as Scenario[]) await scenario(name, Number(values.frames), Number(values.samples))
}
