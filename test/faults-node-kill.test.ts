import t from 'tap'
import { clusterSkip, duplicatesOf, isRun, Peer, type SendOutcome, startProcessCluster, storm } from './fixtures/cluster.js'
import { sleep, until } from './fixtures/timing.js'

const skip = clusterSkip()

/** The last seq up to which `seqs` holds every seq from 1 on: a client's resume cursor. */
function cursorOf (seqs: Iterable<number>): number {
  const held = new Set(seqs)
  let cursor = 0
  while (held.has(cursor + 1)) cursor += 1
  return cursor
}

t.test('a node SIGKILLed in a send storm: every acked message is stored and reaches every client, and its clients resume elsewhere without loss or duplicates', { skip }, async (t) => {
  const cluster = await startProcessCluster(t, { nodes: 3 })
  const [n1, n2, n3] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]]
  const s1 = await Peer.connect(cluster, n1, 's1')
  const s2 = await Peer.connect(cluster, n2, 's2')
  const s3 = await Peer.connect(cluster, n3, 's3')
  const l1 = await Peer.connect(cluster, n1, 'l1')
  const l2 = await Peer.connect(cluster, n2, 'l2')
  const l3 = await Peer.connect(cluster, n3, 'l3')
  const roomId = await s1.createRoom('kill-a-node', [s2, s3, l1, l2, l3])

  const outcomes: SendOutcome[] = []
  const record = (o: SendOutcome): void => { outcomes.push(o) }
  const perSender = 150
  const storms = Promise.all([s1, s2, s3].map((peer) => storm(peer, roomId, { count: perSender, concurrency: 4, pauseMs: 2, onOutcome: record })))
  await until('120 acks before the kill', () => outcomes.filter((o) => o.ok).length >= 120, { timeoutMs: 20000, everyMs: 25 })
  const ackedAtKill = outcomes.filter((o) => o.ok).length
  const s3AckedAtKill = outcomes.filter((o) => o.ok && o.clientMsgId.startsWith('s3-')).length
  await n3.kill()
  const killedAt = Date.now()
  t.comment(`${n3.name} (pid ${n3.pid}) SIGKILLed after ${ackedAtKill} acks, ${s3AckedAtKill} of them s3's`)
  const [o1, o2, o3] = await storms as [SendOutcome[], SendOutcome[], SendOutcome[]]
  t.equal(o1.filter((o) => o.ok).length, perSender, 's1 on n1: every send acked')
  t.equal(o2.filter((o) => o.ok).length, perSender, 's2 on n2: every send acked')
  const lostOfS3 = o3.filter((o) => !o.ok)
  t.ok(lostOfS3.every((o) => (o as { code: string }).code === 'LOST'), `s3 on the dead node: ${o3.filter((o) => o.ok).length} acked, ${lostOfS3.length} cut off without a reply`)
  t.equal((await s3.client.closed).code, 1006, 's3\'s socket was cut, not closed')

  // ---- the dead node's clients come back on n1 and resume from their cursors ----
  const resumed: Array<{ name: string, before: Peer, after: Peer, cursor: number, own: number[] }> = []
  for (const before of [s3, l3]) {
    const own = before === s3 ? o3.flatMap((o) => o.ok ? [o.seq] : []) : []
    const cursor = cursorOf([...before.seqs(roomId), ...own])
    const after = await Peer.connect(cluster, n1, before.userId)
    resumed.push({ name: before.userId, before, after, cursor, own })
  }
  const reconnectMs = Date.now() - killedAt
  const s3again = resumed[0]?.after as Peer
  // s3 sends again what got no reply, with the same clientMsgIds: what the dead node committed comes
  // back as the original, the rest is written now; nothing twice.
  const retried = await Promise.all(lostOfS3.map((o) => s3again.send(roomId, 'retry', o.clientMsgId)))
  t.same(retried.filter((o) => !o.ok), [], `s3's ${lostOfS3.length} unanswered sends went through on retry`)

  const last = (await cluster.sql<Array<{ last_seq: number }>>`select last_seq from chat.rooms where id = ${roomId}`)[0]?.last_seq ?? -1
  for (const { name, before, after, cursor, own } of resumed) {
    const synced = await after.syncFrom(roomId, cursor)
    // An ack can come before other nodes' pushes with lower seqs: a client keeps its own acked seqs above
    // its cursor aside and skips them when the replay brings them, as the TypeScript client's resume does
    // (docs/messaging.md).
    const replayed = synced.events.map((event) => event.seq).filter((seq) => !own.includes(seq))
    const seen = [...before.seqs(roomId), ...own, ...replayed]
    t.equal(synced.lastSeq, last, `${name}: sync reports lastSeq ${last}`)
    t.same(duplicatesOf(seen), [], `${name}: pushed before the kill + own acks + sync from ${cursor}: no duplicate`)
    t.ok(isRun([...seen].sort((a, b) => a - b), 1, last), `${name}: …and no loss: 1..${last}`)
  }

  // ---- survivors: everything by push, once, in order ----
  const survivors = [l1, l2]
  await until(`l1 and l2 to reach seq ${last} by push`, () => survivors.every((peer) => peer.lastSeq(roomId) >= last), { timeoutMs: 15000, everyMs: 25 })
  await sleep(200)
  for (const peer of survivors) {
    t.same(duplicatesOf(peer.seqs(roomId)), [], `${peer.userId} on ${peer.node.name}: no duplicate`)
    t.ok(isRun(peer.seqs(roomId), 1, last), `${peer.userId} on ${peer.node.name}: 1..${last} in order`)
  }
  for (const peer of [s1, s2]) {
    const own = outcomes.flatMap((o) => o.ok && o.clientMsgId.startsWith(`${peer.userId}-`) ? [o.seq] : [])
    const all = [...peer.seqs(roomId), ...own]
    t.same(duplicatesOf(all), [], `${peer.userId}: no duplicate`)
    t.ok(isRun([...all].sort((a, b) => a - b), 1, last), `${peer.userId}: pushes and own acks make 1..${last}`)
  }

  // ---- the database: every ack is there, nothing twice, nothing half ----
  const acked = [...outcomes, ...retried].filter((o): o is Extract<SendOutcome, { ok: true }> => o.ok)
  const stored = await cluster.sql<Array<{ id: string, seq: number, client_msg_id: string }>>`select id, seq, client_msg_id from chat.messages where room_id = ${roomId}`
  const byId = new Map(stored.map((row) => [row.id, row]))
  t.same(acked.filter((o) => byId.get(o.id)?.seq !== o.seq), [], `all ${acked.length} acked messages are stored with their seq`)
  t.equal(new Set(stored.map((row) => row.client_msg_id)).size, stored.length, 'no clientMsgId stored twice')
  const attempted = o1.length + o2.length + o3.length
  t.equal(stored.length, attempted, `${attempted} sends made, ${attempted} messages stored`)
  const counts = await cluster.counts()
  t.equal(counts.distinctSeqs, counts.logEntries, 'no seq is taken twice by the messages and the other events')
  t.equal(counts.logEntries, counts.lastSeqSum, 'one log entry (message or event) per seq taken')

  // The resumed sockets are live members again.
  const after = await s1.send(roomId, 'after the resume', 's1-after')
  const l3again = resumed[1]?.after as Peer
  t.ok(after.ok && await l3again.reaches(roomId, (after as { seq: number }).seq, 5000), 'l3, now on n1, gets new messages by push')
  t.ok(n1.alive && n2.alive && !n3.alive, 'n1 and n2 live on, n3 is gone')
  t.comment(`node kill: ${acked.length} acked (${ackedAtKill} before the kill), lost 0, duplicates 0; s3 had ${lostOfS3.length} sends cut off, all resolved by retry; dead node's clients resumed ${reconnectMs} ms after the kill`)
  for (const peer of [s1, s2, l1, l2, ...resumed.map((r) => r.after)]) peer.close()
})
