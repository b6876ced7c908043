/**
 * The load generator: one process per scenario run, separate from the servers it drives. It reads its
 * configuration as JSON from BENCH_LOADGEN, reads the servers' CPU and RSS from /proc itself at the
 * window boundaries, and prints one line `RESULT {json}` on stdout (progress goes to stderr).
 *   BENCH_LOADGEN='{"scenario":"fanout","target":"relay","urls":["http://127.0.0.1:1234"],"pids":[42],…}' \
 *     node --import tsx bench/loadgen.ts
 * Every loop is bounded: by a step count, a duration or a number of sockets.
 */
import { createSigner } from 'fast-jwt'
import { io } from 'socket.io-client'
import { cpuMicrosSync, median, percentile, postgresCpuMicros, round, rssBytes, sleep } from './lib.js'
import { PROTOCOLS, sentAtOf, type Peer, type Protocol, type TargetKind } from './protocols.js'

interface Common {
  target: TargetKind
  /** One base URL per server node; users are spread over them round-robin. */
  urls: string[]
  /** The server processes whose CPU and RSS are read (every node). */
  pids: number[]
  secret: string
  /** Distinguishes user ids between runs that share a database. */
  tag: string
}

export interface FanoutConfig extends Common {
  scenario: 'fanout'
  members: number
  senders: number
  /** Aggregate send rates (messages/s over all senders), one step each, in order. */
  rates: number[]
  warmMs: number
  stepMs: number
  drainMs: number
  stopP99Ms: number
  /** Every n-th member reads send times (the others only count). */
  sampleEvery: number
  contentLength: number
}

export interface DurableConfig extends Common {
  scenario: 'durable'
  rooms: number
  inFlight: number
  warmMs: number
  durationMs: number
  contentLength: number
}

export interface IdleConfig extends Common {
  scenario: 'idle'
  sockets: number
  concurrency: number
  settleMs: number
}

export type LoadgenConfig = FanoutConfig | DurableConfig | IdleConfig

export interface FanoutStep {
  /** Requested aggregate send rate, messages/s. */
  rate: number
  /** Messages actually sent per second in the window. */
  sentPerSecond: number
  deliveredPerSecond: number
  /** Latency from the send to a sampled receiver, ms; null when more than the percentile went missing. */
  p50: number | null
  p95: number | null
  p99: number | null
  samples: number
  missing: number
  cpuMicrosPerDelivery: number
  /** Server CPU in the window as a share of one core, summed over nodes. */
  cpuCores: number
}

export interface FanoutResult {
  scenario: 'fanout'
  members: number
  senders: number
  nodes: number
  steps: FanoutStep[]
  /** Steps measured again because their p99 passed the limit once (kept for the record). */
  discarded: FanoutStep[]
  ackErrors: number
  closedSockets: number
  /** Pushes other than the messages (presence, membership…), not counted as deliveries. */
  otherPushes: number
}

export interface DurableResult {
  scenario: 'durable'
  rooms: number
  inFlight: number
  seconds: number
  ackedPerSecond: number
  p50: number
  p99: number
  cpuMicrosPerAck: number
  /** CPU of all PostgreSQL processes per ack over the window (0 for a target without a database). */
  databaseCpuMicrosPerAck: number
  /** Every ack of the run, warm-up included: what the database must hold. */
  totalAcked: number
  errors: number
  pushes: number
}

export interface IdleResult {
  scenario: 'idle'
  sockets: number
  connected: number
  baselineRss: number
  rss: number
  /** (RSS with every socket open − the baseline after the warm-up) / sockets. */
  rssPerSocket: number
  connectSeconds: number
  cpuMicrosPerConnect: number
}

export type LoadgenResult = FanoutResult | DurableResult | IdleResult

const log = (message: string): void => { process.stderr.write(`  [loadgen] ${message}\n`) }

function cpuOf (pids: number[]): number {
  let total = 0
  for (const pid of pids) total += cpuMicrosSync(pid)
  return total
}

function rssOf (pids: number[]): number {
  let total = 0
  for (const pid of pids) total += rssBytes(pid)
  return total
}

/** Runs `task` over `items` with at most `limit` at once. */
async function pool<T, R> (items: T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length)
  let next = 0
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await task(items[index] as T, index)
    }
  })
  await Promise.all(workers)
  return results
}

function filler (length: number): string {
  const text = 'the quick brown fox jumps over the lazy dog and keeps on chatting about the weather today '
  return text.repeat(Math.ceil(length / text.length)).slice(0, Math.max(0, length))
}

function tokenSigner (secret: string): (userId: string) => string {
  const sign = createSigner({ key: secret, expiresIn: 2 * 3600_000 })
  return (userId) => sign({ sub: userId, name: `Bench ${userId}` })
}

async function connectWithRetry (protocol: Protocol, url: string, userId: string, token: string): Promise<Peer> {
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      return await protocol.connect(url, userId, token)
    } catch (error) {
      lastError = error
      await sleep(200 * (attempt + 1))
    }
  }
  throw lastError
}

/** Checks the raw Socket.IO adapter against the real socket.io-client, both ways, before measuring. */
async function checkSocketIoWire (url: string, token: (userId: string) => string, tag: string): Promise<void> {
  const protocol = PROTOCOLS.socketio
  const room = `conformance-${tag}`
  const client = io(url, { transports: ['websocket'], auth: { token: token(`${tag}-sio-client`) }, reconnection: false })
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve())
      client.once('connect_error', reject)
    })
    const raw = await protocol.connect(url, `${tag}-sio-raw`, token(`${tag}-sio-raw`))
    await protocol.join(raw, room)
    await client.timeout(5000).emitWithAck('join', { room })
    const rawGot = new Promise<Buffer>((resolve) => { raw.onPush = resolve })
    const clientGot = new Promise<unknown>((resolve) => client.once('message', resolve))
    const ack = await client.timeout(5000).emitWithAck('send', { room, content: '1|from socket.io-client' }) as { message?: unknown }
    if (ack.message === undefined) throw new Error(`socket.io-client send was refused: ${JSON.stringify(ack)}`)
    const pushed = await Promise.race([rawGot, sleep(5000).then(() => null)])
    if (pushed === null || Number.isNaN(sentAtOf(pushed))) throw new Error('the raw adapter did not read the push of a socket.io-client send')
    await raw.send(room, '2|from the raw adapter', `${tag}-c1`)
    const received = await Promise.race([clientGot, sleep(5000).then(() => null)]) as { content?: string } | null
    if (received?.content !== '2|from the raw adapter') throw new Error('socket.io-client did not receive the raw adapter\'s send')
    raw.close()
  } finally {
    client.disconnect()
  }
}

async function fanout (config: FanoutConfig): Promise<FanoutResult> {
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

async function durable (config: DurableConfig): Promise<DurableResult> {
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

/**
 * RSS after a full garbage collection in every target (SIGWINCH, see gc-on-signal.ts). Left to itself,
 * V8 gives back the heap that a busy phase grew in steps, some seconds later or not at all within a
 * minute, and the same server read anywhere from 4 to 25 KiB per socket depending on when it did. Collects
 * and reads once a second until two readings agree within 1% (at most `limitMs`); returns the last one.
 */
async function rssAfterGc (pids: number[], limitMs: number): Promise<number> {
  const until = performance.now() + limitMs
  const trace: number[] = []
  let last = Number.NaN
  while (performance.now() < until) {
    for (const pid of pids) process.kill(pid, 'SIGWINCH')
    await sleep(1000)
    const now = rssOf(pids)
    trace.push(now)
    const agrees = Math.abs(now - last) <= last * 0.01
    last = now
    if (agrees) break
  }
  log(`RSS MiB after a full GC, one reading a second: ${trace.map((value) => round(value / 1048576, 1)).join(' ')}`)
  return last
}

async function idle (config: IdleConfig): Promise<IdleResult> {
  const protocol = PROTOCOLS[config.target]
  const token = tokenSigner(config.secret)
  // Warm-up: a few hundred sockets come and go first, so that code compiled and pools opened on the
  // first connections are in the baseline and not counted per socket.
  const warm = await pool(Array.from({ length: Math.min(200, config.sockets) }, (_, index) => `${config.tag}-w${index}`), config.concurrency,
    async (id, index) => await connectWithRetry(protocol, config.urls[index % config.urls.length] as string, id, token(id)))
  for (const peer of warm) peer.close()
  const baselineRss = await rssAfterGc(config.pids, config.settleMs)
  const cpuBefore = cpuOf(config.pids)
  const started = performance.now()
  const ids = Array.from({ length: config.sockets }, (_, index) => `${config.tag}-i${index}`)
  const peers = await pool(ids, config.concurrency, async (id, index) => await connectWithRetry(protocol, config.urls[index % config.urls.length] as string, id, token(id)))
  const connectSeconds = (performance.now() - started) / 1000
  const cpu = cpuOf(config.pids) - cpuBefore
  log(`${peers.length} sockets connected in ${round(connectSeconds, 1)} s`)
  const rss = await rssAfterGc(config.pids, config.settleMs)
  const connected = peers.filter((peer) => peer.socket.readyState === peer.socket.OPEN).length
  for (const peer of peers) peer.close()
  return {
    scenario: 'idle',
    sockets: config.sockets,
    connected,
    baselineRss,
    rss,
    rssPerSocket: round((rss - baselineRss) / config.sockets, 0),
    connectSeconds: round(connectSeconds, 2),
    cpuMicrosPerConnect: round(cpu / config.sockets, 0),
  }
}

const raw = process.env.BENCH_LOADGEN
if (raw === undefined) throw new Error('loadgen: set BENCH_LOADGEN to the JSON of a scenario configuration')
const config = JSON.parse(raw) as LoadgenConfig
// A hard stop: whatever happens, this process ends.
setTimeout(() => {
  process.stderr.write('loadgen: hard time limit reached\n')
  process.exit(2)
}, 240_000).unref()
const result: LoadgenResult = config.scenario === 'fanout'
  ? await fanout(config)
  : config.scenario === 'durable' ? await durable(config) : await idle(config)
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`)
process.exit(0)
