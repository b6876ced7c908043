import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Type, type Static, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { chatError, refusals, toWireError, type ErrorCode } from '../core/errors.js'
import { CloseCodes, type ChatUser, type Connection } from './connection.js'
import { TokenBucket } from '../../lib/token-bucket.js'
import { SharedBuckets } from '../core/rate-limit.js'
import { unstorableField } from '../../lib/input-hygiene.js'
import { mayExceed, utf8Bytes } from '../../lib/reply-budget.js'
import type { ChatConfig } from '../core/config.js'
import { userKeyOf } from '../../lib/user-key.js'

export type RateClass = 'send' | 'typing' | 'other'

export interface EventContext {
  connection: Connection
  user: ChatUser
  event: string
  requestId: string | undefined
}

/** Returned by a handler whose reply is a push of its own (auth answers with session.ready). */
export const NO_REPLY = Symbol('no reply')

/** An ack's data already serialized (a JSON object's text), so that the gateway does not serialize it again. */
export class JsonReply {
  constructor (readonly json: string) {}
}

export interface EventDefinition<S extends TSchema = TSchema> {
  /** The schema of `data`; events without data use an empty object schema. */
  schema: S
  /** Documents the ack's data (AsyncAPI); not checked at run time. */
  ack?: TSchema
  summary?: string
  rateClass?: RateClass
  /** Events a socket may send before it is authenticated (auth, ping). */
  public?: boolean
  /** Its result is the ack's data; nothing (undefined) acks `{}`. */
  handler: (ctx: EventContext, data: Static<S>) => unknown
}

export interface PushDefinition {
  schema: TSchema
  summary?: string
}

interface RegisteredEvent {
  definition: EventDefinition
  check: ReturnType<typeof Compile>
}

interface SocketRateState {
  buckets: Record<RateClass, TokenBucket>
  /** The user's send budget, shared with their other sockets on this node (held from the first send). */
  userSend: { key: string, bucket: TokenBucket } | null
  refusals: number
  windowStart: number
  /** Reading is paused until the next token (after a refusal). */
  holdingOff: boolean
}

/**
 * Told about the gateway's traffic (metrics). Called on the hot path: implementations must be cheap and
 * must not throw.
 */
export interface GatewayObserver {
  /** Every text frame: its event when the gateway knows it (a registered event or ping), else null. */
  frameIn (event: string | null): void
  /** Every error frame sent, by code. */
  errorSent (code: ErrorCode): void
  /** A handler finished: milliseconds from the start of its frame's handling to its reply; ok unless it threw. */
  handled (event: string, ms: number, ok: boolean): void
}

const MAX_ID_LENGTH = 64
const MAX_EVENT_LENGTH = 64

/**
 * Speaks the envelope and nothing else: parse, rate bucket, compiled schema check, dispatch through a
 * Map, then exactly one ack or error per request id. Concern plugins fill the registry with `on`.
 */
export class Gateway {
  private readonly events = new Map<string, RegisteredEvent>()
  private readonly pushes = new Map<string, PushDefinition>()
  private readonly rates = new WeakMap<Connection, SocketRateState>()
  private observer: GatewayObserver | null = null

  /** Per-user send budgets (rateLimits.userSend), shared by each user's sockets on this node. */
  private readonly userSend: SharedBuckets

  constructor (private readonly config: ChatConfig) {
    this.userSend = new SharedBuckets(config.rateLimits.userSend.rate, config.rateLimits.userSend.burst)
  }

  /** Per-user send budgets this node keeps: users with an open socket, or idle for less than a refill. */
  get sendBudgets (): number {
    return this.userSend.size
  }

  on<S extends TSchema> (event: string, definition: EventDefinition<S>): void {
    if (this.events.has(event)) throw new Error(`gateway: event "${event}" is already registered`)
    this.events.set(event, { definition: definition as unknown as EventDefinition, check: Compile(definition.schema) })
  }

  /** Sets the one observer of the gateway's traffic (the metrics plugin). */
  observe (observer: GatewayObserver | null): void {
    this.observer = observer
  }

  declarePush (event: string, definition: PushDefinition): void {
    this.pushes.set(event, definition)
  }

  registeredEvents (): ReadonlyMap<string, EventDefinition> {
    return new Map([...this.events].map(([name, entry]) => [name, entry.definition]))
  }

  declaredPushes (): ReadonlyMap<string, PushDefinition> {
    return this.pushes
  }

  /** A closed socket's share of its user's send budget goes back (the sessions call it on close). */
  forget (connection: Connection): void {
    const rate = this.rates.get(connection)
    if (rate?.userSend != null) {
      this.userSend.release(rate.userSend.key)
      rate.userSend = null
    }
  }

  /** Handles one text frame of a socket. Never throws: every failure becomes an error frame. */
  async handleFrame (connection: Connection, raw: string): Promise<void> {
    const started = this.observer === null ? 0 : performance.now()
    let envelope: unknown
    try {
      envelope = JSON.parse(raw)
    } catch {
      this.observer?.frameIn(null)
      if (this.throttled(connection, undefined, undefined, 'other')) return
      this.replyError(connection, undefined, undefined, 'BAD_FRAME', 'frame is not valid JSON')
      return
    }
    if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) {
      this.observer?.frameIn(null)
      if (this.throttled(connection, undefined, undefined, 'other')) return
      this.replyError(connection, undefined, undefined, 'BAD_FRAME', 'frame must be a JSON object')
      return
    }
    const { event, id, data } = envelope as { event?: unknown, id?: unknown, data?: unknown }
    if (id !== undefined && (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH)) {
      this.observer?.frameIn(null)
      if (this.throttled(connection, undefined, undefined, 'other')) return
      this.replyError(connection, undefined, typeof event === 'string' ? event.slice(0, MAX_EVENT_LENGTH) : undefined,
        'BAD_FRAME', `"id" must be a string of 1 to ${MAX_ID_LENGTH} characters`)
      return
    }
    if (typeof event !== 'string' || event.length === 0 || event.length > MAX_EVENT_LENGTH) {
      this.observer?.frameIn(null)
      if (this.throttled(connection, id, undefined, 'other')) return
      this.replyError(connection, id, undefined, 'BAD_FRAME', `"event" must be a string of 1 to ${MAX_EVENT_LENGTH} characters`)
      return
    }
    if (event === 'ping') {
      this.observer?.frameIn(event)
      if (this.throttled(connection, id, event, 'other')) return
      connection.send(id === undefined ? '{"event":"pong"}' : JSON.stringify({ event: 'pong', id }))
      return
    }
    const registered = this.events.get(event)
    this.observer?.frameIn(registered === undefined ? null : event)
    // Every frame takes a token: unknown events and events before authentication from the `other` bucket.
    if (this.throttled(connection, id, event, registered?.definition.rateClass ?? 'other')) return
    if (connection.user === null && registered?.definition.public !== true) {
      this.replyError(connection, id, event, 'UNAUTHENTICATED', 'authenticate first: send {"event":"auth","data":{"token":"<jwt>"}}')
      return
    }
    if (registered === undefined) {
      this.replyError(connection, id, event, 'UNKNOWN_EVENT', `unknown event "${event}"`)
      return
    }
    const { definition, check } = registered
    if (data !== undefined && (typeof data !== 'object' || data === null || Array.isArray(data))) {
      this.replyError(connection, id, event, 'VALIDATION_FAILED', '"data" must be an object', [{ field: 'data', message: 'must be an object' }])
      return
    }
    const payload = data ?? {}
    if (!check.Check(payload)) {
      const details = [...check.Errors(payload)].slice(0, 10).map((error) => ({
        field: fieldOf(error.instancePath, error.params),
        message: error.message,
      }))
      const first = details[0]
      this.replyError(connection, id, event, 'VALIDATION_FAILED',
        first === undefined ? 'invalid data' : `${first.field}: ${first.message}`, details)
      return
    }
    const unstorable = unstorableField(payload)
    if (unstorable !== null) {
      this.sendError(connection, id, event, toWireError(refusals.unstorableText(unstorable)))
      return
    }
    try {
      const ctx: EventContext = { connection, user: connection.user as ChatUser, event, requestId: id }
      const result = await definition.handler(ctx, payload as never)
      if (result !== NO_REPLY && id !== undefined) {
        const frame = result instanceof JsonReply
          ? `{"event":"ack","id":${JSON.stringify(id)},"data":${result.json}}`
          : JSON.stringify({ event: 'ack', id, data: result ?? {} })
        // The last guard: replies that can be long are paged below maxReplyBytes by their handlers;
        // one that is still past it is refused rather than written.
        if (mayExceed(frame, this.config.maxReplyBytes)) {
          connection.log.warn({ event, bytes: utf8Bytes(frame), maxReplyBytes: this.config.maxReplyBytes }, 'reply too large, refused')
          this.observer?.handled(event, performance.now() - started, false)
          this.sendError(connection, id, event, toWireError(refusals.replyTooLarge()))
          return
        }
        connection.send(frame)
      }
      this.observer?.handled(event, performance.now() - started, true)
    } catch (error) {
      this.observer?.handled(event, performance.now() - started, false)
      const wire = toWireError(error)
      if (wire.code === 'INTERNAL' || wire.code === 'UNAVAILABLE') connection.log.error({ err: error, event }, 'event handler failed')
      this.sendError(connection, id, event, wire)
    }
  }

  replyError (connection: Connection, id: string | undefined, event: string | undefined, code: ErrorCode, message: string, details?: unknown): void {
    const wire = toWireError(chatError(code, message, details))
    this.sendError(connection, id, event, wire)
  }

  private sendError (connection: Connection, id: string | undefined, event: string | undefined, error: ReturnType<typeof toWireError>): void {
    const frame = id !== undefined
      ? { event: 'error', id, error }
      : { event: 'error', error: event === undefined ? error : { ...error, event } }
    this.observer?.errorSent(error.code)
    connection.send(JSON.stringify(frame))
  }

  /** Takes a token of the class; when there is none, answers RATE_LIMITED, counts the refusal and returns true. */
  private throttled (connection: Connection, id: string | undefined, event: string | undefined, rateClass: RateClass): boolean {
    const retryAfterMs = this.takeToken(connection, rateClass)
    if (retryAfterMs === 0) return false
    this.replyError(connection, id, event, 'RATE_LIMITED', 'too many requests', { retryAfterMs })
    this.countRefusal(connection)
    this.holdOff(connection, Math.min(retryAfterMs, this.config.rateLimits.maxHoldOffMs))
    return true
  }

  /**
   * A socket over its limit is read no faster than its buckets refill: after a refusal its reading pauses
   * until the next token is due. The frames already read are still answered (RATE_LIMITED while the
   * bucket is empty); the ones still in flight wait in the kernel, and TCP slows the sender down, so a
   * flood costs the node the frames it reads, not the frames the client manages to write.
   */
  private holdOff (connection: Connection, ms: number): void {
    const state = this.rates.get(connection)
    if (ms <= 0 || state === undefined || state.holdingOff || !connection.isOpen) return
    const socket = connection.socket
    state.holdingOff = true
    socket.pause()
    setTimeout(() => {
      state.holdingOff = false
      // Also when the socket is closing: its peer's close frame must still be read (ws ignores a closed one).
      socket.resume()
    }, ms).unref()
  }

  private takeToken (connection: Connection, rateClass: RateClass): number {
    let state = this.rates.get(connection)
    if (state === undefined) {
      const limits = this.config.rateLimits
      state = {
        buckets: {
          send: new TokenBucket(limits.send.rate, limits.send.burst),
          typing: new TokenBucket(limits.typing.rate, limits.typing.burst),
          other: new TokenBucket(limits.other.rate, limits.other.burst),
        },
        userSend: null,
        refusals: 0,
        windowStart: Date.now(),
        holdingOff: false,
      }
      this.rates.set(connection, state)
    }
    const bucket = state.buckets[rateClass]
    if (rateClass !== 'send' || connection.user === null) return bucket.take()
    // A send passes two buckets, the socket's and then the user's: the socket's is only looked at until
    // the user's has given its token, so a send either bucket refuses spends nothing of the other.
    const wait = bucket.wait()
    if (wait > 0) return wait
    if (state.userSend === null) {
      // Held from the first send of an open socket, given back by forget() when it closes.
      if (!connection.isOpen) return bucket.take()
      // The user is the pair (tenant, sub): the same sub in another tenant has its own budget.
      const key = userKeyOf(connection.user)
      state.userSend = { key, bucket: this.userSend.hold(key) }
    }
    const userWait = state.userSend.bucket.take()
    return userWait > 0 ? userWait : bucket.take()
  }

  private countRefusal (connection: Connection): void {
    const state = this.rates.get(connection)
    if (state === undefined) return
    const now = Date.now()
    if (now - state.windowStart > this.config.rateLimits.floodWindowMs) {
      state.windowStart = now
      state.refusals = 0
    }
    state.refusals += 1
    if (state.refusals >= this.config.rateLimits.floodRefusals) connection.close(CloseCodes.FLOODING, 'flooding')
  }
}

function fieldOf (instancePath: string, params: unknown): string {
  const path = instancePath.replace(/^\//, '').replaceAll('/', '.')
  const missing = (params as { requiredProperties?: string[] } | undefined)?.requiredProperties
  const extra = (params as { additionalProperties?: string[] } | undefined)?.additionalProperties
  const named = missing?.[0] ?? extra?.[0]
  if (named !== undefined) return path === '' ? named : `${path}.${named}`
  return path === '' ? 'data' : path
}

/** Schema of an event that takes no data. */
export const NoData = Type.Object({}, { additionalProperties: false })

declare module 'fastify' {
  interface FastifyInstance {
    chatGateway: Gateway
  }
}

export const gatewayPlugin = fp(async function gatewayPlugin (app: FastifyInstance) {
  app.decorate('chatGateway', new Gateway(app.chatConfig))
}, { name: 'chat-gateway', fastify: '5.x', dependencies: ['chat-config'] })
