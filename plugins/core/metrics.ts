import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance } from 'fastify'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { CloseCodes } from '../realtime/connection.js'
import type { GatewayObserver } from '../realtime/gateway.js'
import type { HubObserver } from '../realtime/hub.js'
import { ERROR_CODES, isChatError, toWireError, type ErrorCode } from './errors.js'

/**
 * What the suite's services tell the metrics. Every method is cheap (a counter or histogram update) and
 * never throws, so it can sit on hot paths. When metrics are disabled the methods do nothing.
 */
export interface ChatMetrics {
  /** The suite's own registry (never prom-client's global one): merge it into a host's with Registry.merge. */
  readonly registry: Registry
  /** Messages written by a committed transaction (WebSocket and REST sends alike). */
  messagePersisted (count?: number): void
  /** One group-commit flush: its size, and how long the transaction took. Fits GroupCommit's onBatch. */
  groupCommitBatch (size: number, ms?: number): void
  /**
   * A send from request to ack, after its commit. The WebSocket `message.send` is timed by the gateway
   * already: call this only for sends that do not pass through it (REST).
   */
  sendToAck (ms: number): void
  /**
   * A committed room frame reaching the sockets. The hub times every publishRoom already (from the call,
   * right after the commit, to the last local write): call this only for deliveries it does not see.
   */
  delivery (ms: number): void
  /** A send or edit that content screening refused or changed (plugins/messaging/screening.ts). */
  messageScreened (action: ScreeningAction): void
  /** The host's moderateMessage hook did not give a usable verdict: the send or edit was refused. */
  moderationHookFailed (reason: ModerationHookFailure): void
}

/** blocked: a blockedWords match; reject and replace: the moderateMessage hook's verdicts. */
export type ScreeningAction = 'blocked' | 'reject' | 'replace'
/** timeout: past moderationTimeoutMs; error: it threw or rejected; invalid: a verdict that cannot be used. */
export type ModerationHookFailure = 'timeout' | 'error' | 'invalid'
const SCREENING_ACTIONS: readonly ScreeningAction[] = ['blocked', 'reject', 'replace']
const HOOK_FAILURES: readonly ModerationHookFailure[] = ['timeout', 'error', 'invalid']

declare module 'fastify' {
  interface FastifyInstance {
    chatMetrics: ChatMetrics
  }
}

const NOOP = (): void => {}

/** A ChatMetrics that records nothing, for concern plugins registered without the metrics plugin. */
export function noopMetrics (): ChatMetrics {
  return { registry: new Registry(), messagePersisted: NOOP, groupCommitBatch: NOOP, sendToAck: NOOP, delivery: NOOP, messageScreened: NOOP, moderationHookFailed: NOOP }
}

// Close codes get a label of their own when the protocol or RFC 6455 names them; anything a client
// makes up is 'other', so a client cannot grow the label set.
const KNOWN_CLOSE_CODES = new Set<number>([1000, 1001, 1005, 1006, 1008, 1011, ...Object.values(CloseCodes)])
// Frames the gateway and sessions write besides the declared pushes.
const BUILT_IN_OUT = new Set(['ack', 'error', 'pong', 'session.ready'])
const FRAME_PREFIX = '{"event":"'
const MAX_EVENT_LENGTH = 64

/** A count kept as a plain number on the hot path and handed to prom-client when scraped. */
interface Cell { n: number }

/**
 * Counts by one bounded label without prom-client's per-call label hashing: a frame costs a Map lookup
 * and an increment. The registered counter reads the cells when Prometheus scrapes.
 */
class CellCounter {
  private readonly cells = new Map<string, Cell>()

  constructor (registry: Registry, name: string, help: string, label: string) {
    const cells = this.cells
    // eslint-disable-next-line no-new
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect () {
        this.reset()
        for (const [value, cell] of cells) this.inc({ [label]: value }, cell.n)
      },
    })
  }

  cell (value: string): Cell {
    let cell = this.cells.get(value)
    if (cell === undefined) {
      cell = { n: 0 }
      this.cells.set(value, cell)
    }
    return cell
  }

  inc (value: string): void {
    this.cell(value).n += 1
  }
}

/** REST errors get the same code the suite's error handler answers with. */
function restErrorCode (error: FastifyError): ErrorCode {
  if (error.validation !== undefined) return 'VALIDATION_FAILED'
  if (isChatError(error)) return error.code
  if (error.statusCode === 413 || error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return 'PAYLOAD_TOO_LARGE'
  if (error.statusCode === 429) return 'RATE_LIMITED'
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) return 'VALIDATION_FAILED'
  return toWireError(error).code
}

const SECONDS = 1000
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
const DELIVERY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 5000]

/**
 * Builds the suite's metrics on a registry of its own, so that two suites (or two test nodes) in one
 * process never share or clash over a metric. Returns the ChatMetrics the services call and the
 * observers the gateway and the hub report to.
 */
export interface MetricsSources {
  defaultMetrics: boolean
  /** Read when scraped. */
  onlineUsers: () => number
  /** Whether a plugin declared this push (frames out of undeclared events are counted as 'other'). */
  isDeclaredPush: (event: string) => boolean
}

export interface BuiltMetrics {
  metrics: ChatMetrics
  gatewayObserver: GatewayObserver
  hubObserver: HubObserver
  restError: (error: FastifyError) => void
  brokerReconnected: () => void
}

export function createMetrics (options: MetricsSources): BuiltMetrics {
  const registry = new Registry()
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry })
  const registers = [registry]

  const socketsOpen = new Gauge({ name: 'chat_sockets_open', help: 'WebSocket connections open on this node', registers })
  const socketsOpened = new Counter({ name: 'chat_sockets_opened_total', help: 'WebSocket connections accepted', registers })
  const socketsClosed = new Counter({ name: 'chat_sockets_closed_total', help: 'WebSocket connections closed, by close code (other: a code the protocol does not use)', labelNames: ['code'], registers })
  const framesIn = new CellCounter(registry, 'chat_frames_in_total', 'Text frames received, by event (unknown: not a registered event, or not a valid envelope)', 'event')
  const framesOut = new CellCounter(registry, 'chat_frames_out_total', 'Frames written to sockets, by event (other: an event no plugin declared)', 'event')
  const errors = new Counter({ name: 'chat_errors_total', help: 'Errors answered, by protocol code and transport (ws: error frames, rest: error replies)', labelNames: ['code', 'transport'], registers })
  const messagesPersisted = new Counter({ name: 'chat_messages_persisted_total', help: 'Messages committed to the database', registers })
  const batchSize = new Histogram({ name: 'chat_group_commit_batch_size', help: 'Writes per group-commit transaction', buckets: BATCH_BUCKETS, registers })
  const batchDuration = new Histogram({ name: 'chat_group_commit_duration_seconds', help: 'Time of one group-commit transaction', buckets: LATENCY_BUCKETS, registers })
  const sendToAck = new Histogram({ name: 'chat_send_to_ack_seconds', help: 'message.send from the frame (or REST request) to its ack, the commit included', buckets: LATENCY_BUCKETS, registers })
  const delivery = new Histogram({ name: 'chat_delivery_seconds', help: 'A committed room frame from publish (right after the commit) to the last local socket write, on the node that committed it', buckets: DELIVERY_BUCKETS, registers })
  const brokerPublishes = new CellCounter(registry, 'chat_broker_publishes_total', 'Publishes to the broker, by kind (room frames, user frames, user controls)', 'kind')
  const brokerReconnects = new Counter({ name: 'chat_broker_reconnects_total', help: 'Times the broker reconnected to Redis and resubscribed', registers })
  const rateLimited = new Counter({ name: 'chat_rate_limited_frames_total', help: 'Frames refused with RATE_LIMITED by the per-socket token buckets', registers })
  const slowConsumers = new Counter({ name: 'chat_slow_consumers_cut_total', help: 'Sockets closed with 1013 because their send buffer passed maxBufferedBytes', registers })
  const screened = new Counter({ name: 'chat_messages_screened_total', help: 'Sends and edits that content screening refused (blocked: blockedWords; reject: the moderateMessage hook) or changed (replace)', labelNames: ['action'], registers })
  const hookFailures = new Counter({ name: 'chat_moderation_hook_failures_total', help: 'Sends and edits refused because the moderateMessage hook timed out, threw, or answered with an unusable verdict', labelNames: ['reason'], registers })
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'chat_online_users',
    help: 'Users with at least one authenticated socket on this node',
    registers,
    collect () { this.set(options.onlineUsers()) },
  })

  const closedByCode = new Map<number, ReturnType<typeof socketsClosed.labels>>()
  for (const code of KNOWN_CLOSE_CODES) closedByCode.set(code, socketsClosed.labels(String(code)))
  const closedOther = socketsClosed.labels('other')
  const wsErrors = new Map(ERROR_CODES.map((code) => [code, errors.labels(code, 'ws')] as const))
  const restErrors = new Map(ERROR_CODES.map((code) => [code, errors.labels(code, 'rest')] as const))
  // Every label value is exposed from the start, at 0: a rate() over a series that appears later misses its first step.
  const screenedBy = new Map(SCREENING_ACTIONS.map((action) => [action, screened.labels(action)] as const))
  const hookFailuresBy = new Map(HOOK_FAILURES.map((reason) => [reason, hookFailures.labels(reason)] as const))
  for (const series of [...screenedBy.values(), ...hookFailuresBy.values()]) series.inc(0)
  const publishCells = { room: brokerPublishes.cell('room'), user: brokerPublishes.cell('user'), control: brokerPublishes.cell('control') }

  // Broadcasts hand the same string to every socket: the event is read from the frame once per frame.
  let lastFrame = ''
  let lastCell: Cell = framesOut.cell('other')
  function outCell (frame: string): Cell {
    if (!frame.startsWith(FRAME_PREFIX)) return framesOut.cell('other')
    const end = frame.indexOf('"', FRAME_PREFIX.length)
    if (end < 0 || end - FRAME_PREFIX.length > MAX_EVENT_LENGTH) return framesOut.cell('other')
    const event = frame.slice(FRAME_PREFIX.length, end)
    return framesOut.cell(BUILT_IN_OUT.has(event) || options.isDeclaredPush(event) ? event : 'other')
  }

  const hubObserver: HubObserver = {
    socketOpened () {
      socketsOpened.inc()
      socketsOpen.inc()
    },
    socketClosed (code) {
      socketsOpen.dec()
      ;(closedByCode.get(code) ?? closedOther).inc()
    },
    sent (frame) {
      if (frame !== lastFrame) {
        lastFrame = frame
        lastCell = outCell(frame)
      }
      lastCell.n += 1
    },
    slowConsumerCut () { slowConsumers.inc() },
    published (kind) { publishCells[kind].n += 1 },
    roomDelivered (ms) { delivery.observe(ms / SECONDS) },
  }

  const gatewayObserver: GatewayObserver = {
    frameIn (event) { framesIn.inc(event ?? 'unknown') },
    errorSent (code) {
      wsErrors.get(code)?.inc()
      if (code === 'RATE_LIMITED') rateLimited.inc()
    },
    handled (event, ms, ok) {
      if (ok && event === 'message.send') sendToAck.observe(ms / SECONDS)
    },
  }

  const metrics: ChatMetrics = {
    registry,
    messagePersisted (count = 1) { if (count > 0) messagesPersisted.inc(count) },
    groupCommitBatch (size, ms) {
      batchSize.observe(size)
      if (ms !== undefined) batchDuration.observe(ms / SECONDS)
    },
    sendToAck (ms) { sendToAck.observe(ms / SECONDS) },
    delivery (ms) { delivery.observe(ms / SECONDS) },
    messageScreened (action) { screenedBy.get(action)?.inc() },
    moderationHookFailed (reason) { hookFailuresBy.get(reason)?.inc() },
  }

  return {
    metrics,
    gatewayObserver,
    hubObserver,
    restError (error) { restErrors.get(restErrorCode(error))?.inc() },
    brokerReconnected () { brokerReconnects.inc() },
  }
}

/**
 * Decorates `chatMetrics` and plugs the observers into the gateway, the hub and the broker. Register
 * after the gateway and before the services and routes. The routes (GET /metrics) are in routes/metrics.
 */
export const metricsPlugin = fp(async function metricsPlugin (app: FastifyInstance) {
  const { enabled, defaultMetrics } = app.chatConfig.metrics
  if (!enabled) {
    app.decorate('chatMetrics', noopMetrics())
    return
  }
  const hub = app.chatHub
  const gateway = app.chatGateway
  const pushes = gateway.declaredPushes()
  const built = createMetrics({ defaultMetrics, onlineUsers: () => hub.userCount, isDeclaredPush: (event) => pushes.has(event) })
  gateway.observe(built.gatewayObserver)
  hub.observer = built.hubObserver
  app.chatBroker.onReconnect(built.brokerReconnected)
  app.addHook('onError', async (_request, _reply, error) => { built.restError(error) })
  app.decorate('chatMetrics', built.metrics)
  app.addHook('onClose', async () => {
    gateway.observe(null)
    hub.observer = null
    built.metrics.registry.clear()
  })
}, { name: 'chat-metrics', fastify: '5.x', dependencies: ['chat-config', 'chat-hub', 'chat-gateway', 'chat-broker'] })
