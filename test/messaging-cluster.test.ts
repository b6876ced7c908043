import t from 'tap'
import postgres from 'postgres'
import { startCluster } from './fixtures/server.js'
import { freshDatabaseUrl, holdRoomLock } from './fixtures/database.js'
import { connect, groupRoom, messagesOf, seqOf } from './fixtures/chat.js'
import { until } from './fixtures/timing.js'

const redis = process.env.REDIS_URL
const pg = process.env.DATABASE_URL
const fast = { rateLimits: { send: { rate: 10000, burst: 10000 } } }

t.test('two nodes sharing Redis deliver one room\'s stream in order to sockets on both', { skip: redis === undefined || redis === '' ? 'needs REDIS_URL' : false }, async (t) => {
  const [one, two] = await startCluster(t, 2, { options: fast })
  const alice = await connect(one!, 'x-alice')
  const bob = await connect(two!, 'x-bob')
  const carol = await connect(one!, 'x-carol')
  const dave = await connect(two!, 'x-dave')
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

t.test('a retry whose original commits while its batch waits for the room: the batch runs again and answers with the original', { skip: pg === undefined || pg === '' ? 'needs DATABASE_URL (a lock held from outside the nodes)' : false }, async (t) => {
  const database = await freshDatabaseUrl(t)
  const [one, two] = await startCluster(t, 2, { database, redis: null, options: fast })
  const alice = await connect(one!, 'race-a')
  const aliceElsewhere = await connect(two!, 'race-a')
  const roomId = await groupRoom(alice, ['race-b'])
  // Two connections: one holds the lock, the other watches the nodes wait for it.
  const sql = postgres(database, { max: 2, onnotice: () => {} })
  t.teardown(() => sql.end({ timeout: 1 }))
  // Hold the room's row: both nodes' batches take their snapshot (no original yet) and then wait for it.
  const release = await holdRoomLock(sql, roomId)
  const sends = [alice, aliceElsewhere].map((p) => p.client.ack('message.send', { roomId, content: 'once', clientMsgId: 'race-1' }))
  const waiting = async (): Promise<number> => (await sql`select count(*)::int as n from pg_stat_activity
    where datname = current_database() and wait_event_type = 'Lock' and query like '%"send_batch"(%'`)[0]?.n as number
  await until('both batches to wait for the room', async () => await waiting() >= 2, { timeoutMs: 10000, everyMs: 20 })
  t.equal(await waiting(), 2, 'both batches wait for the room, and nothing else does')
  await release()
  const acks = await Promise.all(sends)
  const ids = acks.map((ack) => (ack.message as { id: string }).id)
  t.equal(ids[0], ids[1], 'both senders get the same message')
  const rows = await sql`select id, seq from chat.messages where room_id = ${roomId}`
  t.equal(rows.length, 1, 'one row')
  t.equal(rows[0]?.seq, 1, 'and no seq was lost to the batch that ran again')
  const [room] = await sql`select last_seq from chat.rooms where id = ${roomId}`
  t.equal(room?.last_seq, 1, 'the room took one seq')
  for (const p of [alice, aliceElsewhere]) p.client.close()
})
