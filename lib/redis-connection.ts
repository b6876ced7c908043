import { Cluster, type ClusterOptions } from 'ioredis'
import type { Redis } from 'ioredis'

/**
 * What the suite talks to Redis through: one server (or a primary behind Sentinel) as an ioredis `Redis`,
 * or a Redis Cluster as an ioredis `Cluster`. Both speak the same commands; the differences the suite
 * cares about (sharded subscribers, per-slot routing) are handled where they matter, behind isCluster.
 */
export type RedisConnection = Redis | Cluster

export function isCluster (connection: RedisConnection): connection is Cluster {
  return connection instanceof Cluster
}

/** `redis+cluster://[user:password@]host:port[,host:port...]`; `rediss+cluster://` for TLS. */
const CLUSTER_URL = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#]+)\/?$/

export function isClusterUrl (url: string): boolean {
  return /^rediss?\+cluster:\/\//.test(url)
}

export interface ClusterSeeds {
  nodes: Array<{ host: string, port: number }>
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
  const nodes = hosts.split(',').map((entry) => {
    const at = entry.lastIndexOf(':')
    const host = at > 0 ? entry.slice(0, at).replace(/^\[|\]$/g, '') : entry
    const port = at > 0 ? Number(entry.slice(at + 1)) : 6379
    if (host === '' || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`a Redis Cluster seed "${entry}" is not host:port`)
    return { host, port }
  })
  const seeds: ClusterSeeds = { nodes, tls: scheme === 'rediss' }
  if (auth !== undefined && auth !== '') {
    const colon = auth.indexOf(':')
    const username = decodeURIComponent(colon >= 0 ? auth.slice(0, colon) : auth)
    const password = colon >= 0 ? decodeURIComponent(auth.slice(colon + 1)) : undefined
    if (username !== '') seeds.username = username
    if (password !== undefined) seeds.password = password
  }
  return seeds
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

/** The URL with its password replaced, for messages that may end up in logs. */
export function redactRedisUrl (url: string): string {
  if (isClusterUrl(url)) {
    try {
      const seeds = parseClusterUrl(url)
      const auth = seeds.password !== undefined ? `${seeds.username ?? ''}:***@` : seeds.username !== undefined ? `${seeds.username}@` : ''
      return `${seeds.tls ? 'rediss' : 'redis'}+cluster://${auth}${seeds.nodes.map((node) => `${node.host}:${node.port}`).join(',')}`
    } catch {
      return 'an invalid Redis Cluster URL'
    }
  }
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return 'an invalid Redis URL'
  }
}
