import t from 'tap'
import { Redis } from 'ioredis'
import { type Cluster, clusterSkip, duplicatesOf, isRun, Peer, type SeenEvent, startProcessCluster, storm, twoNodeCast } from './fixtures/cluster.js'
import { sleep, until } from './fixtures/timing.js'

// Real server processes on one Postgres database and one redis-server of the test's own.
const skip = clusterSkip()

async function lastSeqOf (cluster: Cluster, roomId: string): Promise<number> {
  const [row] = await cluster.sql<Array<{ last_seq: number }>>`select last_seq from chat.rooms where id = ${roomId}`
  return row?.last_seq ?? -1
}

function keysOf (events: SeenEvent[]): string[] {
  return events.map((event) => `${event.seq} ${event.key}`)
}

t.test('clients on 3 nodes in one room see the same events in the same seq order, each once', { skip }, async (t) => {
  const cluster = await startProcessCluster(t, { nodes: 3 })
  const [n1, n2, n3] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]]
  const senders = await Promise.all([Peer.connect(cluster, n1, 's1'), Peer.connect(cluster, n2, 's2'), Peer.connect(cluster, n3, 's3')])
  const listeners = await Promise.all([Peer.connect(cluster, n1, 'l1'), Peer.connect(cluster, n2, 'l2'), Peer.connect(cluster, n3, 'l3')])
  const [s1, s2, s3] = senders as [Peer, Peer, Peer]
  const roomId = await s1.createRoom('three-nodes', [s2, s3, ...listeners])

  // Senders on all three nodes at once, and edits and reactions in between: the seqs interleave across
  // nodes, and every durable event kind travels the same way.
  const perSender = 60
  const acked: number[] = []
  const mixer = async (): Promise<number[]> => {
    const seqs: number[] = []
    for (let round = 0; round < 8; round += 1) {
      await sleep(15)
      const own = await s3.send(roomId, `edit me ${round}`, `s3-edit-${round}`)
      if (!own.ok) throw new Error(`send failed: ${own.code}`)
      const edited = await s3.request('message.edit', { messageId: own.id, content: `edited ${round}` })
      const reacted = await s1.request('reaction.add', { messageId: own.id, emoji: '👍' })
      if (edited.event !== 'ack' || reacted.event !== 'ack') throw new Error(`edit/react failed: ${JSON.stringify([edited.error, reacted.error])}`)
      seqs.push(own.seq)
    }
    return seqs
  }
  const started = Date.now()
  const [o1, o2, o3] = await Promise.all([
    storm(s1, roomId, { count: perSender, onOutcome: (o) => { if (o.ok) acked.push(o.seq) } }),
    storm(s2, roomId, { count: perSender, onOutcome: (o) => { if (o.ok) acked.push(o.seq) } }),
    storm(s3, roomId, { count: perSender, onOutcome: (o) => { if (o.ok) acked.push(o.seq) } }),
    mixer(),
  ])
  const stormMs = Date.now() - started
  const failed = [...o1, ...o2, ...o3].filter((o) => !o.ok)
  t.same(failed, [], `all ${perSender * 3} storm sends acked (${stormMs} ms)`)
  const last = await lastSeqOf(cluster, roomId)
  // 180 storm messages + 8 × (message, edit, reaction)
  t.equal(last, perSender * 3 + 8 * 3, 'the room took one seq per durable event')

  await until(`every listener to reach seq ${last}`, () => listeners.every((peer) => peer.lastSeq(roomId) >= last), { timeoutMs: 15000, everyMs: 25 })
  await sleep(300) // a late echo would show up as a duplicate now

  const reference = listeners[0] as Peer
  for (const peer of listeners) {
    const seqs = peer.seqs(roomId)
    t.same(duplicatesOf(seqs), [], `${peer.userId} on ${peer.node.name}: no duplicate`)
    t.ok(isRun(seqs, 1, last), `${peer.userId} on ${peer.node.name}: seqs 1..${last} in order, no gap`)
    t.same(keysOf(peer.pushed), keysOf(reference.pushed), `${peer.userId} on ${peer.node.name}: the same events as ${reference.userId}`)
  }
  // A sender hears everything but its own writes (those come back as acks), still in order.
  const byKey = new Map(reference.pushed.map((event) => [event.seq, `${event.seq} ${event.key}`]))
  for (const peer of senders) {
    const seqs = peer.seqs(roomId)
    t.same(duplicatesOf(seqs), [], `${peer.userId}: no duplicate`)
    t.same(seqs, [...seqs].sort((a, b) => a - b), `${peer.userId}: ascending`)
    t.ok(keysOf(peer.pushed).every((key) => byKey.get(Number(key.split(' ')[0])) === key), `${peer.userId}: each push is the listeners' event at that seq`)
  }
  t.same(duplicatesOf(acked), [], 'no two acks share a seq')

  const counts = await cluster.counts()
  t.equal(counts.distinctSeqs, counts.logEntries, 'no seq is taken twice by the messages and the other events')
  t.equal(counts.logEntries, counts.lastSeqSum, 'one log entry (message or event) per seq taken')
  t.comment(`3 nodes: ${last} events, ${perSender * 3} storm sends in ${stormMs} ms; every socket saw 1..${last} once`)
  for (const peer of [...senders, ...listeners]) peer.close()
})

t.test('sharded pub/sub: two nodes deliver across through SPUBLISH/SSUBSCRIBE on hash-tagged room channels', { skip }, async (t) => {
  const cluster = await startProcessCluster(t, { nodes: 2, chatOptions: { redisSharded: true } })
  const { n1, n2, a, la, b, lb } = await twoNodeCast(cluster)
  const roomId = await a.createRoom('sharded', [b, la, lb])

  const redis = new Redis(cluster.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  t.teardown(() => redis.disconnect())
  await redis.connect()
  const shardChannels = await redis.call('PUBSUB', 'SHARDCHANNELS', `${cluster.redisPrefix}*`) as string[]
  t.ok(shardChannels.includes(`${cluster.redisPrefix}{room:${roomId}}`), 'the room is one shard channel, its name hash-tagged with the room')
  t.ok(shardChannels.includes(`${cluster.redisPrefix}{rooms:invalidate}`), 'the cache invalidations too')
  t.same(await redis.call('PUBSUB', 'CHANNELS', `${cluster.redisPrefix}*`), [], 'nothing on classic pub/sub')

  const [oa, ob] = await Promise.all([storm(a, roomId, { count: 30 }), storm(b, roomId, { count: 30 })])
  t.same([...oa, ...ob].filter((o) => !o.ok), [], 'all 60 sends acked')
  t.ok(await la.reaches(roomId, 60) && await lb.reaches(roomId, 60), 'both listeners reached seq 60')
  await sleep(200)
  t.ok(isRun(la.seqs(roomId), 1, 60), `${n1.name}: 1..60 in order, once`)
  t.ok(isRun(lb.seqs(roomId), 1, 60), `${n2.name}: 1..60 in order, once`)
  t.ok(isRun([...a.seqs(roomId), ...oa.map((o) => (o as { seq: number }).seq)].sort((x, y) => x - y), 1, 60), 'a sender: pushes and acks make 1..60 once')
  for (const peer of [a, b, la, lb]) peer.close()
})
