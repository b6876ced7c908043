import type { RedisOptions } from 'ioredis'
import { parseHostList, parseUserInfo, redactedUserInfo, type Credentials, type HostPort } from './redis-url-parts.js'

/**
 * `redis+sentinel://[user:password@]host[:port][,host[:port]...]/primaryName[/db]`, `rediss+sentinel://`
 * for TLS (to the Sentinels and to the Redis servers alike). The hosts are Sentinels (port 26379 unless
 * given); user and password are the Redis servers' (ACL or requirepass); Sentinels with a password of
 * their own take `?sentinelUsername=…&sentinelPassword=…`, since the two are often not the same.
 */
export const SENTINEL_URL_FORM = 'redis+sentinel://[user:password@]host[:port][,host[:port]...]/primaryName[/db][?sentinelPassword=…]'

const SENTINEL_URL = /^(rediss?)\+sentinel:\/\/(?:([^@/]*)@)?([^/?#]+)\/([^/?#]+)(?:\/([^/?#]*))?\/?(?:\?([^#]*))?$/
const DEFAULT_SENTINEL_PORT = 26379
const QUERY_KEYS = new Set(['sentinelUsername', 'sentinelPassword'])

export function isSentinelUrl (url: string): boolean {
  return /^rediss?\+sentinel:\/\//.test(url)
}

export interface SentinelTarget extends Credentials {
  sentinels: HostPort[]
  /** The name the Sentinels monitor the primary under (`sentinel monitor <name> …`). */
  name: string
  db: number
  tls: boolean
  sentinelUsername?: string
  sentinelPassword?: string
}

export function parseSentinelUrl (url: string): SentinelTarget {
  const match = SENTINEL_URL.exec(url)
  if (match === null) throw new Error(`a Redis Sentinel URL is ${SENTINEL_URL_FORM}`)
  const [, scheme, auth, hosts, name, dbText, query] = match as unknown as [string, string, string | undefined, string, string, string | undefined, string | undefined]
  const db = dbText === undefined || dbText === '' ? 0 : /^\d+$/.test(dbText) ? Number(dbText) : NaN
  if (!Number.isInteger(db)) throw new Error(`a Redis Sentinel URL's database "${dbText ?? ''}" is not a number`)
  const target: SentinelTarget = {
    sentinels: parseHostList(hosts, DEFAULT_SENTINEL_PORT, 'a Sentinel'),
    name: decodeURIComponent(name),
    db,
    tls: scheme === 'rediss',
    ...parseUserInfo(auth),
  }
  for (const [key, value] of new URLSearchParams(query ?? '')) {
    if (!QUERY_KEYS.has(key)) throw new Error(`a Redis Sentinel URL takes ${[...QUERY_KEYS].join(' and ')} as parameters, not "${key}"`)
    if (key === 'sentinelUsername') target.sentinelUsername = value
    else target.sentinelPassword = value
  }
  return target
}

/**
 * ioredis options for the primary behind the URL's Sentinels. ioredis asks a Sentinel for the primary's
 * address on every (re)connect and checks the server's role once connected, so after a failover the
 * reconnect lands on the promoted replica. `failoverDetector` also subscribes to the Sentinels'
 * `+switch-master` and drops the connection at once: without it, a client that can still reach a
 * demoted primary (a partition, a manual failover) would stay on it until that connection broke.
 */
export function sentinelOptions (target: SentinelTarget): RedisOptions {
  return {
    sentinels: target.sentinels,
    name: target.name,
    role: 'master',
    failoverDetector: true,
    ...(target.db !== 0 ? { db: target.db } : {}),
    ...(target.username !== undefined ? { username: target.username } : {}),
    ...(target.password !== undefined ? { password: target.password } : {}),
    ...(target.sentinelUsername !== undefined ? { sentinelUsername: target.sentinelUsername } : {}),
    ...(target.sentinelPassword !== undefined ? { sentinelPassword: target.sentinelPassword } : {}),
    // ioredis applies `tls` to a Sentinel-found server only with enableTLSForSentinelMode, and reaches
    // the Sentinels themselves over `sentinelTLS`.
    ...(target.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
  }
}

export function redactSentinelUrl (target: SentinelTarget): string {
  const query = [
    ...(target.sentinelUsername !== undefined ? [`sentinelUsername=${encodeURIComponent(target.sentinelUsername)}`] : []),
    ...(target.sentinelPassword !== undefined ? ['sentinelPassword=***'] : []),
  ]
  return `${target.tls ? 'rediss' : 'redis'}+sentinel://${redactedUserInfo(target)}${target.sentinels.map((node) => `${node.host}:${node.port}`).join(',')}` +
    `/${encodeURIComponent(target.name)}${target.db !== 0 ? `/${target.db}` : ''}${query.length > 0 ? `?${query.join('&')}` : ''}`
}
