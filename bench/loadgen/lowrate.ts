/**
 * The low-rate scenario: the fan-out room (room-load.ts) at the ordinary rates of a chat, a few senders
 * at a steady 20 and then 50 messages/s, each held for seconds rather than stepped up. Per rate: the
 * servers' CPU per delivery and as a share of a core, and the send-to-receive p50/p99. Before any load,
 * the servers' CPU over a quiet window right after the room is set up: what setting it up leaves running.
 */
import { round, sleep } from '../lib.js'
import { log } from './driver.js'
import { openRoomLoad } from './room-load.js'
import { cpuOf } from './server-usage.js'
import type { LowrateConfig, LowrateResult, FanoutStep } from './types.js'

export async function lowrate (config: LowrateConfig): Promise<LowrateResult> {
  const load = await openRoomLoad(config)

  const cpuBefore = cpuOf(config.pids)
  const quietStart = performance.now()
  await sleep(config.afterSetupMs)
  const afterSetupCores = (cpuOf(config.pids) - cpuBefore) / 1e6 / ((performance.now() - quietStart) / 1000)
  log(`after setup, no traffic: ${(afterSetupCores * 100).toFixed(1)}% of a core over ${config.afterSetupMs / 1000} s`)

  const warm = load.sendAt(config.rates[0] as number)
  await sleep(config.warmMs)
  warm.stop()
  await load.quiet(2000)

  const steps: FanoutStep[] = []
  for (const rate of config.rates) {
    steps.push(await load.step(rate, { warmMs: 500, stepMs: config.stepMs, drainMs: config.drainMs }))
    await load.quiet(3000)
  }
  const closedSockets = load.closedSockets
  load.close()
  return {
    scenario: 'lowrate',
    members: config.members,
    senders: config.senders,
    nodes: config.urls.length,
    afterSetupCpuCores: round(afterSetupCores, 3),
    steps,
    ackErrors: load.ackErrors,
    closedSockets,
    otherPushes: load.otherPushes,
  }
}
