import t from 'tap'
import { MicroBatch } from '../lib/micro-batch.js'

// lib/micro-batch.ts: the loads of one turn go in one call; with an in-flight bound, the loads that
// arrive while a call runs wait and go together after it, and a call that never settles is given up.

/** A call that waits until it is let go: to act while one is under way. */
function gate (): { wait: Promise<void>, open (): void } {
  let open = (): void => {}
  const wait = new Promise<void>((resolve) => { open = resolve })
  return { wait, open }
}

const nextTurn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

void t.test('the loads of one turn go in one call, each answered in its place', async (t) => {
  const calls: number[][] = []
  const batch = new MicroBatch<number, number>(async (keys) => { calls.push(keys); return keys.map((key) => key * 10) })
  const answers = await Promise.all([batch.load(1), batch.load(2), batch.load(1)])
  t.same(answers, [10, 20, 10])
  t.same(calls, [[1, 2, 1]])
})

void t.test('without a bound, every turn\'s loads go at the end of their turn', async (t) => {
  const calls: number[][] = []
  const running = gate()
  const batch = new MicroBatch<number, number>(async (keys) => { calls.push(keys); await running.wait; return keys })
  const first = batch.load(1)
  await nextTurn()
  const second = batch.load(2)
  await nextTurn()
  t.same(calls, [[1], [2]], 'the second call started while the first ran')
  running.open()
  t.same(await Promise.all([first, second]), [1, 2])
})

void t.test('with one call in flight, the loads of later turns wait and go together', async (t) => {
  const calls: number[][] = []
  const gates = [gate(), gate()]
  const batch = new MicroBatch<number, number>(async (keys) => {
    const running = gates[calls.length] ?? gate()
    calls.push(keys)
    if (calls.length > 2) running.open()
    await running.wait
    return keys.map((key) => key + 100)
  }, { inFlight: { max: 1, timeoutMs: 60_000, what: 'test loads' } })
  const first = batch.load(1)
  await nextTurn()
  t.same(calls, [[1]], 'a lone load goes at the end of its turn')
  const later = [batch.load(2)]
  await nextTurn()
  later.push(batch.load(3))
  await nextTurn()
  later.push(batch.load(4))
  await nextTurn()
  t.same(calls, [[1]], 'nothing else starts while the call runs')
  gates[0]?.open()
  t.equal(await first, 101)
  await nextTurn()
  t.same(calls, [[1], [2, 3, 4]], 'the three turns\' loads went in one call')
  gates[1]?.open()
  t.same(await Promise.all(later), [102, 103, 104])
})

void t.test('a bounded batch is split at maxBatch, and the parts still take turns', async (t) => {
  const calls: number[][] = []
  const batch = new MicroBatch<number, number>(async (keys) => { calls.push(keys); return keys }, { maxBatch: 2, inFlight: { max: 1, timeoutMs: 60_000, what: 'test loads' } })
  const answers = await Promise.all([1, 2, 3, 4, 5].map(async (key) => await batch.load(key)))
  t.same(answers, [1, 2, 3, 4, 5])
  t.same(calls, [[1, 2], [3, 4], [5]])
})

void t.test('a failed call rejects its own loads, and the next batch still goes', async (t) => {
  let failing = true
  const batch = new MicroBatch<number, number>(async (keys) => {
    if (failing) {
      failing = false
      throw new Error('the database is away')
    }
    return keys
  }, { inFlight: { max: 1, timeoutMs: 60_000, what: 'test loads' } })
  const first = t.rejects(batch.load(1), /the database is away/)
  await nextTurn()
  const second = batch.load(2)
  await first
  t.equal(await second, 2)
})

void t.test('a call that never settles is given up after its timeout, and the loads behind it go', async (t) => {
  let calls = 0
  const batch = new MicroBatch<number, number>(async (keys) => {
    calls += 1
    if (calls === 1) return await new Promise<number[]>(() => {})
    return keys
  }, { inFlight: { max: 1, timeoutMs: 200, what: 'test loads' } })
  const lost = t.rejects(batch.load(1), { code: 'UNAVAILABLE', message: /test loads did not finish within 200 ms/ })
  await nextTurn()
  const behind = batch.load(2)
  await lost
  t.equal(await behind, 2, 'the load behind the lost call was answered')
  t.equal(calls, 2)
})
