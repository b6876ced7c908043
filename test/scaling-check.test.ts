import t from 'tap'
import type { Figures } from '../bench/scaling/analysis.js'
import { agreement, agreementReport } from '../bench/scaling/check.js'
import { batchSize, cpuPerMessageAt, perDelivery, postgresPerSend, serverPerSend, subscribingNodes } from '../bench/scaling/model.js'

// A run that measured exactly what the model says at 500 sends/s per sending node, 4 nodes, rooms of 20.
const shape = { nodes: 4, roomSize: 20, sendersPerWindow: 2 }
const batch = batchSize(500)
const subscribers = subscribingNodes(4, 20)
function figures (scale: { send?: number, publish?: number } = {}): Figures {
  const node = { sockets: 5000, idleCoreShare: 0.01, cpuPerDelivery: perDelivery(20 / subscribers), cpuPerAck: serverPerSend(batch) * (scale.send ?? 1), rssPerSocket: 0, rssPerSocketAfterGc: 0, rssPerSocketFromFresh: 0, sendingCoreShare: 0.3 }
  return {
    nodes: [0, 1, 2, 3].map((index) => ({ ...node, node: index })),
    messages: 30000,
    messagesPerSecond: 1000,
    deliveriesPerMessage: 19,
    cpuPerMessage: cpuPerMessageAt(500, 19, 4, 20),
    postgresPerSend: postgresPerSend(batch),
    databasePerSend: postgresPerSend(batch),
    publishesPerMessage: scale.publish ?? 1,
    evalsPerMessage: 1 - 1 / batch,
    redisCallsPerMessage: 1,
    redisIdleCallsPerSecond: 0,
    errors: 0,
    skipped: 0,
  }
}

t.test('the agreement check: PASS when the run measured the model, FAIL per figure outside its margin', async (t) => {
  const exact = agreement(figures(), shape, subscribers)
  t.equal(exact.length, 9)
  t.ok(exact.every((check) => check.pass), 'every figure passes when measured equals model')
  t.match(agreementReport(exact), /agreement: PASS, all 9 figures within their margin/)

  const dearSends = agreement(figures({ send: 1.4 }), shape, subscribers)
  t.same(dearSends.filter((check) => !check.pass).map((check) => check.figure), ['server CPU per ack (median of nodes)'], 'a send 40% dearer fails the ±35% CPU margin')
  t.ok(agreement(figures({ send: 1.3 }), shape, subscribers).every((check) => check.pass), '30% is within it')

  const fewerPublishes = agreementReport(agreement(figures({ publish: 0.85 }), shape, subscribers))
  t.match(fewerPublishes, /\| Redis PUBLISH per message \| 1\.00 +\| 0\.85 +\| 0\.85 \| ±10% \| FAIL \|/)
  t.match(fewerPublishes, /agreement: FAIL, 1 of 9 figures outside their margin/, 'the verdict counts it (1 + s, 4.84 of 4.99, stays within)')
})

t.test('the model\'s send costs fall with the batch, and the batch grows with the rate', async (t) => {
  t.ok(batchSize(2500) > batchSize(250), 'more sends per batch at a higher rate')
  t.ok(serverPerSend(batchSize(2500)) < serverPerSend(batchSize(250)))
  t.ok(Math.abs(serverPerSend(120) - 40) < 0.01 && Math.abs(postgresPerSend(120) - 38) < 0.01, 'the saturated benchmark\'s figures at its batch of 120')
  t.ok(Math.abs(perDelivery(499) - 10) < 0.01, 'and its 10 µs per delivery at 499 sockets per frame')
})
