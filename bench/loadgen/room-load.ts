/**
 * One room of `members` sockets spread over the nodes, with `senders` of them sending at a steady
 * aggregate rate: what the fanout and lowrate scenarios share. A step sends at one rate, measures the
 * latency from a send to the sampled receivers and the servers' CPU over a window, and drains.
 */
import { percentile, round, sleep } from '../lib.js'
import { PROTOCOLS, sentAtOf, type Peer } from '../protocols.js'
import { connectWithRetry, filler, log, pool, tokenSigner } from './driver.js'
import { cpuOf } from './server-usage.js'
import { checkSocketIoWire } from './socketio-check.js'
import type { FanoutStep, RoomLoadConfig } from './types.js'

export interface StepTiming {
  /** Sending before the window opens (not measured). */
  warmMs: number
  stepMs: number
  /** How long, at most, to wait after the window for its samples to arrive. */
  drainMs: number
}

export interface RoomLoad {
  /** Sends at `rate` messages/s until stopped, in 5 ms ticks, catching up on late ticks. */
  sendAt (rate: number): { stop (): void }
  /** One measured step at `rate`. */
  step (rate: number, timing: StepTiming): Promise<FanoutStep>
  /** Waits until deliveries stop growing for 300 ms (a step's backlog drained), at most `limit` ms. */
  quiet (limit: number): Promise<void>
  readonly ackErrors: number
  readonly otherPushes: number
  readonly closedSockets: number
  close (): void
}

export async function openRoomLoad (config: RoomLoadConfig): Promise<RoomLoad> {
  const protocol = PROTOCOLS[config.target]
  const token = tokenSigner(config.secret)
  if (config.target === 'socketio') await checkSocketIoWire(config.urls[0] as string, token, config.tag)
  const ids = Array.from({ length: config.members }, (_, index) => `${config.tag}-m${index}`)
  const urlOf = (index: number): string => config.urls[index % config.urls.length] as string
  const owner = await connectWithRetry(protocol, urlOf(0), ids[0] as string, token(ids[0] as string))
  const room = await protocol.createRoom(owner, `${config.scenario} ${config.tag}`, ids.slice(1))
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
  // Send to ack: this server's commit path alone, which the fan-out latency includes.
  let ackSamples: number[] = []
  const onError = (): void => { ackErrors += 1 }
  function sendOne (): void {
    const index = sent % senders.length
    const sender = senders[index] as Peer
    sent += 1
    const sentAt = performance.now()
    const onAck = (): void => {
      if (sentAt >= windowStart && sentAt < windowEnd) ackSamples.push(performance.now() - sentAt)
    }
    sender.send(room, `${sentAt.toFixed(3)}|${text}`, `${index}-${sent}`).then(onAck, onError)
  }

  function sendAt (rate: number): { stop (): void } {
    const begun = performance.now()
    const base = sent
    const timer = setInterval(() => {
      const due = Math.floor((performance.now() - begun) * rate / 1000) - (sent - base)
      for (let index = 0; index < due && index < 1000; index += 1) sendOne()
    }, 5)
    return { stop: () => clearInterval(timer) }
  }

  async function quiet (limit: number): Promise<void> {
    const until = performance.now() + limit
    let last = -1
    while (performance.now() < until && last !== deliveries) {
      last = deliveries
      await sleep(300)
    }
  }

  async function step (rate: number, timing: StepTiming): Promise<FanoutStep> {
    samples = []
    ackSamples = []
    windowStart = Infinity
    windowEnd = Infinity
    const sender = sendAt(rate)
    await sleep(timing.warmMs)
    const sentBefore = sent
    const cpuBefore = cpuOf(config.pids)
    const deliveredBefore = deliveries
    windowStart = performance.now()
    await sleep(timing.stepMs)
    windowEnd = performance.now()
    const cpu = cpuOf(config.pids) - cpuBefore
    const delivered = deliveries - deliveredBefore
    const sentInWindow = sent - sentBefore
    sender.stop()
    const expected = sentInWindow * sampledReceivers
    const drainUntil = performance.now() + timing.drainMs
    while (samples.length < expected && performance.now() < drainUntil) await sleep(20)
    const seconds = (windowEnd - windowStart) / 1000
    const got = samples.sort((a, b) => a - b)
    const missing = Math.max(0, expected - got.length)
    const all = missing === 0 ? got : [...got, ...new Array<number>(missing).fill(Infinity)]
    const pick = (p: number): number | null => {
      const value = percentile(all, p)
      return Number.isFinite(value) ? round(value) : null
    }
    const result: FanoutStep = {
      rate,
      sentPerSecond: round(sentInWindow / seconds, 1),
      deliveredPerSecond: round(delivered / seconds, 0),
      p50: pick(50),
      p95: pick(95),
      p99: pick(99),
      samples: got.length,
      missing,
      cpuMicrosPerDelivery: delivered === 0 ? NaN : round(cpu / delivered, 3),
      cpuCores: round(cpu / 1e6 / seconds, 3),
      ackP50: ackSamples.length === 0 ? null : round(percentile(ackSamples.sort((a, b) => a - b), 50)),
    }
    log(`rate ${rate}/s: delivered ${result.deliveredPerSecond}/s p50 ${result.p50} p95 ${result.p95} p99 ${result.p99} ms (ack p50 ${result.ackP50}), ${result.cpuMicrosPerDelivery} µs CPU/delivery, ${result.cpuCores} cores${missing > 0 ? `, ${missing} samples missing` : ''}`)
    return result
  }

  return {
    sendAt,
    step,
    quiet,
    get ackErrors () { return ackErrors },
    get otherPushes () { return otherPushes },
    get closedSockets () { return closedSockets },
    close () {
      for (const peer of peers) peer.close()
    },
  }
}
