/**
 * Checks docs/scaling.md's capacity model with one simulation on this machine: N server nodes on one
 * PostgreSQL (a scratch database) and one Redis, S sockets spread evenly over them, users in group rooms
 * of R members placed at random over the nodes, then a steady durable message rate for a bounded time.
 * Prints the model's per-unit figures against the measured ones (per node: CPU per delivery and per
 * ack, RSS per socket; overall: PostgreSQL CPU per send, Redis commands and subscribers per message).
 *   node --import tsx bench/scaling-sim.ts [--nodes 4] [--sockets 20000] [--rate 1000] [--seconds 30]
 * The clients run in one process per node (a process may hold 20,000 fds here). Loopback only; every
 * loop is bounded, and the run gives up after 9 minutes whatever happens.
 */
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { benchLimits, cpuMicrosSync, median, round, rssBytes, scratchDatabase, sleep, startServer, type Started } from './lib.js'
import { rssAfterGc } from './loadgen/server-usage.js'
import { analyse, rows } from './scaling/analysis.js'
import { agreement, agreementReport } from './scaling/check.js'
import { ClientProcess } from './scaling/clients.js'
import { cpuPerMessage, subscribingNodes } from './scaling/model.js'
import { meanNodesPerRoom, place } from './scaling/placement.js'
import { meanSubscribers } from './scaling/redis-stats.js'
import { between, read, type Window } from './scaling/windows.js'
import { hasRedisServer, RedisServer } from '../test/fixtures/redis-server.js'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '4' },
    sockets: { type: 'string', default: '20000' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '30' },
    'room-size': { type: 'string', default: '20' },
    quiet: { type: 'string', default: '8' },
    concurrency: { type: 'string', default: '25' },
    content: { type: 'string', default: '100' },
  },
})
const NODES = Number(values.nodes)
const SOCKETS = Number(values.sockets)
const RATE = Number(values.rate)
const SECONDS = Number(values.seconds)
const ROOM_SIZE = Number(values['room-size'])
const QUIET = Number(values.quiet)
if (NODES < 2) throw new Error('--nodes must be at least 2: the load windows need senders and receive-only nodes')
const SECRET = 'bench-secret-bench-secret-bench-secret'
const PG = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
// The Redis figures are INFO commandstats of the whole server. On a Redis of the run's own they count this
// run's commands alone; a shared one mixes in other work, which the quiet window subtracts only on average
// (two runs on the machine's shared Redis read 0.81 and 0.86 PUBLISH per message, an impossible figure).
const ownRedis = process.env.BENCH_REDIS_URL === undefined && hasRedisServer() ? await RedisServer.start({ teardown: () => {} }) : null
const REDIS = process.env.BENCH_REDIS_URL ?? ownRedis?.url ?? 'redis://127.0.0.1:6379'
const log = (message: string): void => { process.stderr.write(`[scaling-sim ${new Date().toISOString().slice(11, 19)}] ${message}\n`) }

setTimeout(() => {
  log('hard time limit (9 minutes) reached')
  void ownRedis?.stop()
  process.exit(2)
}, 540_000).unref()

const tag = randomBytes(3).toString('hex')
const prefix = `scale-${tag}:`
const placement = place(SOCKETS, NODES, ROOM_SIZE, tag)
const database = await scratchDatabase(PG)
const databaseName = new URL(database.url).pathname.slice(1)
const redis = new Redis(REDIS, { lazyConnect: false, maxRetriesPerRequest: 2 })
const servers: Started[] = []
const clients: ClientProcess[] = []
try {
  for (let index = 0; index < NODES; index += 1) {
    servers.push(await startServer({
      DATABASE_URL: database.url,
      REDIS_URL: REDIS,
      JWT_SECRET: SECRET,
      CHAT_OPTIONS: JSON.stringify({ redisPrefix: prefix, nodeId: `scale-${index}`, ...benchLimits() }),
    }))
  }
  const pids = servers.map((server) => server.child.pid as number)
  // RSS of the fresh nodes: (after connecting − this) / sockets is an upper bound per socket, since it
  // also holds what creating the rooms left (caches, and heap V8 grew then and keeps).
  const rssFresh = pids.map(rssBytes)
  for (const server of servers) clients.push(ClientProcess.start({ url: server.url, secret: SECRET, contentLength: Number(values.content) }))
  log(`${NODES} nodes up; ${SOCKETS} users, ${placement.rooms.length} rooms of ${ROOM_SIZE}`)

  // Rooms first, each created by its owner on the owner's node, the owner then disconnected: every
  // socket opened afterwards subscribes to its room at session start, as a returning user does.
  const roomIds = new Array<string>(placement.rooms.length)
  await Promise.all(clients.map(async (client, node) => {
    const owned = placement.rooms.map((members, index) => ({ index, members })).filter(({ members }) => placement.nodeOf.get(members[0] as string) === node)
    const reply = await client.ask({ type: 'createRooms', rooms: owned })
    if (reply.type !== 'created') throw new Error(`room creation: ${reply.type}`)
    for (const { index, id } of reply.rooms) roomIds[index] = id
  }))
  const roomOf = new Map<string, string>()
  placement.rooms.forEach((members, index) => { for (const user of members) roomOf.set(user, roomIds[index] as string) })
  log('rooms created')

  await sleep(3000)
  const rssBefore = pids.map(rssBytes)
  // The same after a full collection in each node (SIGWINCH, bench/gc-on-signal.ts): what the model's
  // memory figure was measured as. The brief's figure is the one without, read first.
  const rssBeforeGc = await Promise.all(pids.map((pid) => rssAfterGc([pid], 8000)))
  const cpuBeforeConnect = pids.map(cpuMicrosSync)
  const connectStarted = performance.now()
  const connected = await Promise.all(clients.map(async (client, node) => {
    const users = (placement.usersByNode[node] as string[]).map((id) => ({ id, roomId: roomOf.get(id) ?? null }))
    const reply = await client.ask({ type: 'connect', users, concurrency: Number(values.concurrency) })
    if (reply.type !== 'connected') throw new Error(`connect: ${reply.type}`)
    return reply
  }))
  const connectSeconds = (performance.now() - connectStarted) / 1000
  log(`connected ${connected.map((reply) => reply.connected).join(' + ')} sockets in ${round(connectSeconds, 1)} s (failed: ${connected.reduce((sum, reply) => sum + reply.failed, 0)})`)
  const connectCpu = pids.map((pid, node) => (cpuMicrosSync(pid) - (cpuBeforeConnect[node] as number)) / (placement.usersByNode[node] as string[]).length)
  await sleep(5000)
  const rssAfter = pids.map(rssBytes)
  const rssAfterGcs = await Promise.all(pids.map((pid) => rssAfterGc([pid], 8000)))
  const subscribers = await meanSubscribers(redis, roomIds.map((id) => `${prefix}room:${id}`))

  // The quiet window: each node's idle CPU rate, PostgreSQL's and Redis' background.
  let start = await read(pids, databaseName, redis, clients)
  await sleep(QUIET * 1000)
  const quiet = between(start, await read(pids, databaseName, redis, clients))
  log(`quiet window: idle CPU per node ${quiet.cpu.map((cpu) => `${round(cpu / quiet.seconds / 1e4, 2)}%`).join(' ')}`)

  // Warm-up with every node sending, then two windows in which half the nodes send each.
  const setRates = async (senders: number[]): Promise<void> => {
    await Promise.all(clients.map((client, node) => client.ask({ type: 'rate', perSecond: senders.includes(node) ? RATE / senders.length : 0 })))
  }
  const everyNode = clients.map((_, node) => node)
  const half = Math.ceil(NODES / 2)
  const halves = [everyNode.slice(0, half), everyNode.slice(half)]
  await setRates(everyNode)
  await sleep(3000)
  const windows: Array<{ window: Window, senders: number[] }> = []
  for (const senders of halves) {
    await setRates(senders)
    await sleep(1000)
    start = await read(pids, databaseName, redis, clients)
    await sleep(SECONDS * 500)
    const window = between(start, await read(pids, databaseName, redis, clients))
    windows.push({ window, senders })
    log(`window (senders on nodes ${senders.join(',')}): ${round(window.acks.reduce((a, b) => a + b, 0) / window.seconds, 0)} acks/s, ${round(window.deliveries.reduce((a, b) => a + b, 0) / window.seconds, 0)} deliveries/s, ack p50/p99 ${round(window.p50 ?? NaN, 1)}/${round(window.p99 ?? NaN, 1)} ms (worst node), errors ${window.errors}, skipped ${window.skipped}`)
  }
  await setRates([])
  await sleep(1000)

  const figures = analyse({ quiet, windows, sockets: connected.map((reply) => reply.connected), rssBefore, rssAfter, rssBeforeGc, rssAfterGc: rssAfterGcs, rssFresh })
  const modelSubscribers = subscribingNodes(NODES, ROOM_SIZE)
  const table = rows(figures, modelSubscribers, subscribers, cpuPerMessage(figures.deliveriesPerMessage))
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ')
  console.log(`\nScaling simulation, ${date} UTC: ${NODES} nodes, ${SOCKETS} sockets (${connected.map((reply) => reply.connected).join('/')}), rooms of ${ROOM_SIZE}, ${RATE} messages/s asked, ${round(figures.messagesPerSecond, 0)} acked/s over 2 × ${SECONDS / 2} s\n`)
  console.log('| cost | model at saturation (the floor) | measured | nodes\' range | measured ÷ model |')
  console.log('| --- | --- | --- | --- | --- |')
  for (const row of table) console.log(`| ${row.cost} | ${round(row.model, 2)} ${row.unit} | ${round(row.measured, 2)} ${row.unit} | ${row.spread} | ${round(row.measured / row.model, 2)} |`)
  console.log(`\nper node: ${figures.nodes.map((node) => `#${node.node} idle ${round(node.idleCoreShare * 100, 1)}% of a core, sending ${round(node.sendingCoreShare * 100, 1)}%, ${round(node.cpuPerDelivery, 1)} µs/delivery, ${round(node.cpuPerAck, 1)} µs/ack, ${round(node.rssPerSocket / 1000, 1)} KB/socket (${round(node.rssPerSocketAfterGc / 1000, 1)} after GC)`).join('; ')}`)
  console.log(`deliveries per message ${round(figures.deliveriesPerMessage, 2)}; Redis per message: ${round(figures.publishesPerMessage, 2)} PUBLISH, ${round(figures.evalsPerMessage, 3)} EVAL (one per batch), ${round(figures.redisCallsPerMessage, 2)} commands in all beyond the background (${round(figures.redisIdleCallsPerSecond, 0)}/s in the quiet window); room channels span ${round(meanNodesPerRoom(placement), 2)} nodes by placement; connect ${round(connectSeconds, 1)} s, ${round(median(connectCpu), 0)} µs of node CPU per socket (median of nodes); errors ${figures.errors}, skipped ${figures.skipped}`)
  const checks = agreement(figures, { nodes: NODES, roomSize: ROOM_SIZE, sendersPerWindow: half }, subscribers)
  console.log(`\nAgreement with docs/scaling.md's model at this run's rate (the table above compares with the saturated floor):\n\n${agreementReport(checks)}`)
  console.log('\n' + JSON.stringify({ date, checks, nodes: NODES, sockets: SOCKETS, roomSize: ROOM_SIZE, rate: RATE, seconds: SECONDS, connectSeconds, connectCpu, windows: windows.map(({ window, senders }) => ({ senders, seconds: window.seconds, p50: window.p50, p99: window.p99, errors: window.errors, skipped: window.skipped })), subscribers, modelSubscribers, figures, table }))
} finally {
  await Promise.all(clients.map((client) => client.stop()))
  await Promise.all(servers.map((server) => server.stop()))
  redis.disconnect()
  await ownRedis?.stop()
  await database.drop()
}
