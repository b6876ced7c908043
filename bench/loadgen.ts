/**
 * The load generator: one process per scenario run, separate from the servers it drives. It reads its
 * configuration as JSON from BENCH_LOADGEN, reads the servers' CPU and RSS from /proc itself at the
 * window boundaries, and prints one line `RESULT {json}` on stdout (progress goes to stderr).
 *   BENCH_LOADGEN='{"scenario":"fanout","target":"relay","urls":["http://127.0.0.1:1234"],"pids":[42],…}' \
 *     node --import tsx bench/loadgen.ts
 * Every loop is bounded: by a step count, a duration or a number of sockets.
 *
 * The scenarios are in bench/loadgen/: fanout.ts, lowrate.ts, durable.ts, idle.ts, conns.ts; what they share
 * (connecting, tokens, the pool) in driver.ts, the fan-out room in room-load.ts, the servers' CPU and RSS in server-usage.ts, the configuration and
 * result types in types.ts.
 */
import { conns } from './loadgen/conns.js'
import { durable } from './loadgen/durable.js'
import { fanout } from './loadgen/fanout.js'
import { idle } from './loadgen/idle.js'
import { lowrate } from './loadgen/lowrate.js'
import type { LoadgenConfig, LoadgenResult } from './loadgen/types.js'

const raw = process.env.BENCH_LOADGEN
if (raw === undefined) throw new Error('loadgen: set BENCH_LOADGEN to the JSON of a scenario configuration')
const config = JSON.parse(raw) as LoadgenConfig
// A hard stop: whatever happens, this process ends.
setTimeout(() => {
  process.stderr.write('loadgen: hard time limit reached\n')
  process.exit(2)
}, 240_000).unref()
async function run (): Promise<LoadgenResult> {
  switch (config.scenario) {
    case 'fanout': return await fanout(config)
    case 'lowrate': return await lowrate(config)
    case 'durable': return await durable(config)
    case 'idle': return await idle(config)
    case 'conns': return await conns(config)
  }
}
const result = await run()
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`)
process.exit(0)
