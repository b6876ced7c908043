import t from 'tap'
import { clusterSkip, Peer, startProcessCluster, storm, type SendOutcome } from './fixtures/cluster.js'
import { until } from './fixtures/timing.js'

// One SIGTERM in the middle of a send storm, as a supervisor sends it (and a second one 30 ms later, as
// tsx or a shell relays it): the node drains, every acked message is stored exactly once, and the
// process exits 0.
t.test('SIGTERM during a send storm: every acked message stored once, a repeated signal ignored, exit 0', { skip: clusterSkip() }, async (t) => {
  const cluster = await startProcessCluster(t, { nodes: 1 })
  const node = cluster.nodes[0]
  if (node === undefined) throw new Error('no node')
  const peers = await Promise.all(['s1', 's2', 's3', 's4'].map((id) => Peer.connect(cluster, node, id)))
  const [owner, ...others] = peers as [Peer, ...Peer[]]
  const roomId = await owner.createRoom('storm', others)

  const outcomes: SendOutcome[] = []
  let acked = 0
  let signalled = false
  const closes = peers.map((peer) => peer.client.closed)
  const storms = peers.map((peer) => storm(peer, roomId, {
    count: 5000,
    concurrency: 4,
    onOutcome: (outcome) => {
      outcomes.push(outcome)
      if (outcome.ok) acked++
      if (!signalled && acked >= 300) {
        signalled = true
        process.kill(node.pid, 'SIGTERM')
        setTimeout(() => { process.kill(node.pid, 'SIGTERM') }, 30)
      }
    },
  }))
  await Promise.all(storms)
  const exit = await node.server.exited
  t.equal(exit.code, 0, 'the process exits 0')
  t.match(node.output(), /already closing: a repeated signal is ignored/, 'the second SIGTERM did not cut the drain short')
  const codes = (await Promise.all(closes)).map((closed) => closed.code)
  t.ok(codes.every((code) => code === 1001), `sockets heard 1001 (${codes.join(', ')})`)

  const ackedIds = outcomes.flatMap((outcome) => outcome.ok ? [outcome.id] : [])
  t.ok(ackedIds.length >= 300, `${ackedIds.length} sends were acked before and during the close`)
  const rows = await cluster.sql<Array<{ id: string }>>`select id from chat.messages where room_id = ${roomId}`
  const stored = new Set(rows.map((row) => row.id))
  const lost = ackedIds.filter((id) => !stored.has(id))
  t.same(lost, [], 'no acked message is missing')
  const [dupes] = await cluster.sql<Array<{ n: number }>>`
    select count(*)::int as n from (select client_msg_id from chat.messages where room_id = ${roomId}
      group by sender_id, client_msg_id having count(*) > 1) as d`
  t.equal(dupes?.n, 0, 'none is stored twice')
  const counts = await cluster.counts()
  t.equal(counts.distinctSeqs, counts.logEntries, 'seqs are unique')
  await until('the node is gone', () => !node.alive, { timeoutMs: 5000 })
})
