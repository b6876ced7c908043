/**
 * `npm run bench`: every scenario against every target in one run, each target started fresh in its
 * own process and driven by a load generator in another (bench/loadgen.ts), loopback only, bounded in
 * time. Prints the side-by-side table and the raw JSON, writes bench/results/<date>.json and
 * bench/results/latest.svg. See docs/benchmarks.md.
 *   npm run bench [-- --scenarios fanout,cluster,lowrate,durable,idle,conns] [--targets chat,socketio,relay]
 *                 [--cpu-prof | --perf-map] [--quick] [--readme] [--feed] [--conns-clients 5000]
 * conns (connects and the reconnect storm) runs only when named in --scenarios.
 * --feed runs the chat target with the event feed on (the Redis Stream sink) and, in the durable
 * scenario, samples the feed's lag (bench/feed-lag.ts).
 * Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test: a scratch
 * database per server start, dropped at the end) and Redis (BENCH_REDIS_URL, default
 * redis://127.0.0.1:6379, a random prefix per start).
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import { lineChart } from './chart.js'
import { FeedLagSampler } from './feed-lag.js'
import { benchLimits, ROOT, round, scratchDatabase, startProcess, startServer, type Started } from './lib.js'
import type { ConnsConfig, DurableConfig, FanoutConfig, IdleConfig, LoadgenConfig, LoadgenResult, LowrateConfig } from './loadgen/types.js'
import type { TargetKind } from './protocols.js'
import { buildReport, chartSeries, checksTable, TARGET_NAMES, type RunResults } from './report.js'

const { values } = parseArgs({
  options: {
    scenarios: { type: 'string', default: 'fanout,cluster,lowrate,durable,idle' },
    targets: { type: 'string', default: 'relay,chat,socketio' },
    'cpu-prof': { type: 'boolean', default: false },
    'perf-map': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    readme: { type: 'boolean', default: false },
    feed: { type: 'boolean', default: false },
    'conns-clients': { type: 'string', default: '2000' },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
  },
})
const scenarios = new Set(values.scenarios.split(','))
const targets = values.targets.split(',').filter((name): name is TargetKind => name === 'chat' || name === 'socketio' || name === 'relay')
const quick = values.quick
const PG = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const REDIS = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const SECRET = `bench-${randomBytes(16).toString('hex')}`
const BUDGET_MS = 9.5 * 60_000
const began = performance.now()
const runId = randomBytes(3).toString('hex')
const outDir = values.out
mkdirSync(outDir, { recursive: true })

// Scenario parameters: the issue's shapes, durations shrunk to fit the 10-minute budget on 2 cores.
const FANOUT = {
  members: 500,
  senders: 5,
  // Aggregate messages/s; each delivers to 499 members. Stepped up until p99 passes 250 ms.
  rates: quick ? [20, 60, 150] : [20, 40, 70, 110, 160, 230, 320, 450, 650, 900],
  warmMs: 500,
  stepMs: quick ? 1500 : 3000,
  drainMs: 1500,
  stopP99Ms: 250,
  sampleEvery: 10,
  contentLength: 100,
}
// Ordinary load: the fan-out room at a steady chat's rates, each held long enough for a stable CPU reading.
const LOWRATE = {
  members: 500,
  senders: 5,
  rates: [20, 50],
  afterSetupMs: quick ? 3000 : 10_000,
  warmMs: 1000,
  stepMs: quick ? 4000 : 10_000,
  drainMs: 1500,
  sampleEvery: 10,
  contentLength: 100,
}
const DURABLE = { rooms: 100, inFlight: 4, warmMs: 1000, durationMs: quick ? 3000 : 10_000, contentLength: 100 }
const IDLE = { sockets: quick ? 1000 : 5000, concurrency: 100, settleMs: 15_000, quietMs: quick ? 10_000 : 30_000 }
// Bounded: at most 5,000 clients (a multiple of the room size), each in 5 rooms of 50.
const CONNS_ROOM_SIZE = 50
const CONNS = {
  clients: Math.min(5000, Math.max(CONNS_ROOM_SIZE, Math.round((quick ? 500 : Number(values['conns-clients']) || 2000) / CONNS_ROOM_SIZE) * CONNS_ROOM_SIZE)),
  roomsPerUser: 5,
  roomSize: CONNS_ROOM_SIZE,
  concurrency: 200,
  stormLimitMs: 60_000,
}

const BENCH_LIMITS = benchLimits()
const FEED_OPTIONS = values.feed ? { feed: { redisStream: true } } : {}

const log = (message: string): void => {
  process.stderr.write(`[bench ${round((performance.now() - began) / 1000, 0)}s] ${message}\n`)
}

interface Cluster {
  urls: string[]
  pids: number[]
  database: { url: string, drop (): Promise<void> } | null
  stop (): Promise<void>
}

const scratch: Array<{ drop (): Promise<void> }> = []

/** Starts `nodes` fresh server processes of a target (sharing one scratch database and Redis prefix). */
async function startTarget (target: TargetKind, nodes: number): Promise<Cluster> {
  const started: Started[] = []
  let database: Cluster['database'] = null
  const prefix = `bench-${randomBytes(4).toString('hex')}:`
  // --cpu-prof samples the JavaScript thread by wall clock: time the thread spends descheduled (a write
  // to a loopback socket wakes the load generator, which may take the core) lands on whatever frame it
  // was in. --perf-map lets `perf record` (CPU time, kernel included) name the JIT's frames instead.
  const profile = target !== 'chat'
    ? {}
    : values['cpu-prof']
      ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', join(outDir, 'profiles')] }
      : values['perf-map'] ? { nodeArgs: ['--perf-basic-prof-only-functions'] } : {}
  try {
    if (target !== 'relay') {
      database = await scratchDatabase(PG)
      scratch.push(database)
    }
    for (let index = 0; index < nodes; index += 1) {
      if (target === 'relay') {
        started.push(await startProcess('bench/ws-relay.ts', {}))
      } else if (target === 'socketio') {
        started.push(await startProcess('bench/socketio-server.ts', {
          DATABASE_URL: database?.url ?? '', REDIS_URL: REDIS, REDIS_PREFIX: prefix, JWT_SECRET: SECRET,
        }))
      } else {
        started.push(await startServer({
          DATABASE_URL: database?.url ?? '',
          REDIS_URL: REDIS,
          JWT_SECRET: SECRET,
          NODE_ENV: 'production',
          LOG_LEVEL: 'info',
          CHAT_OPTIONS: JSON.stringify({ redisPrefix: prefix, nodeId: `bench-${index}`, ...BENCH_LIMITS, ...FEED_OPTIONS }),
        }, profile))
      }
    }
  } catch (error) {
    await Promise.all(started.map((server) => server.stop()))
    throw error
  }
  return {
    urls: started.map((server) => server.url),
    pids: started.map((server) => server.child.pid as number),
    database,
    async stop () {
      await Promise.all(started.map((server) => server.stop()))
    },
  }
}

/** Runs the load generator in its own process and returns its result line. */
async function loadgen (config: LoadgenConfig): Promise<LoadgenResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/loadgen.ts'], {
    cwd: ROOT,
    env: { ...process.env, BENCH_LOADGEN: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  const line = output.split('\n').find((text) => text.startsWith('RESULT '))
  if (line === undefined) throw new Error(`loadgen (${config.scenario}, ${config.target}) exited with ${String(code)} and no result`)
  return JSON.parse(line.slice('RESULT '.length)) as LoadgenResult
}

async function countRows (target: TargetKind, url: string): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const [row] = target === 'chat'
      ? await sql<Array<{ n: number }>>`select count(*)::int as n from chat.messages`
      : await sql<Array<{ n: number }>>`select count(*)::int as n from sio_messages`
    return row?.n ?? 0
  } finally {
    await sql.end()
  }
}

const connsResults: NonNullable<RunResults['conns']> = {}
const lowrateResults: NonNullable<RunResults['lowrate']> = {}
const results: RunResults = { fanout: {}, cluster: {}, lowrate: lowrateResults, durable: {}, idle: {}, conns: connsResults }
const skipped: string[] = []

async function one (scenario: keyof RunResults, target: TargetKind, nodes: number): Promise<void> {
  if (performance.now() - began > BUDGET_MS) {
    skipped.push(`${scenario}/${target}`)
    log(`skipping ${scenario} on ${TARGET_NAMES[target]}: out of time`)
    return
  }
  log(`${scenario} on ${TARGET_NAMES[target]}, ${nodes} node(s)`)
  const cluster = await startTarget(target, nodes)
  const common = { target, urls: cluster.urls, pids: cluster.pids, secret: SECRET, tag: `${runId}${scenario[0] ?? ''}` }
  try {
    if (scenario === 'fanout' || scenario === 'cluster') {
      const config: FanoutConfig = { scenario: 'fanout', ...common, ...FANOUT }
      results[scenario][target] = await loadgen(config) as never
    } else if (scenario === 'lowrate') {
      const config: LowrateConfig = { scenario: 'lowrate', ...common, ...LOWRATE }
      const result = await loadgen(config)
      if (result.scenario !== 'lowrate') throw new Error('unexpected result')
      lowrateResults[target] = result
    } else if (scenario === 'durable') {
      const config: DurableConfig = { scenario: 'durable', ...common, ...DURABLE }
      const sampler = values.feed && target === 'chat' && cluster.database !== null ? new FeedLagSampler(cluster.database.url) : null
      sampler?.start()
      const result = await loadgen(config)
      if (result.scenario !== 'durable') throw new Error('unexpected result')
      const feedLag = await sampler?.finish()
      await cluster.stop()
      const rows = cluster.database === null ? null : await countRows(target, cluster.database.url)
      results.durable[target] = { ...result, rows, ...(feedLag !== undefined ? { feedLag } : {}) }
      log(`durable on ${TARGET_NAMES[target]}: ${result.ackedPerSecond} acked/s, p50 ${result.p50} p99 ${result.p99} ms, ${result.cpuMicrosPerAck} µs/ack (PostgreSQL ${result.databaseCpuMicrosPerAck}), ${rows ?? '—'} rows / ${result.totalAcked} acks`)
      if (feedLag !== undefined) log(`feed lag (Redis Stream sink): oldest undelivered event p50 ${feedLag.ageP50Ms} p99 ${feedLag.ageP99Ms} max ${feedLag.ageMaxMs} ms, at most ${feedLag.behindMax} entries behind, caught up ${feedLag.drainMs} ms after the load, ${feedLag.delivered} delivered`)
    } else if (scenario === 'conns') {
      const config: ConnsConfig = { scenario: 'conns', ...common, ...CONNS, databaseUrl: cluster.database?.url ?? null }
      const result = await loadgen(config)
      if (result.scenario !== 'conns') throw new Error('unexpected result')
      connsResults[target] = result
    } else {
      const config: IdleConfig = { scenario: 'idle', ...common, ...IDLE }
      const result = await loadgen(config)
      if (result.scenario !== 'idle') throw new Error('unexpected result')
      results.idle[target] = result
      log(`idle on ${TARGET_NAMES[target]}: ${result.connected}/${result.sockets} sockets, ${round(result.rssPerSocket / 1024, 1)} KiB per socket after a GC, ${round(result.rssPerSocketUntouched / 1024, 1)} KiB left alone, ${round(result.quietCpuCores * 100, 2)}% of a core when quiet`)
    }
  } finally {
    await cluster.stop()
  }
}

async function cleanup (): Promise<void> {
  await Promise.all(scratch.splice(0).map((database) => database.drop().catch(() => {})))
}
process.once('SIGINT', () => { void cleanup().finally(() => process.exit(130)) })

try {
  if (scenarios.has('fanout')) for (const target of targets) await one('fanout', target, 1)
  if (scenarios.has('cluster')) for (const target of targets) if (target !== 'relay') await one('cluster', target, 2)
  if (scenarios.has('lowrate')) for (const target of targets) await one('lowrate', target, 1)
  if (scenarios.has('durable')) for (const target of targets) await one('durable', target, 1)
  if (scenarios.has('idle')) for (const target of targets) await one('idle', target, 1)
  // Two nodes of every target: the first takes the clients, the second the storm when the first is killed.
  if (scenarios.has('conns')) for (const target of targets) await one('conns', target, 2)
} finally {
  await cleanup()
}

const date = new Date().toISOString()
const report = buildReport(results)
const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', loadavg: loadavg().map((value) => round(value, 2)), node: process.version }
const raw = {
  date,
  durationSeconds: round((performance.now() - began) / 1000, 0),
  machine,
  parameters: { fanout: FANOUT, lowrate: LOWRATE, durable: DURABLE, idle: IDLE, conns: CONNS, quick, chatOptions: { ...BENCH_LIMITS, ...FEED_OPTIONS } },
  skipped,
  results,
  summary: report.summary,
  reference: report.reference,
  checks: report.checks,
}
const stamp = date.replace(/:/g, '-').slice(0, 19)
writeFileSync(join(outDir, `${stamp}.json`), JSON.stringify(raw, null, 2) + '\n')
const svg = lineChart(chartSeries(results), {
  title: 'Fan-out latency against load',
  subtitle: `1 room × 500 members, 5 senders, loopback, ${machine.cpus} cores, ${date.slice(0, 10)}`,
  guides: [{ ms: 100, label: 'p99 100 ms' }, { ms: 250, label: 'stop: p99 250 ms' }],
})
writeFileSync(join(outDir, 'latest.svg'), svg)
// --readme: also the copy the README shows (committed, unlike the rest of bench/results).
if (values.readme) {
  writeFileSync(join(outDir, 'readme.svg'), svg)
  writeFileSync(join(outDir, 'readme.json'), JSON.stringify(raw, null, 2) + '\n')
}

const markdown = [
  `### Results, ${date.slice(0, 10)} (${machine.cpus} cores, Node ${machine.node}, load average at the end ${machine.loadavg.join(' ')})`,
  '',
  report.table,
  '',
  checksTable(report.checks),
  '',
].join('\n')
process.stdout.write(`\n${markdown}\n`)
process.stdout.write(`Raw results: ${join(outDir, `${stamp}.json`)}; chart: ${join(outDir, 'latest.svg')}${skipped.length > 0 ? `; skipped for time: ${skipped.join(', ')}` : ''}\n\n`)
process.stdout.write(`${JSON.stringify(raw)}\n`)
