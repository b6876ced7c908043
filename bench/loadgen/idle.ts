/**
 * The idle scenario: `sockets` sockets opened and held: the servers' RSS per socket (after a full GC,
 * against a baseline taken after a warm-up) and CPU per connect.
 */
import { round } from '../lib.js'
import { PROTOCOLS } from '../protocols.js'
import { connectWithRetry, log, pool, tokenSigner } from './driver.js'
import { cpuOf, rssAfterGc } from './server-usage.js'
import type { IdleConfig, IdleResult } from './types.js'

export async function idle (config: IdleConfig): Promise<IdleResult> {
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
