/**
 * What bench/run.ts hands the load generator (a scenario's configuration, as JSON in BENCH_LOADGEN) and
 * what the generator prints back (its result, on the `RESULT {json}` line).
 */
import type { TargetKind } from '../protocols.js'

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

/** The one room of the fanout and lowrate scenarios (room-load.ts). */
export interface RoomLoadConfig extends Common {
  scenario: 'fanout' | 'lowrate'
  members: number
  senders: number
  /** Every n-th member reads send times (the others only count). */
  sampleEvery: number
  contentLength: number
}

export interface FanoutConfig extends RoomLoadConfig {
  scenario: 'fanout'
  /** Aggregate send rates (messages/s over all senders), one step each, in order. */
  rates: number[]
  warmMs: number
  stepMs: number
  drainMs: number
  stopP99Ms: number
}

export interface LowrateConfig extends RoomLoadConfig {
  scenario: 'lowrate'
  /** Aggregate send rates, each held for stepMs. */
  rates: number[]
  /** The quiet window right after the room is set up, before any message. */
  afterSetupMs: number
  warmMs: number
  stepMs: number
  drainMs: number
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
  /** The window, after every socket connected and without traffic, whose CPU is read. */
  quietMs: number
}

export interface ConnsConfig extends Common {
  scenario: 'conns'
  /** Clients (users), a multiple of roomSize. Node 0 takes them all; node 1 takes them in the storm. */
  clients: number
  roomsPerUser: number
  roomSize: number
  /** Connects in flight at once, in the first wave and in the storm. */
  concurrency: number
  /** The storm gives up waiting after this long (whatever has not resumed by then counts as missing). */
  stormLimitMs: number
  /** The target's database, analyzed once the rooms are written (null: the relay has none). */
  databaseUrl: string | null
}

export type LoadgenConfig = FanoutConfig | LowrateConfig | DurableConfig | IdleConfig | ConnsConfig

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
  /** Send to the sender's ack, ms (absent from older runs). */
  ackP50?: number | null
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

export interface LowrateResult {
  scenario: 'lowrate'
  members: number
  senders: number
  nodes: number
  /** Server CPU, as a share of one core summed over nodes, over the quiet window after the set-up. */
  afterSetupCpuCores: number
  /** One per rate, in order. */
  steps: FanoutStep[]
  ackErrors: number
  closedSockets: number
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
  /** (RSS with every socket open − the baseline after the warm-up) / sockets, both after a full GC. */
  rssPerSocket: number
  /** VmRSS after the quiet window, no GC forced since the baseline's. */
  rssUntouched: number
  /** (rssUntouched − the baseline) / sockets: what an operator reads of a process left alone. */
  rssPerSocketUntouched: number
  /** Server CPU over the quiet window, as a share of one core. */
  quietCpuCores: number
  connectSeconds: number
  cpuMicrosPerConnect: number
}

/** One wave of connects: the first (clients to node 0) or the storm (every client to node 1 after node 0 died). */
export interface ConnsWave {
  clients: number
  /** Clients that reached ready (and, in this server's storm, synced) within the wave. */
  ready: number
  failed: number
  /** From the first connect (the kill, in the storm) until the last client is ready, seconds. */
  seconds: number
  connectsPerSecond: number
  /** Per client: from its connect (in the storm: from the kill) until it is ready, ms. */
  p50: number
  p99: number
  /** Server CPU (the node that takes the wave) over the wave, per client. */
  cpuMicrosPerConnect: number
  /** CPU of every PostgreSQL process over the wave, per client (0 for the relay, which has no database). */
  databaseCpuMicrosPerConnect: number
  /** Rooms synced (this server: the rooms whose lastSeq moved past the client's cursor). */
  roomsSynced: number
}

export interface ConnsResult {
  scenario: 'conns'
  clients: number
  roomsPerUser: number
  rooms: number
  concurrency: number
  first: ConnsWave
  storm: ConnsWave
}

export type LoadgenResult = FanoutResult | LowrateResult | DurableResult | IdleResult | ConnsResult
