/**
 * The durable scenario: rooms of two, each sender closed-loop with `inFlight` sends outstanding, for a
 * fixed window: acks per second, ack latency, and the servers' and PostgreSQL's CPU per ack.
 */
import { percentile, postgresCpuMicros, round, sleep } from '../lib.js'
import { PROTOCOLS } from '../protocols.js'
import { connectWithRetry, filler, log, pool, tokenSigner } from './driver.js'
import { cpuOf } from './server-usage.js'
import type { DurableConfig, DurableResult } from './types.js'

export async function durable (config: DurableConfig): Promise<DurableResult> {
  const protocol = PROTOCOLS[config.target]
  const token = tokenSigner(config.secret)
  const pairs = await pool(Array.from({ length: config.rooms }, (_, index) => index), 20, async (index) => {
    const senderId = `${config.tag}-s${index}`
    const receiverId = `${config.tag}-r${index}`
    const url = config.urls[index % config.urls.length] as string
    const sender = await connectWithRetry(protocol, url, senderId, token(senderId))
    const room = await protocol.createRoom(sender, `durable ${config.tag} ${index}`, [receiverId])
    const receiver = await connectWithRetry(protocol, url, receiverId, token(receiverId))
    await protocol.join(sender, room)
    await protocol.join(receiver, room)
    return { sender, receiver, room }
  })
  log(`${pairs.length} rooms of 2 ready`)
  let pushes = 0
  for (const { receiver } of pairs) receiver.onPush = () => { pushes += 1 }

  const text = filler(config.contentLength)
  let phase: 'warm' | 'measure' | 'stop' = 'warm'
  let windowStart = 0
  let windowEnd = Infinity
  let totalAcked = 0
  let acked = 0
  let errors = 0
  const latencies: number[] = []
  const loops = pairs.flatMap(({ sender, room }, pairIndex) => Array.from({ length: config.inFlight }, async (_, lane) => {
    let sequence = 0
    while (phase !== 'stop') {
      const sentAt = performance.now()
      try {
        await sender.send(room, `${sentAt.toFixed(3)}|${text}`, `${pairIndex}-${lane}-${sequence++}`)
      } catch {
        errors += 1
        if (errors > 1000) break
        continue
      }
      const now = performance.now()
      totalAcked += 1
      if (sentAt >= windowStart && now <= windowEnd && phase === 'measure') {
        acked += 1
        latencies.push(now - sentAt)
      }
    }
  }))
  await sleep(config.warmMs)
  phase = 'measure'
  const cpuBefore = cpuOf(config.pids)
  const databaseCpuBefore = postgresCpuMicros()
  windowStart = performance.now()
  await sleep(config.durationMs)
  windowEnd = performance.now()
  const cpu = cpuOf(config.pids) - cpuBefore
  const databaseCpu = postgresCpuMicros() - databaseCpuBefore
  phase = 'stop'
  await Promise.race([Promise.all(loops), sleep(15000)])
  await sleep(300)
  for (const { sender, receiver } of pairs) {
    sender.close()
    receiver.close()
  }
  latencies.sort((a, b) => a - b)
  const seconds = (windowEnd - windowStart) / 1000
  return {
    scenario: 'durable',
    rooms: config.rooms,
    inFlight: config.inFlight,
    seconds: round(seconds, 2),
    ackedPerSecond: round(acked / seconds, 0),
    p50: round(percentile(latencies, 50)),
    p99: round(percentile(latencies, 99)),
    cpuMicrosPerAck: round(cpu / Math.max(1, acked), 1),
    databaseCpuMicrosPerAck: round(databaseCpu / Math.max(1, acked), 1),
    totalAcked,
    errors,
    pushes,
  }
}
