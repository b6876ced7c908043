import t from 'tap'
import { SharedTimeout } from '../lib/deadline.js'
import { sleep } from './fixtures/timing.js'

t.test('commands that never answer fail within the bound, and not before 90% of it', async (t) => {
  const bound = 200
  const shared = new SharedTimeout(bound, () => new Error('no answer'))
  // The windows' timers are unref'd (they must not hold a server open): something else keeps this alive.
  const keepAlive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(keepAlive))
  const started = performance.now()
  const failures = await Promise.all(Array.from({ length: 50 }, async (_, index) => {
    await sleep(index) // spread over a quarter of the bound: some share a window, some start the next
    const begun = performance.now()
    try {
      await shared.race(new Promise<never>(() => {}))
      return -1
    } catch (error) {
      t.equal((error as Error).message, 'no answer')
      return performance.now() - begun
    }
  }))
  t.ok(failures.every((ms) => ms >= bound * 0.9 - 5), `none before 90% of the bound (shortest ${Math.min(...failures).toFixed(0)} ms)`)
  t.ok(failures.every((ms) => ms <= bound + 50), `none much after it (longest ${Math.max(...failures).toFixed(0)} ms)`)
  t.ok(performance.now() - started < bound * 3, 'the whole run ends')
})

t.test('an answer wins the race and its value comes through', async (t) => {
  const shared = new SharedTimeout(1000, () => new Error('no answer'))
  t.equal(await shared.race(Promise.resolve(7)), 7)
  await t.rejects(shared.race(Promise.reject(new Error('refused'))), { message: 'refused' }, 'and a failure is the command\'s own')
})
