import t from 'tap'
import { clusterSkip, duplicatesOf, isRun, Peer, type SendOutcome, startProcessCluster, storm, twoNodeCast } from './fixtures/cluster.js'
import { sleep, until } from './fixtures/timing.js'

// PGlite runs inside the process and cannot become unreachable: these run on Postgres only, through a
// TCP proxy the test controls (the database server itself is shared with the other tests).
const skip = clusterSkip()

t.test('Postgres unavailable: sends fail fast with UNAVAILABLE, nothing is half written, nodes stay up and recover by themselves', { skip }, async (t) => {
  const cluster = await startProcessCluster(t, { nodes: 2, proxyDatabase: true })
  const pg = cluster.pg
  if (pg === null) throw new Error('a proxied cluster has a proxy')
  const { n1, n2, a, la, b, lb } = await twoNodeCast(cluster)
  const roomId = await a.createRoom('pg-outage', [la, b, lb])

  // A storm from both nodes, cut off in the middle: the database goes away with sends in flight.
  let cutAt = Number.POSITIVE_INFINITY
  const outcomes: Array<SendOutcome & { startedAt: number }> = []
  const record = (o: SendOutcome): void => { outcomes.push({ ...o, startedAt: Date.now() - o.ms }) }
  let stopping = false
  const storms = Promise.all([
    storm(a, roomId, { count: 100000, concurrency: 4, pauseMs: 5, tag: 'a', stop: () => stopping, onOutcome: record }),
    storm(b, roomId, { count: 100000, concurrency: 4, pauseMs: 5, tag: 'b', stop: () => stopping, onOutcome: record }),
  ])
  await until('40 acks before the cut', () => outcomes.filter((o) => o.ok).length >= 40, { timeoutMs: 15000, everyMs: 25 })
  pg.set('down')
  cutAt = Date.now()

  // While it lasts: /ready names the database, /health stays 200, the sockets stay open.
  const [down1, down2] = await Promise.all([n1.readyBecomes(503, 10000), n2.readyBecomes(503, 10000)])
  t.equal(down1.status, 503, `${n1.name} /ready 503 after ${down1.ms} ms`)
  t.same(down1.body?.down, ['database'], `${n1.name} names the database`)
  t.equal(down2.status, 503, `${n2.name} /ready 503 after ${down2.ms} ms`)
  t.same(down2.body?.down, ['database'], `${n2.name} names the database`)
  await sleep(Math.max(0, 1500 - (Date.now() - cutAt)))
  stopping = true
  await storms
  t.equal(await n1.health(), 200, `${n1.name} is alive (/health 200)`)
  t.equal(await n2.health(), 200, `${n2.name} is alive (/health 200)`)
  t.ok(n1.alive && n2.alive, 'both processes are still running')

  const afterCut = outcomes.filter((o) => o.startedAt > cutAt)
  const failed = outcomes.filter((o) => !o.ok)
  t.ok(afterCut.length >= 10, `${afterCut.length} sends were made while the database was away`)
  t.same(afterCut.filter((o) => o.ok), [], 'none of them was acked')
  t.same([...new Set(failed.map((o) => (o as { code: string }).code))], ['UNAVAILABLE'], 'every failure is UNAVAILABLE')
  const slowest = Math.max(...afterCut.map((o) => o.ms))
  t.ok(slowest < 3000, `each failed fast (slowest ${slowest} ms)`)
  // A send started after the cut cannot have reached the database: none of them is written.
  const outageIds = afterCut.map((o) => o.clientMsgId)
  const written = await cluster.sql<Array<{ client_msg_id: string }>>`select client_msg_id from chat.messages where client_msg_id = any(${outageIds})`
  t.same(written, [], 'no send made during the outage was written')
  const during = await cluster.counts()
  t.equal(during.distinctSeqs, during.logEntries, 'no seq is taken twice by the messages and the other events')
  t.equal(during.logEntries, during.lastSeqSum, 'one log entry (message or event) per seq taken')

  // ---- back ----
  pg.set('up')
  const restoredAt = Date.now()
  let probes = 0
  const recovered = await until('a send to be acked again after the database came back', async () => (await a.send(roomId, 'probe', `probe-${++probes}`, 5000)).ok, { timeoutMs: 20000, everyMs: 100 })
  t.comment(`sends are acked again ${Date.now() - restoredAt} ms after the database came back (${probes} probes)`)
  const [up1, up2] = await Promise.all([n1.readyBecomes(200, 10000), n2.readyBecomes(200, 10000)])
  t.equal(up1.status, 200, `${n1.name} ready again`)
  t.equal(up2.status, 200, `${n2.name} ready again`)

  // The clients retry what failed, with the same clientMsgId: a send whose commit was cut off on the
  // wire is answered with the original, the others are written now, each once.
  const retried = await Promise.all(failed.map((o) => (o.clientMsgId.startsWith('a-') ? a : b).send(roomId, 'retry', o.clientMsgId)))
  t.same(retried.filter((o) => !o.ok), [], `all ${failed.length} failed sends went through on retry`)
  const doubled = await cluster.sql`select client_msg_id from chat.messages group by client_msg_id having count(*) > 1`
  t.equal(doubled.length, 0, 'no clientMsgId is stored twice')
  const after = await cluster.counts()
  t.equal(after.distinctSeqs, after.logEntries, 'no seq is taken twice by the messages and the other events')
  t.equal(after.logEntries, after.lastSeqSum, 'one log entry (message or event) per seq taken')
  const acked = outcomes.filter((o) => o.ok).length
  const [probeRows] = await cluster.sql<Array<{ n: number }>>`select count(*)::int as n from chat.messages where client_msg_id like 'probe-%'`
  t.equal(after.messages, acked + failed.length + (probeRows?.n ?? 0), 'every acked and every retried send is stored, nothing else')

  // Everyone got everything, once, in order.
  const last = after.lastSeqSum
  t.ok(await la.reaches(roomId, last) && await lb.reaches(roomId, last), `both listeners reached seq ${last}`)
  await sleep(200)
  for (const peer of [la, lb]) {
    t.same(duplicatesOf(peer.seqs(roomId)), [], `${peer.userId}: no duplicate`)
    t.ok(isRun(peer.seqs(roomId), 1, last), `${peer.userId}: 1..${last} in order`)
  }
  t.comment(`postgres outage: ${acked} acked before the cut, ${afterCut.length} sends during it all UNAVAILABLE (slowest ${slowest} ms), 0 half-written; acked again ${recovered} ms after it came back`)
  for (const peer of [a, la, b, lb]) peer.close()
})


t.test('a database that stops answering (a partition): sends end UNAVAILABLE at the deadline, are rolled back, and the node recovers when it heals', { skip }, async (t) => {
  const databaseTimeoutMs = 1500
  const cluster = await startProcessCluster(t, { nodes: 1, proxyDatabase: true, chatOptions: { databaseTimeoutMs } })
  const pg = cluster.pg
  if (pg === null) throw new Error('a proxied cluster has a proxy')
  const [node] = cluster.nodes as [typeof cluster.nodes[0]]
  const a = await Peer.connect(cluster, node, 'a')
  const la = await Peer.connect(cluster, node, 'la')
  const roomId = await a.createRoom('partition', [la])
  const before = await storm(a, roomId, { count: 10, concurrency: 2, tag: 'before' })
  t.same(before.filter((o) => !o.ok), [], 'sends are acked before')

  pg.set('stall')
  const stalledAt = Date.now()
  const during = await storm(a, roomId, { count: 12, concurrency: 4, tag: 'stalled' })
  t.same(during.filter((o) => o.ok), [], 'no send is acked while the database does not answer')
  t.same([...new Set(during.map((o) => (o as { code: string }).code))], ['UNAVAILABLE'], 'each one is told UNAVAILABLE')
  const slowest = Math.max(...during.map((o) => o.ms))
  t.ok(slowest < databaseTimeoutMs + 2000, `at the deadline, not later (slowest ${slowest} ms, databaseTimeoutMs ${databaseTimeoutMs})`)
  t.equal(await node.health(), 200, 'the node is alive')
  const notReady = await node.readyBecomes(503, 5000)
  t.equal(notReady.status, 503, '/ready says so')

  pg.set('up')
  const healedAt = Date.now()
  let probes = 0
  const recovered = await until('a send to be acked again after the partition healed', async () => (await a.send(roomId, 'probe', `probe-${++probes}`, 5000)).ok, { timeoutMs: 20000, everyMs: 100 })
  t.comment(`acked again ${Date.now() - healedAt} ms after the partition healed (outage ${healedAt - stalledAt} ms)`)
  // The held transactions ran on once the bytes flowed: each saw its deadline had passed and rolled back.
  await sleep(500)
  const stalledIds = during.map((o) => o.clientMsgId)
  const written = await cluster.sql`select client_msg_id from chat.messages where client_msg_id = any(${stalledIds})`
  t.same(written, [], 'none of the sends told UNAVAILABLE was written')
  const counts = await cluster.counts()
  t.equal(counts.distinctSeqs, counts.logEntries, 'no seq is taken twice by the messages and the other events')
  t.equal(counts.logEntries, counts.lastSeqSum, 'one log entry (message or event) per seq taken')
  const last = counts.lastSeqSum
  t.ok(await la.reaches(roomId, last) && isRun(la.seqs(roomId), 1, last), `la saw 1..${last} in order`)
  t.comment(`partition: ${during.length} sends UNAVAILABLE at ${slowest} ms at most (deadline ${databaseTimeoutMs} ms), 0 written; acked again ${recovered} ms after healing`)
  a.close()
  la.close()
})
