/**
 * The fan-out scenario: one room of `members` sockets spread over the nodes, `senders` of them sending
 * at aggregate rates stepped up in order; per step, the latency from a send to the sampled receivers and
 * the servers' CPU per delivery, until the p99 passes `stopP99Ms`.
 */
import { sleep } from '../lib.js'
import { log } from './driver.js'
import { openRoomLoad } from './room-load.js'
import type { FanoutConfig, FanoutResult, FanoutStep } from './types.js'

export async function fanout (config: FanoutConfig): Promise<FanoutResult> {
  const load = await openRoomLoad(config)

  // Warm-up: JIT and connection pools, not measured.
  const warm = load.sendAt(config.rates[0] as number)
  await sleep(1000)
  warm.stop()
  await load.quiet(2000)

  const steps: FanoutStep[] = []
  const discarded: FanoutStep[] = []
  // The machine is shared: a step whose p99 passes the limit is measured once more before the run
  // stops (at most twice per run), so that one burst of someone else's work does not end it.
  let repeats = 0
  for (let stepIndex = 0; stepIndex < config.rates.length; stepIndex += 1) {
    const rate = config.rates[stepIndex] as number
    const step = await load.step(rate, config)
    const over = step.p99 === null || step.p99 > config.stopP99Ms
    const repeated = discarded.at(-1)?.rate === rate
    if (over && !repeated && repeats < 2) {
      repeats += 1
      discarded.push(step)
      log(`p99 past ${config.stopP99Ms} ms: measuring ${rate}/s once more`)
      await load.quiet(3000)
      stepIndex -= 1
      continue
    }
    steps.push(step)
    if (over) break
    await load.quiet(3000)
  }
  const closedSockets = load.closedSockets
  load.close()
  return { scenario: 'fanout', members: config.members, senders: config.senders, nodes: config.urls.length, steps, discarded, ackErrors: load.ackErrors, closedSockets, otherPushes: load.otherPushes }
}
