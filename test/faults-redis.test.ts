import t from 'tap'
import { clusterSkip, duplicatesOf, isRun, type SendOutcome, startProcessCluster, storm, twoNodeCast } from './fixtures/cluster.js'
import { sleep, until } from './fixtures/timing.js'

const skip = clusterSkip()

t.test('Redis restarts during traffic: local delivery goes on, remote clients catch up, nodes resubscribe, /ready tells', { skip }, async (t) => {
  const cluster = await startProcessCluster(t, { nodes: 2 })
  const { n1, n2, a, la, b, lb } = await twoNodeCast(cluster)
  const roomId = await a.createRoom('redis-restart', [la, b, lb])

  // Traffic from a on n1: before and into the outage, then again after it.
  let stopping = false
  const background: SendOutcome[] = []
  let traffic = storm(a, roomId, { count: 100000, concurrency: 1, pauseMs: 20, tag: 'bg', stop: () => stopping, onOutcome: (o) => background.push(o) })
  await until('10 background sends', () => background.length >= 10, { timeoutMs: 10000, everyMs: 25 })
  t.ok(await lb.reaches(roomId, 10), 'before: cross-node delivery works')

  // ---- outage ----
  await cluster.redis.stop()
  const killedAt = Date.now()
  const ackedBefore = background.filter((o) => o.ok).length
  const [down1, down2] = await Promise.all([n1.readyBecomes(503, 10000), n2.readyBecomes(503, 10000)])
  t.equal(down1.status, 503, `${n1.name} /ready is 503 (after ${down1.ms} ms)`)
  t.same(down1.body?.down, ['broker'], `${n1.name} names the broker`)
  t.equal(down2.status, 503, `${n2.name} /ready is 503 (after ${down2.ms} ms)`)
  t.same(down2.body?.down, ['broker'], `${n2.name} names the broker`)

  // Sends still commit and are acked; a's co-located listener hears them at once.
  const duringTarget = ackedBefore + 10
  await until('sends acked while Redis is down', () => background.filter((o) => o.ok).length >= duringTarget, { timeoutMs: 10000, everyMs: 25 })
  const seqWhileDown = Math.max(...background.flatMap((o) => o.ok ? [o.seq] : []))
  t.ok(await la.reaches(roomId, seqWhileDown, 5000), `local delivery goes on: la on ${n1.name} reached seq ${seqWhileDown}`)
  t.notOk(cluster.redis.running, '…while Redis is still down')
  t.same(background.filter((o) => !o.ok).map((o) => (o as { code: string }).code), [], 'no send failed')
  // Quiet from here until after the restart: what la gets next can only come from its node's catch-up.
  stopping = true
  await traffic

  // A send on n2 during the outage: its own node's listener gets the gap before it filled from the
  // database (gap detection), without any broker.
  const fromB = await b.send(roomId, 'b while down', 'b-down')
  t.ok(fromB.ok, 'b\'s send on n2 is acked while Redis is down')
  const bSeq = fromB.ok ? fromB.seq : -1
  const gapFilled = await until(`lb on ${n2.name} to get a's messages up to seq ${bSeq} through gap detection`,
    () => isRun(lb.seqs(roomId), 1, lb.lastSeq(roomId)) && lb.lastSeq(roomId) >= bSeq, { timeoutMs: 5000, everyMs: 25 })
  t.notOk(cluster.redis.running, `lb on ${n2.name} got a's messages up to seq ${bSeq} through gap detection with Redis still down (${gapFilled} ms)`)
  await sleep(Math.max(0, 1500 - (Date.now() - killedAt))) // down for a while: several reconnect attempts fail
  t.notOk(la.seqs(roomId).includes(bSeq), `la on ${n1.name} has not got b's send: nothing crossed while Redis was down`)
  const outageMs = Date.now() - killedAt

  const stillDown = await Promise.all([n1.ready(), n2.ready()])
  t.same(stillDown.map((answer) => answer.status), [503, 503], `/ready still 503 on both nodes ${Date.now() - killedAt} ms into the outage`)

  // ---- back ----
  await cluster.redis.restart()
  const restartedAt = Date.now()
  const [up1, up2] = await Promise.all([n1.readyBecomes(200, 20000), n2.readyBecomes(200, 20000)])
  t.equal(up1.status, 200, `${n1.name} ready again ${up1.ms} ms after Redis restarted`)
  t.equal(up2.status, 200, `${n2.name} ready again ${up2.ms} ms after Redis restarted`)

  // la missed b's send (published while n2 had no broker) and no later frame came to show the gap: the
  // room sequencer's catch-up after the reconnect brings it.
  await until(`la on ${n1.name} to get b's send through the catch-up after the reconnect`, () => la.lastSeq(roomId) >= bSeq, { timeoutMs: 15000, everyMs: 25 })
  t.comment(`la got b's send ${Date.now() - restartedAt} ms after the restart`)

  // Resubscribed: live traffic reaches n2 by push again, and a new room (a new channel, announced on
  // the user channel of la) delivers across nodes.
  stopping = false
  traffic = storm(a, roomId, { count: 100000, concurrency: 1, pauseMs: 20, tag: 'bg2', stop: () => stopping, onOutcome: (o) => background.push(o) })
  const afterRestart = background.length
  await until('10 background sends after the restart', () => background.length >= afterRestart + 10, { timeoutMs: 10000, everyMs: 25 })
  const pushedAgain = Math.max(...background.flatMap((o) => o.ok ? [o.seq] : []))
  await until(`lb on ${n2.name} to follow the live traffic again`, () => lb.lastSeq(roomId) >= pushedAgain, { timeoutMs: 10000, everyMs: 25 })
  stopping = true
  await traffic

  const freshId = await b.createRoom('after-restart', [la])
  const sentFresh = await b.send(freshId, 'hello across', 'fresh-1')
  t.ok(sentFresh.ok && await la.reaches(freshId, 1, 5000), 'a room created after the restart delivers across nodes')

  // Everything: every socket saw 1..last once, in order; sync agrees.
  const last = (await cluster.sql<Array<{ last_seq: number }>>`select last_seq from chat.rooms where id = ${roomId}`)[0]?.last_seq ?? -1
  t.ok(await la.reaches(roomId, last) && await lb.reaches(roomId, last), `both listeners reached seq ${last}`)
  await sleep(200)
  for (const peer of [la, lb]) {
    const seqs = peer.seqs(roomId)
    t.same(duplicatesOf(seqs), [], `${peer.userId}: no duplicate`)
    t.ok(isRun(seqs, 1, last), `${peer.userId}: 1..${last} in order, no gap`)
    const synced = await peer.syncFrom(roomId, 0)
    t.same(synced.events.map((event) => event.key), peer.pushed.filter((event) => event.roomId === roomId).map((event) => event.key), `${peer.userId}: what it was pushed is what sync replays`)
  }
  const acked = background.filter((o) => o.ok).length
  t.equal(background.filter((o) => !o.ok).length, 0, 'no background send failed')
  t.comment(`redis restart: ${acked} background sends acked (0 failed), outage ${outageMs} ms, /ready 503 after ${Math.max(down1.ms, down2.ms)} ms, 200 again ${Math.max(up1.ms, up2.ms)} ms after the restart; ${last} events seen once by each listener`)
  for (const peer of [a, la, b, lb]) peer.close()
})
