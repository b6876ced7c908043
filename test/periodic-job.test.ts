import t from 'tap'
import { PeriodicJob } from '../lib/periodic-job.js'
import { sleep, until } from './fixtures/timing.js'

// lib/periodic-job.ts: the passes of a node's background job (the search indexer, retention, the feed
// relay). Every pass here asks for an hour's pause, so any pass that follows within a test came from a
// wake, a loop (0) or an error's delay, never from the pause running out.

const HOUR = 3_600_000

/** A pass that waits until it is let go: to act while one is under way. */
function gate (): { wait: Promise<void>, open (): void } {
  let open = (): void => {}
  const wait = new Promise<void>((resolve) => { open = resolve })
  return { wait, open }
}

void t.test('a pass runs at start, and again when woken', async (t) => {
  let passes = 0
  const job = new PeriodicJob({ run: async () => { passes += 1; return HOUR }, onError: () => HOUR })
  t.teardown(() => job.stop())
  job.start()
  await until('the first pass', () => passes === 1)
  job.wake()
  job.wake()
  await until('the pass a wake asked for', () => passes === 2)
  await sleep(20)
  t.equal(passes, 2, 'two wakes in one turn start one pass')
})

void t.test('a wake during a pass runs another once it ends', async (t) => {
  let passes = 0
  const first = gate()
  const job = new PeriodicJob({
    run: async () => {
      passes += 1
      if (passes === 1) await first.wait
      return HOUR
    },
    onError: () => HOUR,
  })
  t.teardown(() => job.stop())
  job.start()
  await until('the first pass is under way', () => passes === 1)
  job.wake()
  first.open()
  await until('the pass after it', () => passes === 2)
  t.pass('a change committed while a pass was reading is not left for the pause')
})

void t.test('a pass that asks for 0 is followed at once; a failed one by its error\'s delay', async (t) => {
  let passes = 0
  const errors: unknown[] = []
  const job = new PeriodicJob({
    run: async () => {
      passes += 1
      if (passes === 3) throw new Error('the database is away')
      return passes < 5 ? 0 : HOUR
    },
    onError: (error) => { errors.push(error); return 0 },
  })
  t.teardown(() => job.stop())
  job.start()
  await until('five passes', () => passes === 5)
  t.equal(errors.length, 1, 'the failure was reported once')
  t.match(errors[0], { message: 'the database is away' })
})

void t.test('stop waits for the pass under way, and nothing runs after it', async (t) => {
  let passes = 0
  let ended = 0
  const pass = gate()
  const job = new PeriodicJob({
    run: async () => {
      passes += 1
      await pass.wait
      ended += 1
      return 0
    },
    onError: () => 0,
    wakeDelayMs: 0,
  })
  job.start()
  await until('the pass is under way', () => passes === 1)
  let stopped = false
  const stopping = job.stop().then(() => { stopped = true })
  t.ok(job.stopped, 'stopped at once for a pass that loops and checks')
  await sleep(20)
  t.equal(stopped, false, 'stop has not returned while the pass runs')
  pass.open()
  await stopping
  t.equal(ended, 1, 'the pass ended before stop returned')
  job.wake()
  job.start()
  await sleep(20)
  t.equal(passes, 1, 'neither its 0 pause nor a wake nor start runs another')
})
