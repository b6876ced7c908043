/**
 * Turns the raw results of one run into the summary numbers, the side-by-side markdown table, the
 * target checks (ratios within the run) and the chart's series.
 */
import type { FeedLag } from './feed-lag.js'
import type { ChartSeries } from './chart.js'
import type { ConnsResult, DurableResult, FanoutResult, FanoutStep, IdleResult, LowrateResult } from './loadgen/types.js'
import { median, round } from './lib.js'
import type { TargetKind } from './protocols.js'

export const TARGET_NAMES: Record<TargetKind, string> = { chat: 'this server', socketio: 'Socket.IO stack', relay: 'ws relay' }
export const TARGET_ORDER: TargetKind[] = ['chat', 'socketio', 'relay']

export interface RunResults {
  fanout: Partial<Record<TargetKind, FanoutResult>>
  /** The fan-out over two nodes through Redis (the relay has no second node). */
  cluster: Partial<Record<TargetKind, FanoutResult>>
  /** The fan-out room at steady low rates (20 and 50 msg/s); absent from runs older than the scenario. */
  lowrate?: Partial<Record<TargetKind, LowrateResult>>
  durable: Partial<Record<TargetKind, DurableResult & { rows: number | null, feedLag?: FeedLag }>>
  idle: Partial<Record<TargetKind, IdleResult>>
  /** Connects to one node, then the reconnect storm to a second when the first is killed (opt-in). */
  conns?: Partial<Record<TargetKind, ConnsResult>>
}

export interface FanoutSummary {
  /** Highest deliveries/s of a step whose p99 stayed at or under 100 ms (0 when none did). */
  deliveredAtP99: number
  /** Server CPU per delivery over the steps with p99 <= 100 ms, weighted by deliveries. */
  cpuMicrosPerDelivery: number
  /** The step whose latencies the table shows (see referenceRate). */
  reference: FanoutStep | null
  /** Highest rate reached before p99 passed 250 ms. */
  lastRate: number
}

export const P99_OK_MS = 100

function okSteps (result: FanoutResult): FanoutStep[] {
  return result.steps.filter((step) => step.p99 !== null && step.p99 <= P99_OK_MS)
}

/** The highest send rate at which every given run kept p99 <= 100 ms (else the first rate). */
export function referenceRate (results: Array<FanoutResult | undefined>): number | null {
  const present = results.filter((result): result is FanoutResult => result !== undefined)
  if (present.length === 0) return null
  const rates = present[0]?.steps.map((step) => step.rate) ?? []
  let best: number | null = rates[0] ?? null
  for (const rate of rates) {
    if (present.every((result) => okSteps(result).some((step) => step.rate === rate))) best = rate
  }
  return best
}

export function summarizeFanout (result: FanoutResult | undefined, rate: number | null): FanoutSummary | null {
  if (result === undefined) return null
  const ok = okSteps(result)
  const weight = ok.reduce((sum, step) => sum + step.deliveredPerSecond, 0)
  const cpu = weight === 0 ? NaN : ok.reduce((sum, step) => sum + step.cpuMicrosPerDelivery * step.deliveredPerSecond, 0) / weight
  return {
    deliveredAtP99: ok.reduce((max, step) => Math.max(max, step.deliveredPerSecond), 0),
    cpuMicrosPerDelivery: round(cpu, 2),
    reference: result.steps.find((step) => step.rate === rate) ?? null,
    lastRate: result.steps.at(-1)?.rate ?? 0,
  }
}

/**
 * The latency a second node adds: at each rate where one node and two nodes both kept p99 <= 100 ms,
 * two nodes' p50 minus one node's; the median of those differences (single steps are noisy here).
 */
export function medianP50Added (one: FanoutResult | undefined, two: FanoutResult | undefined): number {
  if (one === undefined || two === undefined) return NaN
  const differences: number[] = []
  for (const step of okSteps(two)) {
    const base = okSteps(one).find((candidate) => candidate.rate === step.rate)
    if (base !== undefined && step.p50 !== null && base.p50 !== null) differences.push(step.p50 - base.p50)
  }
  return round(median(differences), 2)
}

export interface TargetCheck {
  target: string
  measured: string
  limit: string
  ok: boolean | null
}

const fmt = (value: number | null | undefined, digits = 0): string => {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  return digits === 0 ? Math.round(value).toLocaleString('en-US') : value.toFixed(digits)
}
const ratio = (a: number | undefined | null, b: number | undefined | null): number => (a == null || b == null || b === 0 ? NaN : a / b)

export interface Report {
  reference: { fanout: number | null, cluster: Partial<Record<TargetKind, number | null>> }
  summary: {
    fanout: Partial<Record<TargetKind, FanoutSummary | null>>
    cluster: Partial<Record<TargetKind, FanoutSummary | null>>
    clusterP50Added: Partial<Record<TargetKind, number>>
  }
  checks: TargetCheck[]
  table: string
}

export function buildReport (results: RunResults): Report {
  const fanoutRate = referenceRate(TARGET_ORDER.map((kind) => results.fanout[kind]))
  const fanout: Partial<Record<TargetKind, FanoutSummary | null>> = {}
  for (const kind of TARGET_ORDER) fanout[kind] = summarizeFanout(results.fanout[kind], fanoutRate)
  // The second node is compared with one node of the same stack, at the highest rate both held.
  const clusterRates: Partial<Record<TargetKind, number | null>> = {}
  const cluster: Partial<Record<TargetKind, FanoutSummary | null>> = {}
  const single: Partial<Record<TargetKind, FanoutSummary | null>> = {}
  const p50Added: Partial<Record<TargetKind, number>> = {}
  for (const kind of ['chat', 'socketio'] as const) {
    const rate = referenceRate([results.fanout[kind], results.cluster[kind]])
    clusterRates[kind] = rate
    cluster[kind] = summarizeFanout(results.cluster[kind], rate)
    single[kind] = summarizeFanout(results.fanout[kind], rate)
    p50Added[kind] = medianP50Added(results.fanout[kind], results.cluster[kind])
  }

  const rows: string[][] = []
  const col = (pick: (kind: TargetKind) => string): string[] => TARGET_ORDER.map(pick)
  const refNote = fanoutRate === null ? '' : ` (at ${fanoutRate} msg/s = ~${fmt(fanoutRate * 499)} deliveries/s)`
  rows.push(['fan-out: deliveries/s at p99 ≤ 100 ms', ...col((kind) => fmt(fanout[kind]?.deliveredAtP99))])
  rows.push([`fan-out: latency p50 / p95 / p99 ms${refNote}`, ...col((kind) => {
    const step = fanout[kind]?.reference
    return step == null ? '—' : `${fmt(step.p50, 1)} / ${fmt(step.p95, 1)} / ${fmt(step.p99, 1)}`
  })])
  rows.push(['fan-out: server CPU µs per delivery', ...col((kind) => fmt(fanout[kind]?.cpuMicrosPerDelivery, 2))])
  const lowrate = results.lowrate ?? {}
  const lowrateRates = Object.values(lowrate)[0]?.steps.map((step) => step.rate) ?? []
  const lowrateStep = (kind: TargetKind, rate: number): FanoutStep | undefined => lowrate[kind]?.steps.find((step) => step.rate === rate)
  for (const rate of lowrateRates) {
    rows.push([`low rate ${rate} msg/s: latency p50 / p99 ms`, ...col((kind) => {
      const step = lowrateStep(kind, rate)
      return step === undefined ? '—' : `${fmt(step.p50, 1)} / ${fmt(step.p99, 1)}`
    })])
    rows.push([`low rate ${rate} msg/s: server CPU µs per delivery (% of a core)`, ...col((kind) => {
      const step = lowrateStep(kind, rate)
      return step === undefined ? '—' : `${fmt(step.cpuMicrosPerDelivery, 2)} (${fmt(step.cpuCores * 100, 1)}%)`
    })])
  }
  if (lowrateRates.length > 0) {
    rows.push(['low rate: % of a core after the room is set up, no traffic', ...col((kind) => {
      const result = lowrate[kind]
      return result === undefined ? '—' : `${fmt(result.afterSetupCpuCores * 100, 2)}%`
    })])
  }
  rows.push(['durable: acked/s (100 rooms of 2, 4 in flight)', ...col((kind) => fmt(results.durable[kind]?.ackedPerSecond))])
  rows.push(['durable: ack p50 / p99 ms', ...col((kind) => {
    const result = results.durable[kind]
    return result === undefined ? '—' : `${fmt(result.p50, 1)} / ${fmt(result.p99, 1)}`
  })])
  rows.push(['durable: server CPU µs per ack', ...col((kind) => fmt(results.durable[kind]?.cpuMicrosPerAck, 1))])
  rows.push(['durable: PostgreSQL CPU µs per ack', ...col((kind) => {
    const result = results.durable[kind]
    return result === undefined ? '—' : result.rows === null ? 'no database' : fmt(result.databaseCpuMicrosPerAck, 1)
  })])
  rows.push(['durable: rows in the database / acks', ...col((kind) => {
    const result = results.durable[kind]
    if (result === undefined) return '—'
    return result.rows === null ? `no database / ${fmt(result.totalAcked)}` : `${fmt(result.rows)} / ${fmt(result.totalAcked)}`
  })])
  rows.push(['idle: RSS per socket (5,000 sockets), left alone / after a full GC', ...col((kind) => {
    const result = results.idle[kind]
    return result === undefined ? '—' : `${fmt(result.rssPerSocketUntouched / 1024, 1)} / ${fmt(result.rssPerSocket / 1024, 1)} KiB`
  })])
  rows.push(['idle: % of a core, sockets open and no traffic', ...col((kind) => {
    const result = results.idle[kind]
    return result === undefined ? '—' : `${fmt(result.quietCpuCores * 100, 2)}%`
  })])
  rows.push(['2 nodes: deliveries/s at p99 ≤ 100 ms (1 node)', ...col((kind) => {
    if (kind === 'relay') return 'n/a'
    const two = cluster[kind]
    const one = single[kind]
    return two == null ? '—' : `${fmt(two.deliveredAtP99)} (${fmt(one?.deliveredAtP99)})`
  })])
  rows.push(['2 nodes: p50 added ms (median over the rates both held)', ...col((kind) => {
    if (kind === 'relay') return 'n/a'
    return cluster[kind] == null ? '—' : fmt(p50Added[kind], 1)
  })])
  rows.push(['2 nodes: server CPU µs per delivery (1 node)', ...col((kind) => {
    if (kind === 'relay') return 'n/a'
    return cluster[kind] == null ? '—' : `${fmt(cluster[kind]?.cpuMicrosPerDelivery, 2)} (${fmt(single[kind]?.cpuMicrosPerDelivery, 2)})`
  })])
  const conns = results.conns ?? {}
  if (Object.keys(conns).length > 0) {
    const clients = Object.values(conns)[0]?.clients ?? 0
    rows.push([`connects: sessions ready/s (${fmt(clients)} clients, 5 rooms each)`, ...col((kind) => fmt(conns[kind]?.first.connectsPerSecond))])
    rows.push(['connects: p50 / p99 ms to ready', ...col((kind) => {
      const result = conns[kind]
      return result === undefined ? '—' : `${fmt(result.first.p50, 1)} / ${fmt(result.first.p99, 1)}`
    })])
    rows.push(['connects: server CPU µs per connect (PostgreSQL)', ...col((kind) => {
      const result = conns[kind]
      return result === undefined ? '—' : `${fmt(result.first.cpuMicrosPerConnect)} (${fmt(result.first.databaseCpuMicrosPerConnect)})`
    })])
    rows.push(['storm: s from the kill until all resumed on node 2', ...col((kind) => {
      const result = conns[kind]
      return result === undefined ? '—' : `${fmt(result.storm.seconds, 2)}${result.storm.ready < result.storm.clients ? ` (${result.storm.ready}/${result.storm.clients})` : ''}`
    })])
    rows.push(['storm: server CPU µs per reconnect (PostgreSQL)', ...col((kind) => {
      const result = conns[kind]
      return result === undefined ? '—' : `${fmt(result.storm.cpuMicrosPerConnect)} (${fmt(result.storm.databaseCpuMicrosPerConnect)})`
    })])
  }
  const header = ['metric', ...TARGET_ORDER.map((kind) => TARGET_NAMES[kind])]
  const table = [header, header.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n')

  const checks: TargetCheck[] = []
  const check = (target: string, value: number, limit: string, ok: (value: number) => boolean, digits = 2, unit = ''): void => {
    checks.push({ target, measured: Number.isFinite(value) ? `${value.toFixed(digits)}${unit}` : '—', limit, ok: Number.isFinite(value) ? ok(value) : null })
  }
  check('fan-out CPU per delivery vs relay', ratio(fanout.chat?.cpuMicrosPerDelivery, fanout.relay?.cpuMicrosPerDelivery), '≤ 1.30x', (v) => v <= 1.3, 2, 'x')
  check('fan-out deliveries/s at p99 ≤ 100 ms vs relay', ratio(fanout.chat?.deliveredAtP99, fanout.relay?.deliveredAtP99) * 100, '≥ 90%', (v) => v >= 90, 0, '%')
  check('durable acked/s vs Socket.IO stack', ratio(results.durable.chat?.ackedPerSecond, results.durable.socketio?.ackedPerSecond), '≥ 4x', (v) => v >= 4, 2, 'x')
  check('durable acked/s vs relay ack round trip', ratio(results.durable.chat?.ackedPerSecond, results.durable.relay?.ackedPerSecond) * 100, '≥ 60%', (v) => v >= 60, 0, '%')
  check('durable ack p99', results.durable.chat?.p99 ?? NaN, '≤ 50 ms', (v) => v <= 50, 1, ' ms')
  const durableChat = results.durable.chat
  check('durable rows lost (acks − rows)', durableChat === undefined || durableChat.rows === null ? NaN : Math.max(0, durableChat.totalAcked - durableChat.rows), '0', (v) => v === 0, 0)
  for (const rate of lowrateRates) {
    const chat = lowrateStep('chat', rate)
    const relay = lowrateStep('relay', rate)
    check(`low rate ${rate} msg/s: CPU per delivery vs relay`, ratio(chat?.cpuMicrosPerDelivery, relay?.cpuMicrosPerDelivery), '≤ 1.20x', (v) => v <= 1.2, 2, 'x')
    const added = chat?.p50 == null || relay?.p50 == null ? NaN : chat.p50 - relay.p50
    check(`low rate ${rate} msg/s: p50 added to the relay's`, added, '≤ 3 ms', (v) => v <= 3, 1, ' ms')
  }
  // A reading at or under the baseline measured the garbage collector, not the sockets: no verdict.
  const perSocket = (value: number | undefined): number | undefined => value === undefined || value <= 0 ? undefined : value
  check('idle RSS per socket vs relay (after a full GC)', ratio(perSocket(results.idle.chat?.rssPerSocket), perSocket(results.idle.relay?.rssPerSocket)), '≤ 1.40x', (v) => v <= 1.4, 2, 'x')
  check('idle RSS per socket vs relay (left alone)', ratio(perSocket(results.idle.chat?.rssPerSocketUntouched), perSocket(results.idle.relay?.rssPerSocketUntouched)), '≤ 1.20x', (v) => v <= 1.2, 2, 'x')
  check('idle CPU, 5,000 sockets', (results.idle.chat?.quietCpuCores ?? NaN) * 100, '≤ 2% of a core', (v) => v <= 2, 2, '%')
  const loss = 100 * (1 - ratio(cluster.chat?.deliveredAtP99, single.chat?.deliveredAtP99))
  check('second node: throughput loss', loss, '≤ 20%', (v) => v <= 20, 0, '%')
  check('second node: p50 added', p50Added.chat ?? NaN, '≤ 2 ms', (v) => v <= 2, 1, ' ms')
  return { reference: { fanout: fanoutRate, cluster: clusterRates }, summary: { fanout, cluster, clusterP50Added: p50Added }, checks, table }
}

export function checksTable (checks: TargetCheck[]): string {
  const lines = ['| target (this server) | measured | limit | holds |', '| --- | --- | --- | --- |']
  for (const item of checks) lines.push(`| ${item.target} | ${item.measured} | ${item.limit} | ${item.ok === null ? '—' : item.ok ? 'yes' : '**no**'} |`)
  return lines.join('\n')
}

const COLORS: Record<string, string> = { chat: '#1f6feb', 'chat-2': '#58a6ff', socketio: '#d2691e', 'socketio-2': '#f0a060', relay: '#2da44e' }

export function chartSeries (results: RunResults): ChartSeries[] {
  const series: ChartSeries[] = []
  const add = (key: string, label: string, result: FanoutResult | undefined): void => {
    if (result === undefined) return
    series.push({ label, color: COLORS[key] ?? '#666', points: result.steps.map((step) => ({ x: step.deliveredPerSecond, p50: step.p50, p99: step.p99 })) })
  }
  add('relay', 'ws relay (ceiling)', results.fanout.relay)
  add('chat', 'this server, 1 node', results.fanout.chat)
  add('chat-2', 'this server, 2 nodes', results.cluster.chat)
  add('socketio', 'Socket.IO stack, 1 node', results.fanout.socketio)
  add('socketio-2', 'Socket.IO stack, 2 nodes', results.cluster.socketio)
  return series
}
