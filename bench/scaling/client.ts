/**
 * One client process of the scaling simulation: it holds the sockets of the users placed on one server
 * node, creates the rooms its users own, and sends at the rate it is told, from random users of its own.
 * A process per node because one process may not hold 20,000 sockets (the fd limit here is 20,000) and
 * because the clients' CPU is then spread over the cores like the servers'.
 *   started by bench/scaling/clients.ts with SCALE_CLIENT='{"url":…,"secret":…,"contentLength":…}'
 */
import { percentile } from '../lib.js'
import { chatProtocol, type Peer } from '../protocols.js'
import { connectWithRetry, filler, pool, tokenSigner } from '../loadgen/driver.js'
import type { ClientInit, Command, Counters, Reply } from './messages.js'

const init = JSON.parse(process.env.SCALE_CLIENT ?? '{}') as ClientInit
const token = tokenSigner(init.secret)
const text = filler(init.contentLength)
const MAX_IN_FLIGHT = 2000
const TICK_MS = 10
// Whatever the coordinator does, this process ends: no run is meant to last 10 minutes.
setTimeout(() => process.exit(3), 600_000).unref()

const counters: Counters = { sent: 0, acks: 0, deliveries: 0, other: 0, errors: 0, skipped: 0, inFlight: 0, p50: null, p99: null }
// Ack latencies since the last mark (a window is at most a few tens of thousands of sends).
let latencies: number[] = []
const senders: Array<{ peer: Peer, roomId: string, next: number }> = []
const peers: Peer[] = []
let rate = 0
let rateSince = 0
let sentSince = 0
let ticker: NodeJS.Timeout | null = null

const reply = (message: Reply): void => { process.send?.(message) }

function send (): void {
  const sender = senders[Math.floor(Math.random() * senders.length)]
  if (sender === undefined) return
  counters.sent += 1
  counters.inFlight += 1
  const sentAt = performance.now()
  sender.peer.send(sender.roomId, text, `m${sender.next++}`).then(
    () => {
      counters.acks += 1
      latencies.push(performance.now() - sentAt)
    },
    () => { counters.errors += 1 },
  ).finally(() => { counters.inFlight -= 1 })
}

/** Open loop at a steady rate: each tick sends what the elapsed time owes, never more than the cap waits. */
function tick (): void {
  const owed = Math.floor(rate * (performance.now() - rateSince) / 1000) - sentSince
  for (let index = 0; index < owed; index += 1) {
    sentSince += 1
    if (counters.inFlight >= MAX_IN_FLIGHT) counters.skipped += 1
    else send()
  }
}

/** The counters, with the ack latency percentiles of the sends acked since the previous mark. */
function mark (seq: number): Reply {
  const sorted = latencies.sort((a, b) => a - b)
  latencies = []
  const p50 = sorted.length === 0 ? null : percentile(sorted, 50)
  const p99 = sorted.length === 0 ? null : percentile(sorted, 99)
  return { seq, type: 'mark', counters: { ...counters, p50, p99 } }
}

async function handle (command: Command): Promise<Reply> {
  const { seq } = command
  switch (command.type) {
    case 'createRooms': {
      const rooms = await pool(command.rooms, 10, async ({ index, members }) => {
        const owner = members[0] as string
        const peer = await connectWithRetry(chatProtocol, init.url, owner, token(owner))
        const id = await chatProtocol.createRoom(peer, `scale ${index}`, members.slice(1))
        peer.close()
        return { index, id }
      })
      return { seq, type: 'created', rooms }
    }
    case 'connect': {
      const started = performance.now()
      let failed = 0
      await pool(command.users, command.concurrency, async ({ id, roomId }) => {
        try {
          const peer = await connectWithRetry(chatProtocol, init.url, id, token(id))
          peer.onPush = () => { counters.deliveries += 1 }
          peer.onOther = () => { counters.other += 1 }
          peers.push(peer)
          if (roomId !== null) senders.push({ peer, roomId, next: 0 })
        } catch {
          failed += 1
        }
      })
      return { seq, type: 'connected', connected: peers.length, failed, seconds: (performance.now() - started) / 1000 }
    }
    case 'rate':
      rate = command.perSecond
      rateSince = performance.now()
      sentSince = 0
      if (rate > 0 && ticker === null) ticker = setInterval(tick, TICK_MS)
      if (rate === 0 && ticker !== null) {
        clearInterval(ticker)
        ticker = null
      }
      return mark(seq)
    case 'mark':
      return mark(seq)
    case 'close':
      if (ticker !== null) clearInterval(ticker)
      for (const peer of peers) peer.close()
      return { seq, type: 'closed' }
  }
}

process.on('message', (command: Command) => {
  handle(command).then(reply, (error: unknown) => reply({ seq: command.seq, type: 'failed', error: String(error) }))
})
process.on('disconnect', () => process.exit(0))
