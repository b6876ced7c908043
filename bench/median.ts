/**
 * The medians of several runs: reads the raw JSON of `npm run bench` runs and prints, per metric and
 * per target ratio, the median over the runs (each ratio is taken within its own run first, which is
 * what cancels the drift of a shared machine), plus every run's value.
 *   node --import tsx bench/median.ts bench/results/2026-….json bench/results/2026-….json …
 */
import { readFileSync } from 'node:fs'
import { median, round } from './lib.js'
import { buildReport, P99_OK_MS, type RunResults } from './report.js'
import type { FanoutStep } from './loadgen/types.js'
import type { TargetKind } from './protocols.js'

interface RawRun {
  date: string
  results: RunResults
}

const files = process.argv.slice(2)
if (files.length === 0) {
  process.stderr.write('usage: bench/median.ts <results.json>…\n')
  process.exit(1)
}
const runs = files.map((file) => JSON.parse(readFileSync(file, 'utf8')) as RawRun)

type Row = { label: string, digits: number, values: Array<number | null> }

function valuesOf (pick: (results: RunResults, report: ReturnType<typeof buildReport>) => number | null | undefined): Array<number | null> {
  return runs.map((run) => {
    const value = pick(run.results, buildReport(run.results))
    return value === undefined || value === null || !Number.isFinite(value) ? null : value
  })
}

const rows: Row[] = []
const add = (label: string, digits: number, pick: Parameters<typeof valuesOf>[0]): void => { rows.push({ label, digits, values: valuesOf(pick) }) }
const targets: TargetKind[] = ['chat', 'socketio', 'relay']
const NAMES: Record<TargetKind, string> = { chat: 'this server', socketio: 'Socket.IO', relay: 'ws relay' }

for (const kind of targets) add(`fan-out deliveries/s at p99 ≤ ${P99_OK_MS} ms, ${NAMES[kind]}`, 0, (_results, report) => report.summary.fanout[kind]?.deliveredAtP99)
for (const kind of targets) add(`fan-out CPU µs/delivery, ${NAMES[kind]}`, 2, (_results, report) => report.summary.fanout[kind]?.cpuMicrosPerDelivery)
// A run's common rate (the highest all targets held) moves from run to run as the Socket.IO stack's
// highest step comes and goes; the medians read every run at the lowest of them, so they compare one rate.
const commonRates = runs.map((run) => buildReport(run.results).reference.fanout).filter((rate): rate is number => rate !== null)
const commonRate = commonRates.length === 0 ? null : Math.min(...commonRates)
const atCommonRate = (results: RunResults, kind: TargetKind): FanoutStep | undefined => results.fanout[kind]?.steps.find((step) => step.rate === commonRate)
for (const kind of targets) add(`fan-out p50 ms at ${commonRate ?? '—'} msg/s (the runs' lowest common rate), ${NAMES[kind]}`, 1, (results) => atCommonRate(results, kind)?.p50)
for (const kind of targets) add(`fan-out p99 ms at ${commonRate ?? '—'} msg/s (the runs' lowest common rate), ${NAMES[kind]}`, 1, (results) => atCommonRate(results, kind)?.p99)
for (const kind of targets) add(`durable acked/s, ${NAMES[kind]}`, 0, (results) => results.durable[kind]?.ackedPerSecond)
for (const kind of targets) add(`durable ack p50 ms, ${NAMES[kind]}`, 1, (results) => results.durable[kind]?.p50)
for (const kind of targets) add(`durable ack p99 ms, ${NAMES[kind]}`, 1, (results) => results.durable[kind]?.p99)
for (const kind of targets) add(`durable CPU µs/ack, ${NAMES[kind]}`, 1, (results) => results.durable[kind]?.cpuMicrosPerAck)
for (const kind of ['chat', 'socketio'] as const) add(`durable PostgreSQL CPU µs/ack, ${NAMES[kind]}`, 1, (results) => results.durable[kind]?.databaseCpuMicrosPerAck)
for (const kind of ['chat', 'socketio'] as const) {
  add(`durable acks − rows, ${NAMES[kind]}`, 0, (results) => {
    const result = results.durable[kind]
    return result === undefined || result.rows === null ? null : result.totalAcked - result.rows
  })
}
if (runs.some((run) => run.results.lowrate !== undefined)) {
  for (const rate of [20, 50]) {
    const stepOf = (results: RunResults, kind: TargetKind): FanoutStep | undefined => results.lowrate?.[kind]?.steps.find((step) => step.rate === rate)
    for (const kind of targets) add(`low rate ${rate}/s CPU µs/delivery, ${NAMES[kind]}`, 2, (results) => stepOf(results, kind)?.cpuMicrosPerDelivery)
    for (const kind of targets) add(`low rate ${rate}/s p50 ms, ${NAMES[kind]}`, 1, (results) => stepOf(results, kind)?.p50)
    for (const kind of targets) add(`low rate ${rate}/s p99 ms, ${NAMES[kind]}`, 1, (results) => stepOf(results, kind)?.p99)
  }
  for (const kind of targets) add(`low rate % of a core after set-up, ${NAMES[kind]}`, 2, (results) => (results.lowrate?.[kind]?.afterSetupCpuCores ?? NaN) * 100)
}
for (const kind of targets) add(`idle KiB RSS/socket after a GC, ${NAMES[kind]}`, 1, (results) => (results.idle[kind]?.rssPerSocket ?? NaN) / 1024)
for (const kind of targets) add(`idle KiB RSS/socket left alone, ${NAMES[kind]}`, 1, (results) => (results.idle[kind]?.rssPerSocketUntouched ?? NaN) / 1024)
for (const kind of targets) add(`idle % of a core, ${NAMES[kind]}`, 2, (results) => (results.idle[kind]?.quietCpuCores ?? NaN) * 100)
for (const kind of ['chat', 'socketio'] as const) {
  add(`2 nodes deliveries/s at p99 ≤ ${P99_OK_MS} ms, ${NAMES[kind]}`, 0, (_results, report) => report.summary.cluster[kind]?.deliveredAtP99)
  add(`2 nodes CPU µs/delivery, ${NAMES[kind]}`, 2, (_results, report) => report.summary.cluster[kind]?.cpuMicrosPerDelivery)
  add(`2 nodes p50 added ms, ${NAMES[kind]}`, 1, (_results, report) => report.summary.clusterP50Added[kind])
}
if (runs.some((run) => run.results.conns !== undefined)) {
  for (const kind of targets) add(`connects ready/s, ${NAMES[kind]}`, 0, (results) => results.conns?.[kind]?.first.connectsPerSecond)
  for (const kind of targets) add(`connects CPU µs/connect, ${NAMES[kind]}`, 0, (results) => results.conns?.[kind]?.first.cpuMicrosPerConnect)
  for (const kind of targets) add(`storm s until all resumed, ${NAMES[kind]}`, 2, (results) => results.conns?.[kind]?.storm.seconds)
  for (const kind of targets) add(`storm CPU µs/reconnect, ${NAMES[kind]}`, 0, (results) => results.conns?.[kind]?.storm.cpuMicrosPerConnect)
  for (const kind of ['socketio', 'relay'] as const) {
    add(`connects ready/s, this server ÷ ${NAMES[kind]}`, 2, (results) => {
      const conns = results.conns
      return conns?.chat === undefined || conns[kind] === undefined ? null : conns.chat.first.connectsPerSecond / (conns[kind]?.first.connectsPerSecond ?? NaN)
    })
  }
}

const lines = ['| metric | median | runs |', '| --- | --- | --- |']
const show = (value: number | null, digits: number): string => value === null ? '—' : digits === 0 ? Math.round(value).toLocaleString('en-US') : value.toFixed(digits)
for (const row of rows) {
  const present = row.values.filter((value): value is number => value !== null)
  lines.push(`| ${row.label} | ${present.length === 0 ? '—' : show(median(present), row.digits)} | ${row.values.map((value) => show(value, row.digits)).join(', ')} |`)
}

// The target checks: each run's own ratio, then the median of those.
const checkLines = ['| target (this server) | median | runs | limit | holds (median) |', '| --- | --- | --- | --- | --- |']
const reports = runs.map((run) => buildReport(run.results))
// By name: runs with other scenarios have other checks.
const names = [...new Set(reports.flatMap((report) => report.checks.map((check) => check.target)))]
for (const name of names) {
  const measured = reports.map((report) => report.checks.find((check) => check.target === name)?.measured ?? '—')
  const numbers = measured.map((text) => Number.parseFloat(text)).filter((value) => Number.isFinite(value))
  const limit = reports.flatMap((report) => report.checks).find((check) => check.target === name)?.limit ?? ''
  const middle = numbers.length === 0 ? NaN : median(numbers)
  const unit = measured.find((text) => text !== '—')?.replace(/^[-\d.]+/, '') ?? ''
  const bound = Number.parseFloat(limit.replace(/[^\d.]/g, ''))
  const ok = !Number.isFinite(middle) ? null : limit.startsWith('≤') ? middle <= bound : limit.startsWith('≥') ? middle >= bound : middle === bound
  checkLines.push(`| ${name} | ${Number.isFinite(middle) ? `${round(middle, 2)}${unit}` : '—'} | ${measured.join(', ')} | ${limit} | ${ok === null ? '—' : ok ? 'yes' : '**no**'} |`)
}

process.stdout.write(`Medians of ${runs.length} runs (${runs.map((run) => run.date.slice(0, 16)).join(', ')})\n\n${lines.join('\n')}\n\n${checkLines.join('\n')}\n`)
