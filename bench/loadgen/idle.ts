/**
 * The idle scenario: `sockets` sockets opened and held: the servers' CPU per connect, their CPU over a
 * quiet window with every socket open and no traffic, and their RSS per socket over a baseline taken
 * after a warm-up and a full GC, read twice: as the process shows it when left alone (after the quiet
 * window, nothing forced since the baseline), and after another full GC.
 */
import { round, sleep } from '../lib.js'
import { PROTOCOLS } from '../protocols.js'
import { connectWithRetry, log, pool, tokenSigner } from './driver.js'
import { cpuOf, rssAfterGc, rssOf } from './server-usage.js'
import type { IdleConfig, IdleResult } from './types.js'

export async function idle (config: IdleConfig): Promise<IdleResult> {
  const protocol = PROTOCOLS[config.target]
  const token = tokenSigner(config.secret)
  // Warm-up: a few hundred sockets come and go first, so that code compiled and pools opened on the
  // first connections are in the baseline and not counted per socket.
  const warm = await pool(Array.from({ length: Math.min(200, config.sockets) }, (_, index) => `${config.tag}-w${index}`), config.concurrency,
    async (id, index) => await connectWithRetry(protocol, config.urls[index % config.urls.length] as string, id, token(id)))
  for (const peer of warm) peer.close()
  // One baseline for both readings, after a full GC: left alone, a server's start-up garbage (this one's
  // is tens of MiB) is given back whenever V8 chooses, and a baseline read before that once put 5,000
  // sockets below it. From there nothing is forced until the untouched reading.
  const baselineRss = await rssAfterGc(config.pids, config.settleMs)
  const cpuBefore = cpuOf(config.pids)
  const started = performance.now()
  const ids = Array.from({ length: config.sockets }, (_, index) => `${config.tag}-i${index}`)
  const peers = await pool(ids, config.concurrency, async (id, index) => await connectWithRetry(protocol, config.urls[index % config.urls.length] as string, id, token(id)))
  const connectSeconds = (performance.now() - started) / 1000
  const cpu = cpuOf(config.pids) - cpuBefore
  log(`${peers.length} sockets connected in ${round(connectSeconds, 1)} s`)
  // The quiet window doubles as the settle time of the untouched reading: no GC is forced before it.
  const quietBefore = cpuOf(config.pids)
  const quietStart = performance.now()
  await sleep(config.quietMs)
  const quietCpuCores = (cpuOf(config.pids) - quietBefore) / 1e6 / ((performance.now() - quietStart) / 1000)
  const rssUntouched = rssOf(config.pids)
  log(`quiet for ${round(config.quietMs / 1000, 0)} s: ${round(quietCpuCores * 100, 2)}% of a core; RSS left alone ${round(rssUntouched / 1048576, 1)} MiB (baseline ${round(baselineRss / 1048576, 1)})`)
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
    rssUntouched,
    rssPerSocketUntouched: round((rssUntouched - baselineRss) / config.sockets, 0),
    quietCpuCores: round(quietCpuCores, 4),
    connectSeconds: round(connectSeconds, 2),
    cpuMicrosPerConnect: round(cpu / config.sockets, 0),
  }
}
