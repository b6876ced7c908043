/**
 * Issue 20, item 1, as a bounded script against a running node (standalone server on Postgres):
 * a member of rooms with long logs asks for as much as one frame can buy, and the script reports the
 * largest reply frame and the node's peak RSS while it is answered.
 *
 *   node --import tsx bench/reply-attack.ts <ws url> <jwt secret> <database url> <server pid> <mode>
 *
 * mode `same-room`: one room of 200 messages of 1,000 characters, one sync with 500 cursors of it (the
 * reproduced attack). mode `many-rooms`: 100 rooms of 200 such messages, one sync of the 100 rooms,
 * then every `hasMore` followed to the end (the most the bounded server still lets one ask for).
 */
import { readFileSync } from 'node:fs'
import { createSigner } from 'fast-jwt'
import postgres from 'postgres'
import { WebSocket } from 'ws'

const [url, secret, databaseUrl, pidText, mode] = process.argv.slice(2) as [string, string, string, string, string]
const pid = Number(pidText)
const EVENTS = 200
const CONTENT = 'x'.repeat(1000)

function rssMiB (): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((entry) => entry.startsWith('VmRSS:')) ?? ''
  return Number(/(\d+)/.exec(line)?.[1] ?? 0) / 1024
}

const sign = createSigner({ key: secret, algorithm: 'HS256', expiresIn: 3600_000 })
const socket = new WebSocket(url, { headers: { authorization: `Bearer ${sign({ sub: `attacker-${Date.now()}`, name: 'A' })}` }, maxPayload: 1024 ** 3 })
const waiting = new Map<string, (frame: { size: number, event: string, data?: any, error?: any }) => void>()
let ready: () => void
const sessionReady = new Promise<void>((resolve) => { ready = resolve })
socket.on('message', (raw: Buffer) => {
  const frame = JSON.parse(raw.toString()) as { event: string, id?: string, data?: unknown, error?: unknown }
  if (frame.event === 'session.ready') ready()
  if (frame.id !== undefined) waiting.get(frame.id)?.({ ...frame, size: raw.length })
})
let counter = 0
function request (event: string, data: unknown): Promise<{ size: number, event: string, data?: any, error?: any }> {
  const id = `q${++counter}`
  return new Promise((resolve) => {
    waiting.set(id, resolve)
    socket.send(JSON.stringify({ event, id, data }))
  })
}

await sessionReady
const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} })
const roomCount = mode === 'same-room' ? 1 : 100
const roomIds: string[] = []
for (let index = 0; index < roomCount; index += 1) {
  const reply = await request('room.create', { name: `r${index}`, type: 'GROUP' })
  if (reply.event !== 'ack') throw new Error(JSON.stringify(reply.error))
  roomIds.push(reply.data.room.id as string)
  if (index % 25 === 24) await new Promise((resolve) => setTimeout(resolve, 1000)) // the `other` bucket: 30/s
}
// The logs are written straight into the tables, as the messaging plugin would have.
for (const roomId of roomIds) {
  const [sender] = await sql`select user_id from chat.room_members where room_id = ${roomId}`
  await sql.begin(async (tx) => {
    await tx`update chat.rooms set last_seq = last_seq + ${EVENTS} where id = ${roomId}`
    await tx`insert into chat.messages (room_id, seq, sender_id, content) select ${roomId}, g, ${sender?.user_id as string}, ${CONTENT} from generate_series(1, ${EVENTS}) g`
  })
}
await sql.end()

const before = rssMiB()
let peak = before
const sampler = setInterval(() => { peak = Math.max(peak, rssMiB()) }, 50)
const started = Date.now()
let largest = 0
let acks = 0
let events = 0
let cursors = mode === 'same-room'
  ? Array.from({ length: 500 }, () => ({ roomId: roomIds[0] as string, seq: 0 }))
  : roomIds.map((roomId) => ({ roomId, seq: 0 }))
const first = await request('sync', { cursors })
largest = first.size
if (first.event === 'ack') {
  let reply = first
  for (;;) {
    acks += 1
    const asked = new Map(cursors.map((cursor) => [cursor.roomId, cursor.seq]))
    cursors = []
    for (const room of reply.data.rooms as Array<{ roomId: string, events: Array<{ data: { seq: number } }>, hasMore: boolean }>) {
      events += room.events.length
      const last = room.events[room.events.length - 1]
      if (room.hasMore) cursors.push({ roomId: room.roomId, seq: last === undefined ? asked.get(room.roomId) as number : last.data.seq })
    }
    if (mode === 'same-room' || cursors.length === 0) break
    reply = await request('sync', { cursors })
    largest = Math.max(largest, reply.size)
  }
}
clearInterval(sampler)
peak = Math.max(peak, rssMiB())
console.log(JSON.stringify({
  mode,
  firstReply: first.event === 'ack' ? 'ack' : first.error?.code,
  firstReplyBytes: first.size,
  largestReplyBytes: largest,
  acks,
  events,
  seconds: (Date.now() - started) / 1000,
  rssBeforeMiB: Math.round(before),
  rssPeakMiB: Math.round(peak),
  rssAfterMiB: Math.round(rssMiB()),
}))
socket.close()
