import fp from 'fastify-plugin'
import fastifyRateLimit, { normalizeIP } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { chatError } from './errors.js'
import { TokenBucket } from '../../lib/token-bucket.js'
import { userKeyOf } from '../../lib/user-key.js'

/**
 * The address a client is counted by: IPv4 as is, IPv6 by its /64 (one host usually holds a whole /64,
 * so counting single IPv6 addresses would count nothing), IPv4-mapped IPv6 as IPv4. The same rule as
 * @fastify/rate-limit's. Behind a proxy, `request.ip` is the proxy's unless the host set `trustProxy`.
 */
export function clientAddress (ip: string): string {
  try {
    return normalizeIP(ip, 64)
  } catch {
    return ip
  }
}

/**
 * Token buckets shared by every socket of one key (a user) on this node. A socket takes a hold when it
 * first needs the bucket and gives it back when it closes. A bucket whose last hold is gone is kept
 * until it would have refilled completely (burst / rate seconds), so that closing and reopening sockets
 * never hands out a fresh burst; after that it is dropped, which is the same as keeping a full bucket.
 * Memory therefore follows the users active within one refill time. No timer: idle buckets are swept
 * on each hold and release.
 */
export class SharedBuckets {
  private readonly entries = new Map<string, { bucket: TokenBucket, holds: number, idleSince: number }>()
  /** Keys whose last hold went, in the order it went. */
  private readonly idle: Array<{ key: string, at: number }> = []
  private idleHead = 0
  private readonly refillMs: number

  constructor (private readonly rate: number, private readonly burst: number) {
    this.refillMs = Math.ceil(burst / rate * 1000)
  }

  /** Takes a hold on the key's bucket (creating it full); pair with one release. */
  hold (key: string, now = Date.now()): TokenBucket {
    this.sweep(now)
    let entry = this.entries.get(key)
    if (entry === undefined) {
      entry = { bucket: new TokenBucket(this.rate, this.burst, now), holds: 0, idleSince: 0 }
      this.entries.set(key, entry)
    }
    entry.holds += 1
    return entry.bucket
  }

  release (key: string, now = Date.now()): void {
    const entry = this.entries.get(key)
    if (entry !== undefined && entry.holds > 0) {
      entry.holds -= 1
      if (entry.holds === 0) {
        entry.idleSince = now
        this.idle.push({ key, at: now })
      }
    }
    this.sweep(now)
  }

  /** Buckets kept (held, or idle and not yet full again). */
  get size (): number {
    return this.entries.size
  }

  private sweep (now: number): void {
    while (this.idleHead < this.idle.length) {
      const next = this.idle[this.idleHead] as { key: string, at: number }
      if (now - next.at < this.refillMs) break
      this.idleHead += 1
      const entry = this.entries.get(next.key)
      // Only if it stayed idle since then: a hold taken meanwhile (and released later) queued again.
      if (entry !== undefined && entry.holds === 0 && entry.idleSince === next.at) this.entries.delete(next.key)
    }
    if (this.idleHead > 1024 && this.idleHead * 2 > this.idle.length) {
      this.idle.splice(0, this.idleHead)
      this.idleHead = 0
    }
  }
}

/** Open sockets per client address on this node, against a cap (0: no cap, nothing is counted). */
export class AddressSlots {
  private readonly counts = new Map<string, number>()

  constructor (private readonly max: number) {}

  /** Counts a socket of the address; false (and nothing counted) when the address is at its cap. */
  acquire (address: string): boolean {
    if (this.max <= 0) return true
    const current = this.counts.get(address) ?? 0
    if (current >= this.max) return false
    this.counts.set(address, current + 1)
    return true
  }

  release (address: string): void {
    if (this.max <= 0) return
    const current = this.counts.get(address) ?? 0
    if (current <= 1) this.counts.delete(address)
    else this.counts.set(address, current - 1)
  }

  get size (): number {
    return this.counts.size
  }
}

/**
 * The REST rate limit, @fastify/rate-limit on every route of the context it is registered in: the API
 * context (routes/api), so the socket endpoint, /health, /ready, /metrics, /docs and the host's own
 * routes are never limited, by construction rather than by their URLs.
 *
 * `restRateLimit.max` requests per `restRateLimit.timeWindowMs` for each caller, the caller being the
 * user of a valid bearer token (`request.chatUser`, verified once by the API context's onRequest hook of
 * plugins/auth/request-auth.ts, which runs first) or else the client's address. One budget per caller
 * across the whole API, kept in Redis (under `redisPrefix`) when the suite has Redis, so the limit holds
 * across nodes; in this node's memory otherwise. Over it: 429 `RATE_LIMITED` in Fastify's error shape
 * with `Retry-After`. Counted before the body is read, so a flood costs a token check per request at most.
 */
export const rateLimitPlugin = fp(async function rateLimitPlugin (app: FastifyInstance) {
  const config = app.chatConfig
  const limit = config.restRateLimit
  if (limit === false || limit.max === 0) return

  await app.register(fastifyRateLimit, {
    global: true,
    max: limit.max,
    timeWindow: limit.timeWindowMs,
    hook: 'onRequest',
    // A Redis outage must not turn every REST call into an error: the limit is skipped until it is back
    // (the node reports itself unready meanwhile, see /ready).
    skipOnError: true,
    ...(app.chatRedis !== null ? { redis: app.chatRedis, nameSpace: `${config.redisPrefix}ratelimit:` } : { cache: 10000 }),
    keyGenerator (request: FastifyRequest): string {
      // A bad token is answered 401 after this count: it is counted against the address meanwhile.
      const user = request.chatUser
      return user !== null ? `u:${userKeyOf(user)}` : `ip:${clientAddress(request.ip)}`
    },
    errorResponseBuilder (_request, context) {
      return chatError('RATE_LIMITED', `rate limit exceeded, retry in ${context.after}`, { retryAfterMs: context.ttl })
    },
  })
}, { name: 'chat-rate-limit', fastify: '5.x', dependencies: ['chat-config', 'chat-broker', 'chat-request-auth'] })
