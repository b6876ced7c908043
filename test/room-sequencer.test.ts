import t from 'tap'
import Fastify from 'fastify'
import { RoomSequencer } from '../lib/room-sequencer.js'
import { GroupCommit } from '../lib/group-commit.js'
import { Turns } from '../lib/turns.js'
import { sleep } from './fixtures/timing.js'

function harness (stored: Array<{ seq: number, frame: string }> = []) {
  const delivered: string[] = []
  const fetches: Array<[number, number | undefined]> = []
  const sequencer = new RoomSequencer({
    deliver: (_roomId, frame) => delivered.push(frame),
    fetch: async (_roomId, after, upTo) => {
      fetches.push([after, upTo])
      return stored.filter((event) => event.seq > after && (upTo === undefined || event.seq <= upTo))
    },
    log: Fastify({ logger: false }).log,
    reorderWindowMs: 20,
  })
  return { delivered, fetches, sequencer }
}

t.test('delivers in seq order, reordering early frames and dropping duplicates', async (t) => {
  const { delivered, sequencer, fetches } = harness()
  sequencer.baseline('r', 0)
  sequencer.accept('r', 2, 'two', null)
  sequencer.accept('r', 3, 'three', null)
  t.same(delivered, [], 'waits for seq 1')
  sequencer.accept('r', 1, 'one', null)
  sequencer.accept('r', 2, 'two again', null)
  sequencer.accept('r', null, 'ephemeral', null)
  t.same(delivered, ['one', 'two', 'three', 'ephemeral'])
  t.same(fetches, [], 'no database read when the gap closes in time')
  sequencer.close()
})

t.test('a gap that stays open is filled from the database', async (t) => {
  const { delivered, sequencer, fetches } = harness([{ seq: 1, frame: 'one from db' }, { seq: 2, frame: 'two from db' }])
  sequencer.baseline('r', 0)
  sequencer.accept('r', 3, 'three', null)
  await sleep(60)
  t.same(delivered, ['one from db', 'two from db', 'three'])
  t.same(fetches, [[0, 2]])
  sequencer.close()
})

t.test('catch up after a broker outage reads what was missed', async (t) => {
  const { delivered, sequencer } = harness([{ seq: 1, frame: 'one' }, { seq: 2, frame: 'two' }])
  sequencer.baseline('r', 0)
  sequencer.catchUpAll()
  await sleep(10)
  t.same(delivered, ['one', 'two'])
  sequencer.close()
})

t.test('catchUp delivers what was committed up to a seq, and resolves only once it is delivered', async (t) => {
  const { delivered, sequencer, fetches } = harness([{ seq: 4, frame: 'four' }, { seq: 5, frame: 'five' }, { seq: 6, frame: 'six' }])
  sequencer.baseline('r', 3)
  await sequencer.catchUp('r', 5)
  t.same(delivered, ['four', 'five'], 'up to the committed seq, not past it')
  t.same(fetches, [[3, 5]])
  t.equal(sequencer.delivered('r'), 5)
  await sequencer.catchUp('r', 5)
  t.same(fetches, [[3, 5]], 'nothing to read when the room is caught up')
  sequencer.close()
})

t.test('catchUp while a gap fill runs waits for it, then reads the rest', async (t) => {
  const stored = [{ seq: 1, frame: 'one' }, { seq: 2, frame: 'two' }, { seq: 3, frame: 'three' }, { seq: 4, frame: 'four' }]
  const delivered: string[] = []
  const fetches: Array<[number, number | undefined]> = []
  let release = (): void => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const sequencer = new RoomSequencer({
    deliver: (_roomId, frame) => delivered.push(frame),
    fetch: async (_roomId, after, upTo) => {
      fetches.push([after, upTo])
      if (fetches.length === 1) await gate
      return stored.filter((event) => event.seq > after && (upTo === undefined || event.seq <= upTo))
    },
    log: Fastify({ logger: false }).log,
    reorderWindowMs: 5,
  })
  sequencer.baseline('r', 0)
  sequencer.accept('r', 2, 'two', null)
  await sleep(30)
  t.same(fetches, [[0, 1]], 'the gap fill for seq 1 is under way')
  let caughtUp = false
  const catching = sequencer.catchUp('r', 4).then(() => { caughtUp = true })
  await sleep(10)
  t.notOk(caughtUp, 'catchUp waits for the fill in progress')
  release()
  await catching
  t.same(delivered, ['one', 'two', 'three', 'four'], 'each once, in order')
  t.same(fetches, [[0, 1], [2, 4]], 'then reads only what the fill did not')
  sequencer.close()
})

t.test('catchUp stops when the read fails (the next gap fill retries) instead of spinning', async (t) => {
  let reads = 0
  const sequencer = new RoomSequencer({
    deliver: () => {},
    fetch: async () => { reads += 1; throw new Error('database down') },
    log: Fastify({ logger: false }).log,
  })
  sequencer.baseline('r', 0)
  await sequencer.catchUp('r', 3)
  t.equal(reads, 1)
  t.equal(sequencer.delivered('r'), 0)
  sequencer.close()
})

t.test('group commit batches concurrent submissions and keeps per-item results', async (t) => {
  const batches: number[][] = []
  const commit = new GroupCommit<number, number>({
    maxBatch: 4,
    maxWaitMs: 5,
    flush: async (items) => {
      batches.push(items)
      await sleep(5)
      return items.map((item) => item === 7 ? new Error('seven') : item * 10)
    },
  })
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, index) => commit.submit(index)))
  t.same(results.map((result) => result.status === 'fulfilled' ? result.value : (result.reason as Error).message),
    [0, 10, 20, 30, 40, 50, 60, 'seven', 80, 90])
  t.ok(batches.length <= 4, `10 writes in ${batches.length} batches`)
  t.ok(batches.every((batch) => batch.length <= 4), 'no batch over maxBatch')
  t.same(batches.flat(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'in submission order')
  const late = commit.submit(11)
  await commit.drain()
  t.equal(await late, 110, 'drain waits for queued writes')
})

t.test('group commit: an idle database gets a batch when the turn ends; a busy one, company for maxWaitMs', async (t) => {
  const batches: number[][] = []
  let finishFirst = (): void => {}
  const commit = new GroupCommit<number, number>({
    maxBatch: 100,
    maxWaitMs: 60000,
    maxInFlight: 2,
    flush: async (items) => {
      batches.push(items)
      if (items[0] === 1) await new Promise<void>((resolve) => { finishFirst = resolve })
      return items.map((item) => item * 10)
    },
  })
  const first = [commit.submit(1), commit.submit(2), commit.submit(3)]
  await new Promise((resolve) => setImmediate(resolve))
  t.same(batches, [[1, 2, 3]], 'the submissions of one turn went together, without waiting maxWaitMs')
  const second = commit.submit(4)
  await sleep(50)
  t.same(batches, [[1, 2, 3]], 'with a batch in flight, the next one waits for company')
  finishFirst()
  t.same(await Promise.all(first), [10, 20, 30])
  t.equal(await second, 40, 'and goes as soon as the batch in flight is done')
  t.same(batches, [[1, 2, 3], [4]])
})

t.test('group commit: a released batch frees its slot, and drain still waits for its results', async (t) => {
  const log: string[] = []
  let finishFirst = (): void => {}
  const commit = new GroupCommit<number, number>({
    maxBatch: 1,
    maxWaitMs: 0,
    maxInFlight: 1,
    flush: async (items, release) => {
      const item = items[0] as number
      log.push(`start ${item}`)
      release()
      if (item === 1) await new Promise<void>((resolve) => { finishFirst = resolve })
      log.push(`end ${item}`)
      return [item * 10]
    },
  })
  const first = commit.submit(1)
  const second = commit.submit(2)
  t.equal(await second, 20, 'the next batch ran while the released one was still busy')
  t.same(log, ['start 1', 'start 2', 'end 2'])
  let drained = false
  const draining = commit.drain().then(() => { drained = true })
  await sleep(10)
  t.notOk(drained, 'drain waits for the released batch')
  finishFirst()
  await draining
  t.equal(await first, 10)
  t.same(log, ['start 1', 'start 2', 'end 2', 'end 1'])
})

t.test('group commit: a batch never takes a key that a batch in flight holds; other keys go at once', async (t) => {
  const batches: string[][] = []
  const finish = new Map<string, () => void>()
  const commit = new GroupCommit<string, string>({
    maxBatch: 3,
    maxWaitMs: 0,
    maxInFlight: 2,
    keyOf: (item) => item.charAt(0),
    flush: async (items) => {
      batches.push(items)
      await new Promise<void>((resolve) => { finish.set(items[0] as string, resolve) })
      return items
    },
  })
  // Room a's burst is longer than maxBatch: its second part must wait for its first to be written.
  const sends = ['a1', 'a2', 'a3', 'a4', 'b1', 'c1'].map((item) => commit.submit(item))
  await sleep(5)
  t.same(batches, [['a1', 'a2', 'a3'], ['b1', 'c1']], 'the second batch skips room a and takes the others')
  sends.push(commit.submit('a5'))
  finish.get('b1')?.()
  await sleep(5)
  t.same(batches.length, 2, 'room a still waits while its batch is in flight, though a slot is free')
  finish.get('a1')?.()
  await sleep(5)
  t.same(batches[2], ['a4', 'a5'], 'then its waiting sends go, in their order')
  finish.get('a4')?.()
  t.same(await Promise.all(sends), ['a1', 'a2', 'a3', 'a4', 'b1', 'c1', 'a5'])
  const drained = commit.submit('a6')
  await new Promise((resolve) => setImmediate(resolve))
  finish.get('a6')?.()
  await commit.drain()
  t.equal(await drained, 'a6')
})

t.test('turns: work of one key resumes in the order it began, whatever order the awaits answer in', async (t) => {
  const turns = new Turns()
  const order: number[] = []
  // Each caller awaits something that answers in reverse order (a slow hook for the first one).
  const callers = [30, 20, 10, 0].map(async (delay, index) => {
    const turn = turns.take('room\u0000alice')
    try {
      if (turn.ready !== null) await turn.ready
      await sleep(delay)
      if (index === 2) throw new Error('refused')
      order.push(index)
    } finally {
      turn.done()
    }
  })
  const other = turns.take('room\u0000bob')
  t.equal(other.ready, null, 'another key does not wait')
  other.done()
  await Promise.allSettled(callers)
  t.same(order, [0, 1, 3], 'in the order begun; a refused one lets the next go')
  t.equal(turns.size, 0, 'nothing is kept once every turn is done')
})
