import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { WebSocket } from 'ws'
import { startNode, type TestNode } from './fixtures/server.js'
import { sampleValue, scrape } from './fixtures/prometheus.js'
import { until, within } from './fixtures/timing.js'
import type { Connection } from '../plugins/realtime/connection.js'

// A reader that stops reading must cost the node at most maxBufferedBytes (plus one frame), be cut with
// 1013, and must not slow anyone else down. Everything here is real: TCP sockets on loopback, the
// kernel's buffers filling first, a producer that sends through message.send and the database.

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const MAX_BUFFERED = 512 * 1024
const CONTENT = 60_000
const SEQ = /^\{"event":"message\.new","data":\{"roomId":"[^"]+","seq":(\d+),/

/** A raw client that keeps no frame: it counts message.new seqs and resolves acks by id. */
class LeanClient {
  readonly seqs: number[] = []
  readonly arrivals = new Map<number, number>()
  readonly closed: Promise<{ code: number, reason: string }>
  private readonly acks = new Map<string, (frame: string) => void>()
  private readonly seqWaiters: Array<{ seq: number, resolve: () => void }> = []
  private ready!: () => void
  readonly sessionReady = new Promise<void>((resolve) => { this.ready = resolve })

  constructor (readonly socket: WebSocket) {
    this.closed = new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
    socket.on('error', () => {})
    socket.on('message', (data) => this.receive(data.toString()))
  }

  static async open (node: TestNode, userId: string): Promise<LeanClient> {
    const socket = new WebSocket(node.wsUrl, { headers: { authorization: `Bearer ${node.token(userId)}` } })
    const client = new LeanClient(socket)
    await client.sessionReady
    return client
  }

  async request (event: string, data: unknown, id: string): Promise<any> {
    const reply = new Promise<string>((resolve) => this.acks.set(id, resolve))
    this.socket.send(JSON.stringify({ event, id, data }))
    const frame = JSON.parse(await reply) as { event: string, data?: unknown, error?: unknown }
    if (frame.event !== 'ack') throw new Error(`${event}: ${JSON.stringify(frame.error)}`)
    return frame.data
  }

  async seen (seq: number): Promise<void> {
    if (this.seqs.includes(seq)) return
    await new Promise<void>((resolve) => this.seqWaiters.push({ seq, resolve }))
  }

  private receive (text: string): void {
    const seq = SEQ.exec(text.slice(0, 200))
    if (seq !== null) {
      const value = Number(seq[1])
      this.seqs.push(value)
      this.arrivals.set(value, Date.now())
      for (let index = this.seqWaiters.length - 1; index >= 0; index -= 1) {
        const waiter = this.seqWaiters[index] as { seq: number, resolve: () => void }
        if (waiter.seq === value) {
          this.seqWaiters.splice(index, 1)
          waiter.resolve()
        }
      }
      return
    }
    if (text.startsWith('{"event":"session.ready"')) {
      this.ready()
      return
    }
    const id = /"id":"([^"]+)"/.exec(text.slice(0, 200))?.[1]
    if (id !== undefined) {
      const resolve = this.acks.get(id)
      this.acks.delete(id)
      resolve?.(text)
    }
  }
}

function memory (): number {
  gc()
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.external
}

t.test('a reader that stops reading is cut with 1013; the others keep getting every message', async (t) => {
  const node = await startNode(t, {
    redis: null,
    options: {
      maxBufferedBytes: MAX_BUFFERED,
      maxMessageLength: CONTENT,
      rateLimits: { send: { rate: 100_000, burst: 100_000 }, userSend: { rate: 100_000, burst: 100_000 }, other: { rate: 100_000, burst: 100_000 } },
    },
  })
  const hub = node.app.chat.scope.chatHub
  const producer = await LeanClient.open(node, 'producer')
  const reader = await LeanClient.open(node, 'reader')
  const stalled = await LeanClient.open(node, 'stalled')
  const { room } = await producer.request('room.create', { name: 'firehose', type: 'GROUP', memberIds: ['reader', 'stalled'] }, 'create')
  const roomId = (room as { id: string }).id
  const stalledConnection = (): Connection => [...hub.connectionsOf('stalled')][0] as Connection
  await until('the stalled reader is subscribed', () => stalledConnection() !== undefined && stalledConnection().rooms.has(roomId))

  // The content compresses well (TOAST), so the database barely grows while the sockets carry 60 kB frames.
  const content = `${'x'.repeat(CONTENT - 20)} flood`
  let seq = 0
  const acked = new Map<number, number>()
  const send = async (): Promise<void> => {
    const { message } = await producer.request('message.send', { roomId, content }, `m${seq + 1}`)
    seq = (message as { seq: number }).seq
    acked.set(seq, Date.now())
  }
  // Warm up, then take the baseline.
  for (let index = 0; index < 10; index += 1) await send()
  await reader.seen(seq)
  const baseline = memory()

  stalled.socket.pause()
  let maxBuffered = 0
  let cutAt: number | null = null
  const WINDOW = 4
  // At most WINDOW sends ahead of the reader, who therefore never lags: only the stalled socket grows.
  const TOTAL = 1200
  while (seq < TOTAL) {
    await send()
    if (seq > WINDOW) await within(reader.seen(seq - WINDOW), 10_000, `the reader gets seq ${seq - WINDOW}`)
    const connection = stalledConnection()
    if (connection !== undefined) maxBuffered = Math.max(maxBuffered, connection.socket.bufferedAmount)
    if (cutAt === null && connection !== undefined && !connection.isOpen) cutAt = seq
  }
  await within(reader.seen(seq), 10_000, 'the reader gets the last message')
  const afterFlood = memory()
  const flooded = (TOTAL - 10) * CONTENT

  t.ok(cutAt !== null, `the stalled socket was cut (after seq ${String(cutAt)}, ${Math.round((cutAt ?? 0) * CONTENT / 1024 / 1024)} MiB into the flood)`)
  t.ok(maxBuffered <= MAX_BUFFERED + CONTENT + 1024, `its send buffer never passed maxBufferedBytes + one frame (${maxBuffered} bytes at most)`)
  t.ok((cutAt ?? TOTAL) < TOTAL / 2, 'long before the flood ended')
  t.equal(sampleValue(await scrape(node.httpUrl), 'chat_slow_consumers_cut_total'), 1, 'counted in chat_slow_consumers_cut_total')

  t.same(reader.seqs, Array.from({ length: seq }, (_, index) => index + 1), 'the reader got every message, in order, no gap')
  const late = [...acked].filter(([value, at]) => (reader.arrivals.get(value) ?? Infinity) - at > 5000)
  t.same(late, [], 'each within a generous 5 s of its ack')

  const growth = afterFlood - baseline
  t.ok(growth < 48 * 1024 * 1024, `the node's memory stayed bounded: ${Math.round(growth / 1024 / 1024)} MiB more after ${Math.round(flooded / 1024 / 1024)} MiB were flooded`)

  // The stalled reader reads again: what was buffered, then the close frame.
  stalled.socket.resume()
  const closed = await within(stalled.closed, 30_000, 'the stalled reader hears the close')
  t.equal(closed.code, 1013)
  t.equal(closed.reason, 'slow consumer')
  t.ok(stalled.seqs.length < (cutAt ?? 0) + 2, `it got what was buffered before the cut, nothing after (${stalled.seqs.length} messages)`)
  t.same(stalled.seqs, Array.from({ length: stalled.seqs.length }, (_, index) => index + 1), 'in order')

  await send()
  await within(reader.seen(seq), 5000, 'the room goes on')
  producer.socket.close()
  reader.socket.close()
})
