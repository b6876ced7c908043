import t from 'tap'
import { startCluster } from './fixtures/server.js'
import { person, groupRoom, messagesOf, seqOf } from './fixtures/chat.js'

const redis = process.env.REDIS_URL
const fast = { rateLimits: { send: { rate: 10000, burst: 10000 } } }

t.test('two nodes sharing Redis deliver one room\'s stream in order to sockets on both', { skip: redis === undefined || redis === '' ? 'needs REDIS_URL' : false }, async (t) => {
  const [one, two] = await startCluster(t, 2, { options: fast })
  const alice = await person(one!, 'x-alice')
  const bob = await person(two!, 'x-bob')
  const carol = await person(one!, 'x-carol')
  const dave = await person(two!, 'x-dave')
  const roomId = await groupRoom(alice, ['x-bob', 'x-carol', 'x-dave'])
  await Promise.all([bob, carol, dave].map((p) => p.client.next((frame) => frame.event === 'room.added')))
  // Senders on both nodes at once: the seqs interleave across nodes and every socket must still see 1..N.
  const sends = [
    ...Array.from({ length: 40 }, (_, index) => alice.client.ack('message.send', { roomId, content: `one ${index}` })),
    ...Array.from({ length: 40 }, (_, index) => bob.client.ack('message.send', { roomId, content: `two ${index}` })),
  ]
  await Promise.all(sends)
  const expected = Array.from({ length: 80 }, (_, index) => index + 1)
  t.same((await messagesOf(carol.client, roomId, 80)).map(seqOf), expected, 'node one socket: in order, no gaps')
  t.same((await messagesOf(dave.client, roomId, 80)).map(seqOf), expected, 'node two socket: in order, no gaps')
  t.same(await carol.client.collect(300, (frame) => frame.event === 'message.new'), [], 'no duplicate from the broker echo')
  t.same(await dave.client.collect(100, (frame) => frame.event === 'message.new'), [], 'no duplicate on the other node either')
  for (const p of [alice, bob, carol, dave]) p.client.close()
})
