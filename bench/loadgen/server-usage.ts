/** The servers' cost, read from /proc at the window boundaries: CPU time and resident memory of every node. */
import { cpuMicrosSync, round, rssBytes, sleep } from '../lib.js'
import { log } from './driver.js'

export function cpuOf (pids: number[]): number {
  let total = 0
  for (const pid of pids) total += cpuMicrosSync(pid)
  return total
}

/** VmRSS summed over the nodes, read as it is: no collection forced. */
export function rssOf (pids: number[]): number {
  let total = 0
  for (const pid of pids) total += rssBytes(pid)
  return total
}

/**
 * RSS after a full garbage collection in every target (SIGWINCH, see gc-on-signal.ts). Left to itself,
 * V8 gives back the heap that a busy phase grew in steps, some seconds later or not at all within a
 * minute, and the same server read anywhere from 4 to 25 KiB per socket depending on when it did. Collects
 * and reads once a second until two readings agree within 1% (at most `limitMs`); returns the last one.
 */
export async function rssAfterGc (pids: number[], limitMs: number): Promise<number> {
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
