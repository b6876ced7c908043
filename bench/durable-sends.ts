/**
 * Durable sends: 100 rooms of 2, each sender closed-loop with 4 sends in flight, for a fixed time.
 * Runs the server twice in one run, with group commit and without (maxBatch 1), against real Postgres,
 * and prints acked/s, ack latency p50/p99, server CPU per ack and rows written versus acks.
 *   npx tsx bench/durable-sends.ts [--seconds 10] [--rooms 100]
 */
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import { createSigner } from 'fast-jwt'
import { BenchClient, benchLimits, cpuMicros, percentile, round, scratchDatabase, startServer } from './lib.js'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, rooms: { type: 'string', default: '100' }, inflight: { type: 'string', default: '4' } } })
const SECONDS = Number(values.seconds)
const ROOMS = Number(values.rooms)
const IN_FLIGHT = Number(values.inflight)
const SECRET = 'bench-secret-bench-secret-bench-secret'
const PG = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const sign = createSigner({ key: SECRET, expiresIn: 3600_000 })

interface Result { variant: string, acked: number, ackedPerSecond: number, p50: number, p99: number, cpuMicrosPerAck: number, rows: number }

async function run (variant: string, groupCommit: { maxBatch: number, maxWaitMs: number }): Promise<Result> {
  const database = await scratchDatabase(PG)
  const server = await startServer({
    DATABASE_URL: database.url,
    JWT_SECRET: SECRET,
    CHAT_OPTIONS: JSON.stringify({ groupCommit, ...benchLimits() }),
  })
  const wsUrl = `${server.url.replace(/^http/, 'ws')}/ws`
  try {
    const senders: Array<{ client: BenchClient, roomId: string }> = []
    const receivers: BenchClient[] = []
    for (let index = 0; index < ROOMS; index += 1) {
      const sender = await BenchClient.connect(wsUrl, sign({ sub: `s${index}` }))
      const receiver = await BenchClient.connect(wsUrl, sign({ sub: `r${index}` }))
      const created = await sender.request('room.create', { name: `bench ${index}`, type: 'GROUP', memberIds: [`r${index}`] })
      senders.push({ client: sender, roomId: (created.room as { id: string }).id })
      receivers.push(receiver)
    }
    const latencies: number[] = []
    let acked = 0
    let running = true
    const cpuBefore = await cpuMicros(server.child.pid as number)
    const started = performance.now()
    const loops = senders.flatMap(({ client, roomId }) => Array.from({ length: IN_FLIGHT }, async (_, lane) => {
      let sequence = 0
      while (running) {
        const sentAt = performance.now()
        await client.request('message.send', { roomId, content: `lane ${lane} #${sequence}`, clientMsgId: `${lane}-${sequence++}` })
        latencies.push(performance.now() - sentAt)
        acked += 1
      }
    }))
    await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000))
    running = false
    await Promise.all(loops)
    const elapsed = (performance.now() - started) / 1000
    const cpu = await cpuMicros(server.child.pid as number) - cpuBefore
    for (const { client } of senders) client.close()
    for (const client of receivers) client.close()
    const sql = postgres(database.url, { max: 1, onnotice: () => {} })
    const [counted] = await sql<Array<{ rows: number }>>`select count(*)::int as rows from chat.messages`
    const rows = counted?.rows ?? 0
    await sql.end()
    latencies.sort((a, b) => a - b)
    return { variant, acked, ackedPerSecond: round(acked / elapsed, 0), p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), cpuMicrosPerAck: round(cpu / acked, 0), rows }
  } finally {
    await server.stop()
    await database.drop()
  }
}

const results: Result[] = []
results.push(await run('group commit (maxBatch 256, 2 ms)', { maxBatch: 256, maxWaitMs: 2 }))
results.push(await run('no group commit (maxBatch 1)', { maxBatch: 1, maxWaitMs: 0 }))
console.log(`\nDurable sends: ${ROOMS} rooms of 2, ${IN_FLIGHT} in flight per sender, ${SECONDS} s, ${new Date().toISOString().slice(0, 10)}\n`)
console.log('| variant | acked/s | ack p50 ms | ack p99 ms | server CPU µs/ack | acks | rows |')
console.log('| --- | --- | --- | --- | --- | --- | --- |')
for (const result of results) console.log(`| ${result.variant} | ${result.ackedPerSecond} | ${result.p50} | ${result.p99} | ${result.cpuMicrosPerAck} | ${result.acked} | ${result.rows} |`)
console.log('\n' + JSON.stringify(results))
