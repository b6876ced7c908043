import t from 'tap'
import { FlushWindow } from '../plugins/presence/flush-window.js'

t.test('windows grow while changes come fast and return to the base once they slow', async (t) => {
  const window = new FlushWindow(25, 1000, 200)
  t.equal(window.ms, 25, 'a quiet node pushes within the base window')
  window.flushed(4)
  t.equal(window.ms, 25, '4 users in 25 ms (160/s) is not busy')
  const grown: number[] = []
  for (let round = 0; round < 8; round += 1) {
    const ms = window.ms
    // A burst at 800 users/s: each window holds what arrived while it was open.
    window.flushed(Math.round(ms * 0.8))
    grown.push(window.ms)
  }
  t.same(grown, [50, 100, 200, 400, 800, 1000, 1000, 1000], 'doubling up to the maximum while the burst lasts')
  window.flushed(150)
  t.equal(window.ms, 25, 'a window slower than 200/s brings it back to the base')
  window.flushed(5)
  t.equal(window.ms, 50, '5 users in 25 ms is busy: the rate counts, not the window count')
  window.flushed(5)
  t.equal(window.ms, 25, 'and 5 users in 50 ms is not')
})
