/**
 * The fan-out scenario: one room of `members` sockets spread over the nodes, `senders` of them sending
 * at aggregate rates stepped up in order; per step, the latency from a send to the sampled receivers and
 * the servers' CPU per delivery, until the p99 passes `stopP99Ms`.
 */
import { percentile, round, sleep } from '../lib.js'
import { PROTOCOLS, sentAtOf, type Peer } from '../protocols.js'
import { connectWithRetry, filler, log, pool, tokenSigner } from './driver.js'
import { cpuOf } from './server-usage.js'
import { checkSocketIoWire } from './socketio-check.js'
import type { FanoutConfig, FanoutResult, FanoutStep } from './types.js'

export async function fanout (config: FanoutConfig): Promise<FanoutResult> {
  const protocol = PROTOCOLS[config.target]
  const token = tokenSigner(config.secret)
  if (config.target === 'socketio') await checkSocketIoWire(config.urls[0] as string, token, config.tag)
  const ids = Array.from({ length: config.members }, (_, index) => `${config.tag}-m${index}`)
  const urlOf = (index: number): string => config.urls[index % config.urls.length] as string
  const owner = await connectWithRetry(protocol, urlOf(0), ids[0] as string, token(ids[0] as string))
  const room = await protocol.createRoom(owner, `fanout ${config.tag}`, ids.slice(1))
  const started = performance.now()
  const rest = await pool(ids.slice(1), 50, async (id, index) => await connectWithRetry(protocol, urlOf(index + 1), id, token(id)))
  const peers = [owner, ...rest]
  await pool(peers, 50, async (peer) => await protocol.join(peer, room))
  log(`${peers.length} members connected and in the room in ${round((performance.now() - started) / 1000, 1)} s over ${config.urls.length} node(s)`)

  let deliveries = 0
  let windowStart = Infinity
  let windowEnd = Infinity
  let samples: number[] = []
  let closedSockets = 0
  let sampledReceivers = 0
  let otherPushes = 0
  const onOther = (): void => { otherPushes += 1 }
  peers.forEach((peer, index) => {
    peer.socket.on('close', () => { closedSockets += 1 })
    peer.onOther = onOther
    if (index % config.sampleEvery === config.sampleEvery - 1 && index >= config.senders) {
      sampledReceivers += 1
      peer.onPush = (raw) => {
        deliveries += 1
        const sentAt = sentAtOf(raw)
        if (sentAt >= windowStart && sentAt < windowEnd) samples.push(performance.now() - sentAt)
      }
    } else {
      peer.onPush = () => { deliveries += 1 }
    }
  })

  const senders = peers.slice(0, config.senders)
  const text = filler(config.contentLength)
  let sent = 0
  let ackErrors = 0
  const onAck = (): void => {}
  const onError = (): void => { ackErrors += 1 }
  function sendOne (): void {
    const index = sent % senders.length
    const sender = senders[index] as Peer
    sent += 1
    sender.send(room, `${performance.now().toFixed(3)}|${text}`, `${index}-${sent}`).then(onAck, onError)
  }

  /** Sends at `rate` messages/s until stopped, in 5 ms ticks, catching up on late ticks. */
  function sendAt (rate: number): { stop (): void } {
    const begun = performance.now()
    const base = sent
    const timer = setInterval(() => {
      const due = Math.floor((performance.now() - begun) * rate / 1000) - (sent - base)
      for (let index = 0; index < due && index < 1000; index += 1) sendOne()
    }, 5)
    return { stop: () => clearInterval(timer) }
  }

  /** Waits until deliveries stop growing for 300 ms (the backlog of the last step drained), at most `limit` ms. */
  async function quiet (limit: number): Promise<void> {
    const until = performance.now() + limit
    let last = -1
    while (performance.now() < until && last !== deliveries) {
      last = deliveries
      await sleep(300)
    }
  }

  // Warm-up: JIT and connection pools, not measured.
  const warm = sendAt(config.rates[0] as number)
  await sleep(1000)
  warm.stop()
  await quiet(2000)

  const steps: FanoutStep[] = []
  const discarded: FanoutStep[] = []
  // The machine is shared: a step whose p99 passes the limit is measured once more before the run
  // stops (at most twice per run), so that one burst of someone else's work does not end it.
  let repeats = 0
  for (let stepIndex = 0; stepIndex < config.rates.length; stepIndex += 1) {
    const rate = config.rates[stepIndex] as number
    samples = []
    windowStart = Infinity
    windowEnd = Infinity
    const sender = sendAt(rate)
    await sleep(config.warmMs)
    const sentBefore = sent
    const cpuBefore = cpuOf(config.pids)
    const deliveredBefore = deliveries
    windowStart = performance.now()
    await sleep(config.stepMs)
    windowEnd = performance.now()
    const cpu = cpuOf(config.pids) - cpuBefore
    const delivered = deliveries - deliveredBefore
    const sentInWindow = sent - sentBefore
    sender.stop()
    const expected = sentInWindow * sampledReceivers
    const drainUntil = performance.now() + config.drainMs
    while (samples.length < expected && performance.now() < drainUntil) await sleep(20)
    const seconds = (windowEnd - windowStart) / 1000
    const got = samples.sort((a, b) => a - b)
    const missing = Math.max(0, expected - got.length)
    const all = missing === 0 ? got : [...got, ...new Array<number>(missing).fill(Infinity)]
    const pick = (p: number): number | null => {
      const value = percentile(all, p)
      return Number.isFinite(value) ? round(value) : null
    }
    const step: FanoutStep = {
      rate,
      sentPerSecond: round(sentInWindow / seconds, 1),
      deliveredPerSecond: round(delivered / seconds, 0),
      p50: pick(50),
      p95: pick(95),
      p99: pick(99),
      samples: got.length,
      missing,
      cpuMicrosPerDelivery: delivered === 0 ? NaN : round(cpu / delivered, 3),
      cpuCores: round(cpu / 1e6 / seconds, 2),
    }
    log(`rate ${rate}/s: delivered ${step.deliveredPerSecond}/s p50 ${step.p50} p95 ${step.p95} p99 ${step.p99} ms, ${step.cpuMicrosPerDelivery} µs CPU/delivery, ${step.cpuCores} cores${missing > 0 ? `, ${missing} samples missing` : ''}`)
    const over = step.p99 === null || step.p99 > config.stopP99Ms
    const repeated = discarded.at(-1)?.rate === rate
    if (over && !repeated && repeats < 2) {
      repeats += 1
      discarded.push(step)
      log(`p99 past ${config.stopP99Ms} ms: measuring ${rate}/s once more`)
      await quiet(3000)
      stepIndex -= 1
      continue
    }
    steps.push(step)
    if (over) break
    await quiet(3000)
  }
  const closed = closedSockets
  for (const peer of peers) peer.close()
  return { scenario: 'fanout', members: config.members, senders: config.senders, nodes: config.urls.length, steps, discarded, ackErrors, closedSockets: closed, otherPushes }
}
