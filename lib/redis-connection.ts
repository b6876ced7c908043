import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import { parseHostList, parseUserInfo, redactedUserInfo, type HostPort } from './redis-url-parts.js'
import { isSentinelUrl, parseSentinelUrl, redactSentinelUrl, sentinelOptions, SENTINEL_URL_FORM } from './redis-sentinel-url.js'

export { isSentinelUrl, parseSentinelUrl, type SentinelTarget } from './redis-sentinel-url.js'

/**
 * What the suite talks to Redis through: one server (or a primary behind Sentinel) as an ioredis `Redis`,
 * or a Redis Cluster as an ioredis `Cluster`. Both speak the same commands; the differences the suite
 * cares about (sharded subscribers, per-slot routing) are handled where they matter, behind isCluster.
 */
export type RedisConnection = Redis | Cluster

export function isCluster (connection: RedisConnection): connection is Cluster {
  return connection instanceof Cluster
}

/** Whether a `Redis` finds its primary through Sentinels (the URL form's, or a host's own client). */
export function isSentinelClient (connection: RedisConnection): boolean {
  return !isCluster(connection) && Array.isArray(connection.options.sentinels) && connection.options.sentinels.length > 0
}

/** The spellings of a `redis` option (and REDIS_URL) the suite accepts, for error messages. */
export const ACCEPTED_REDIS_FORMS = 'redis://[user:password@]host:port[/db] (one server; rediss:// for TLS), ' +
  'redis+cluster://[user:password@]host:port[,host:port...] (seed nodes of a Redis Cluster), ' +
  `${SENTINEL_URL_FORM} (Sentinels and the name of the primary they monitor); rediss+cluster:// and rediss+sentinel:// for TLS`

/** `redis+cluster://[user:password@]host:port[,host:port...]`; `rediss+cluster://` for TLS. */
const CLUSTER_URL = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#]+)\/?$/

export function isClusterUrl (url: string): boolean {
  return /^rediss?\+cluster:\/\//.test(url)
}

export interface ClusterSeeds {
  nodes: HostPort[]
  tls: boolean
  username?: string
  password?: string
}

/**
 * Seed nodes of a cluster URL. A URL cannot carry several hosts, so the form is ours: the seeds are a
 * comma-separated list after the scheme (any few of the cluster's nodes; ioredis discovers the rest).
 */
export function parseClusterUrl (url: string): ClusterSeeds {
  const match = CLUSTER_URL.exec(url)
  if (match === null) throw new Error('a Redis Cluster URL is redis+cluster://[user:password@]host:port[,host:port...]')
  const [, scheme, auth, hosts] = match as unknown as [string, string, string | undefined, string]
  return { nodes: parseHostList(hosts, 6379, 'a Redis Cluster seed'), tls: scheme === 'rediss', ...parseUserInfo(auth) }
}

/** An ioredis Cluster on the URL's seeds, with `options` over the URL's credentials and TLS. */
export function clusterFromUrl (url: string, options: ClusterOptions): Cluster {
  const seeds = parseClusterUrl(url)
  const credentials = {
    ...(seeds.username !== undefined ? { username: seeds.username } : {}),
    ...(seeds.password !== undefined ? { password: seeds.password } : {}),
    ...(seeds.tls ? { tls: {} } : {}),
  }
  return new Cluster(seeds.nodes, { ...options, redisOptions: { ...credentials, ...options.redisOptions } })
}

/**
 * A `Redis` for a `redis://` or `redis+sentinel://` URL, with `options` over what the URL says (they
 * are the suite's connection behaviour, never where to connect). `duplicate()` of it keeps the Sentinels.
 */
export function redisFromUrl (url: string, options: RedisOptions): Redis {
  if (isSentinelUrl(url)) return new Redis({ ...sentinelOptions(parseSentinelUrl(url)), ...options })
  return new Redis(url, options)
}

/**
 * Why a `redis` value is not one the suite accepts, or undefined when it is: checked once when the
 * options are resolved, so that a malformed multi-host URL fails at start with the accepted forms
 * instead of deep inside a connection attempt.
 */
export function redisUrlProblem (url: string): string | undefined {
  if (url === '') return `empty; accepted: ${ACCEPTED_REDIS_FORMS}`
  try {
    if (isClusterUrl(url)) parseClusterUrl(url)
    else if (isSentinelUrl(url)) parseSentinelUrl(url)
    else if (/^rediss?:\/\//.test(url)) new URL(url) // eslint-disable-line no-new
    else return `"${redactRedisUrl(url)}" is not a Redis URL; accepted: ${ACCEPTED_REDIS_FORMS}`
    return undefined
  } catch (error) {
    return `"${redactRedisUrl(url)}": ${error instanceof Error ? error.message : String(error)}; accepted: ${ACCEPTED_REDIS_FORMS}`
  }
}

/** The URL with its password replaced, for messages that may end up in logs. */
export function redactRedisUrl (url: string): string {
  if (isClusterUrl(url)) {
    try {
      const seeds = parseClusterUrl(url)
      return `${seeds.tls ? 'rediss' : 'redis'}+cluster://${redactedUserInfo(seeds)}${seeds.nodes.map((node) => `${node.host}:${node.port}`).join(',')}`
    } catch {
      return redactLoosely(url)
    }
  }
  if (isSentinelUrl(url)) {
    try {
      return redactSentinelUrl(parseSentinelUrl(url))
    } catch {
      return redactLoosely(url)
    }
  }
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return redactLoosely(url)
  }
}

/**
 * A URL that does not parse, still shown (the error is about its shape) but with everything that could
 * be a secret hidden: the whole user part up to the last `@`, and any …password= parameter.
 */
function redactLoosely (url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^@]*@/, '$1***@').replace(/([?&][^=&#]*password=)[^&#]*/gi, '$1***')
}
