import t, { type Test } from 'tap'
import { startNode, type TestNode } from './fixtures/server.js'
import { connect, groupRoom, type Person, uid } from './fixtures/chat.js'
import { clientFor, nextState } from './fixtures/chat-client.js'
import { WebSocket } from 'ws'

// The contract (protocol.md section 6): a socket's sends into one room take seqs in the order the socket
// sent them, however the server batches them. These tests pipeline sends and read back every ack's seq.

const unlimited = { send: { rate: 100000, burst: 100000 }, userSend: { rate: 100000, burst: 100000 }, other: { rate: 100000, burst: 100000 } }

/** Pipelines `count` sends from one socket (all written before any ack is read); the acked seqs in send order. */
async function burst (sender: Person, roomId: string, count: number, label: string): Promise<number[]> {
  const acks = await Promise.all(Array.from({ length: count }, (_, index) => sender.client.ack('message.send', { roomId, content: `${label} ${index}` })))
  return acks.map((ack) => (ack.message as { seq: number }).seq)
}

/** The first place where seqs fail to increase, as a message naming the neighbourhood; null when in order. */
function firstSwap (seqs: number[]): string | null {
  for (let index = 1; index < seqs.length; index += 1) {
    if ((seqs[index] as number) <= (seqs[index - 1] as number)) {
      return `send ${index} took seq ${seqs[index]} after send ${index - 1} took seq ${seqs[index - 1]} (around: ${JSON.stringify(seqs.slice(Math.max(0, index - 3), index + 3))})`
    }
  }
  return null
}

t.test('a burst larger than maxBatch keeps send order, round after round', async (t) => {
  // The default maxBatch (256): 300 sends form a full batch and a second one, both in flight at once.
  const node = await startNode(t, { options: { rateLimits: unlimited } })
  const sender = await connect(node, uid('burster'))
  const rounds = 8
  for (let round = 0; round < rounds; round += 1) {
    const roomId = await groupRoom(sender, [])
    const seqs = await burst(sender, roomId, 300, `round ${round}`)
    const swap = firstSwap(seqs)
    if (swap !== null) {
      t.fail(`round ${round}: ${swap}`)
      break
    }
    t.same(seqs, Array.from({ length: 300 }, (_, index) => index + 1), `round ${round}: seqs 1..300 in send order`)
  }
  sender.client.close()
})

t.test('bursts while other batches touching the room are in flight keep each socket\'s order', async (t) => {
  // Small batches, so that every burst spans several and two are in flight most of the time.
  const node = await startNode(t, { options: { rateLimits: unlimited, groupCommit: { maxBatch: 8, maxWaitMs: 2 } } })
  const owner = await connect(node, uid('owner'))
  const others = await Promise.all([1, 2, 3].map((index) => connect(node, uid(`peer${index}`))))
  const roomId = await groupRoom(owner, others.map((other) => other.id))
  const busy = await groupRoom(owner, others.map((other) => other.id))
  const senders = [owner, ...others]
  const rounds = 12
  const failures: string[] = []
  for (let round = 0; round < rounds; round += 1) {
    // Each socket pipelines a burst into the shared room while the others do too, and a second room
    // keeps batches busy that the shared room is not in.
    const results = await Promise.all([
      ...senders.map((sender) => burst(sender, roomId, 25, `${sender.id} r${round}`)),
      burst(owner, busy, 25, `noise r${round}`),
    ])
    results.forEach((seqs, index) => {
      const swap = firstSwap(seqs)
      if (swap !== null) failures.push(`round ${round}, socket ${index}: ${swap}`)
    })
  }
  t.same(failures, [], 'every socket\'s seqs strictly increase in send order in every round')
  const history = await owner.client.ack('history.fetch', { roomId, limit: 100 })
  const seqs = (history.messages as Array<{ seq: number }>).map((message) => message.seq)
  const last = rounds * senders.length * 25
  t.same(seqs, Array.from({ length: 100 }, (_, index) => last - 99 + index), 'the room\'s log is gapless')
  for (const sender of senders) sender.client.close()
})

t.test('server-side sends of one sender stay in call order', async (t) => {
  const node = await startNode(t, { options: { groupCommit: { maxBatch: 4, maxWaitMs: 2 } } })
  const owner = await connect(node, uid('svc-owner'))
  const roomId = await groupRoom(owner, [])
  for (let round = 0; round < 5; round += 1) {
    const sent = await Promise.all(Array.from({ length: 30 }, (_, index) => node.app.chat.sendSystemMessage(roomId, `notice ${round}.${index}`)))
    const swap = firstSwap(sent.map((message) => message.seq))
    t.equal(swap, null, `round ${round}: a host's concurrent sends take seqs in call order`)
  }
  owner.client.close()
})

/** The client's socket, cut on the client's side right after it wrote its `cutAfter`-th frame. */
let cutAfter = Number.POSITIVE_INFINITY
let cuts = 0
class CuttableSocket extends WebSocket {
  constructor (...args: ConstructorParameters<typeof WebSocket>) {
    super(...args)
    const send = this.send.bind(this) as (data: string) => void
    this.send = ((data: string) => {
      send(data)
      cutAfter -= 1
      // What was written so far reaches the server; the acks of it never come back on this socket.
      if (cutAfter === 0) {
        cuts += 1
        this.terminate()
      }
    }) as WebSocket['send']
  }
}

async function outboxAcrossReconnect (t: Test, node: TestNode, round: number): Promise<void> {
  const client = clientFor(t, node, uid('outbox'), { WebSocket: CuttableSocket as unknown as typeof WebSocket, reconnect: { initialDelayMs: 20, maxDelayMs: 100 } })
  await client.connect()
  const { room } = await client.createRoom({ name: 'outbox', type: 'GROUP' })
  const opened = nextState(client, (change) => change.state === 'open', 10000)
  // 50 acked sends, then 150 pipelined of which the socket carries 60 + 20 × round before it is cut:
  // some are committed without an ack, some never reach the server. The outbox sends every unacked
  // one again on the next socket, in send order, with its clientMsgId.
  const total = 200
  const sends = Array.from({ length: 50 }, (_, index) => client.sendMessage(room.id, `outbox ${index}`))
  await Promise.all(sends)
  const cutsBefore = cuts
  cutAfter = 60 + 20 * round
  for (let index = 50; index < total; index += 1) sends.push(client.sendMessage(room.id, `outbox ${index}`))
  await opened
  t.equal(cuts, cutsBefore + 1, 'the socket was cut mid-burst')
  const acked = await Promise.all(sends)
  cutAfter = Number.POSITIVE_INFINITY
  const seqs = acked.map((ack) => ack.message.seq)
  t.equal(firstSwap(seqs), null, 'acked seqs increase in send order across the reconnect')
  t.equal(new Set(acked.map((ack) => ack.message.id)).size, total, 'each send stored once')
  const latest = await client.history(room.id, { limit: 100 })
  const older = await client.history(room.id, { before: latest.messages[0]?.seq as number, limit: 100 })
  const contents = [...older.messages, ...latest.messages].map((message) => message.content)
  t.same(contents, Array.from({ length: total }, (_, index) => `outbox ${index}`), 'the room holds every send once, in send order')
  await client.close()
}

t.test('the client\'s outbox replays unacked sends in order after a reconnect, and the server keeps it', async (t) => {
  const node = await startNode(t, { options: { rateLimits: unlimited, groupCommit: { maxBatch: 16, maxWaitMs: 2 } } })
  for (let round = 0; round < 4; round += 1) await t.test(`round ${round}`, (t) => outboxAcrossReconnect(t, node, round))
})
