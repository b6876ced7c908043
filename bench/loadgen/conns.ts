/**
 * The connects scenario: how fast a node takes authenticated sessions, and how fast a second node takes
 * all of them back when the first dies (every client reconnects at once).
 *
 * `clients` users, each a member of `roomsPerUser` rooms of `roomSize` members. Both nodes are warmed
 * with a few hundred throwaway sessions first (code compiled on the first connections is not a per-connect
 * cost). Then:
 * 1. first wave: every client connects to node 0, `concurrency` at a time, and is ready when the target
 *    says so: this server's session.ready (which subscribes the socket to its rooms), the Socket.IO
 *    stack's connect ack and then its `join` of each room, the relay's open and its joins;
 * 2. this server only: one message is written to every room, and the clients keep their cursors from
 *    their first session.ready, as clients that missed a message while their node died would;
 * 3. the storm: node 0 is killed (SIGKILL); each client reconnects to node 1 as soon as its socket
 *    closes, `concurrency` at a time, and is resumed when ready again and, for this server, when its
 *    `sync` of the rooms that moved (by the new session.ready's lastSeq) is answered.
 */
import postgres from 'postgres'
import { percentile, postgresCpuMicros, round, sleep } from '../lib.js'
import { chatRequest, PROTOCOLS, type Peer, type Protocol } from '../protocols.js'
import { connectWithRetry, log, pool, tokenSigner } from './driver.js'
import { cpuOf } from './server-usage.js'
import type { ConnsConfig, ConnsResult, ConnsWave } from './types.js'

const WARM_SESSIONS = 200

interface Client {
  userId: string
  token: string
  /** Indexes into the scenario's rooms. */
  rooms: number[]
  peer: Peer | null
  /** This server: the seq each room was at in the client's first session.ready. */
  cursors: Map<string, number>
}

/**
 * Room r of layer j holds the `roomSize` users at positions [r·size, (r+1)·size) of the user list
 * rotated by 7·j: every user is in one room per layer, every room has exactly `roomSize` members, and
 * the rooms of different layers overlap in membership as real ones do.
 */
function layout (clients: number, roomsPerUser: number, roomSize: number): { members: number[][], roomsOf: number[][] } {
  const perLayer = clients / roomSize
  const members: number[][] = Array.from({ length: perLayer * roomsPerUser }, () => [])
  const roomsOf: number[][] = Array.from({ length: clients }, () => [])
  for (let layer = 0; layer < roomsPerUser; layer += 1) {
    for (let user = 0; user < clients; user += 1) {
      const room = layer * perLayer + Math.floor(((user + 7 * layer) % clients) / roomSize)
      members[room]?.push(user)
      roomsOf[user]?.push(room)
    }
  }
  return { members, roomsOf }
}

/** At most `limit` tasks at once, in the order they are handed in. */
function gate (limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0
  const waiting: Array<() => void> = []
  return async (task) => {
    if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve))
    running += 1
    try {
      return await task()
    } finally {
      running -= 1
      waiting.shift()?.()
    }
  }
}

interface ReadyRoom { id: string, lastSeq: number }

function readyRooms (peer: Peer): ReadyRoom[] {
  if (peer.readyFrame === null) return []
  const frame = JSON.parse(peer.readyFrame.toString()) as { data: { rooms: ReadyRoom[] } }
  return frame.data.rooms
}

/** One client's session on `url`: connected and ready (joined to its rooms where the target needs it). */
async function open (protocol: Protocol, url: string, client: Client, roomNames: string[]): Promise<Peer> {
  const peer = await connectWithRetry(protocol, url, client.userId, client.token)
  if (protocol.kind !== 'chat') await Promise.all(client.rooms.map(async (room) => await protocol.join(peer, roomNames[room] as string)))
  return peer
}

/** This server, after a reconnect: `sync` of the rooms whose lastSeq moved past the client's cursor. */
async function resume (peer: Peer, client: Client): Promise<number> {
  const cursors = readyRooms(peer).flatMap((room) => {
    const seq = client.cursors.get(room.id)
    return seq !== undefined && room.lastSeq > seq ? [{ roomId: room.id, seq }] : []
  })
  if (cursors.length > 0) await chatRequest(peer, 'sync', { cursors })
  return cursors.length
}

/**
 * The rooms of `members` (indexes into `userIds`). This server's are created by an owner each (a user
 * outside the clients), who then leaves; the other targets' rooms are names, joined by their clients.
 */
async function createRooms (protocol: Protocol, url: string, members: number[][], userIds: string[], prefix: string, sign: (userId: string) => string): Promise<{ names: string[], owners: string[] }> {
  const owners = members.map((_, index) => `${prefix}-o${index}`)
  if (protocol.kind !== 'chat') return { names: members.map((_, index) => `conns-${prefix}-${index}`), owners }
  const names = await pool(members, 20, async (memberList, index) => {
    const ownerId = owners[index] as string
    const owner = await connectWithRetry(protocol, url, ownerId, sign(ownerId))
    const roomId = await protocol.createRoom(owner, `conns ${prefix} ${index}`, memberList.map((user) => userIds[user] as string))
    owner.close()
    return roomId
  })
  return { names, owners }
}

/** This server: one message in every room, written by its owner. */
async function writeOnePerRoom (protocol: Protocol, url: string, rooms: { names: string[], owners: string[] }, prefix: string, sign: (userId: string) => string): Promise<void> {
  if (protocol.kind !== 'chat') return
  await pool(rooms.names, 20, async (roomId, index) => {
    const ownerId = rooms.owners[index] as string
    const owner = await connectWithRetry(protocol, url, ownerId, sign(ownerId))
    await owner.send(roomId, 'written before the node died', `${prefix}-before-${index}`)
    owner.close()
  })
}

/**
 * Throwaway sessions on `url` that take every path the measured ones take (rooms joined or summarized,
 * presence pushed to their rooms' members, and, for this server, a `sync` of rooms that moved), so that
 * code compiled on first use is not counted as a per-connect cost of either wave.
 */
async function warm (protocol: Protocol, url: string, config: ConnsConfig, name: string, sign: (userId: string) => string): Promise<void> {
  const count = Math.ceil(WARM_SESSIONS / config.roomSize) * config.roomSize
  const { members, roomsOf } = layout(count, config.roomsPerUser, config.roomSize)
  const prefix = `${config.tag}-${name}`
  const userIds = roomsOf.map((_, index) => `${prefix}${index}`)
  const rooms = await createRooms(protocol, url, members, userIds, prefix, sign)
  await writeOnePerRoom(protocol, url, rooms, prefix, sign)
  const clients: Client[] = roomsOf.map((userRooms, index) => ({
    userId: userIds[index] as string,
    token: sign(userIds[index] as string),
    rooms: userRooms,
    peer: null,
    // Cursors before the message written above: every room moved, so the session syncs them all.
    cursors: new Map(userRooms.map((room) => [rooms.names[room] as string, 0])),
  }))
  const peers = await pool(clients, config.concurrency, async (client) => {
    const peer = await open(protocol, url, client, rooms.names)
    if (protocol.kind === 'chat') await resume(peer, client)
    return peer
  })
  for (const peer of peers) peer.close()
  await sleep(500)
}

function wave (clients: number, latencies: number[], failed: number, seconds: number, cpu: number, databaseCpu: number, roomsSynced: number): ConnsWave {
  latencies.sort((a, b) => a - b)
  return {
    clients,
    ready: latencies.length,
    failed,
    seconds: round(seconds, 2),
    connectsPerSecond: round(latencies.length / seconds, 0),
    p50: round(percentile(latencies, 50), 1),
    p99: round(percentile(latencies, 99), 1),
    cpuMicrosPerConnect: round(cpu / Math.max(1, latencies.length), 0),
    databaseCpuMicrosPerConnect: round(databaseCpu / Math.max(1, latencies.length), 0),
    roomsSynced,
  }
}

export async function conns (config: ConnsConfig): Promise<ConnsResult> {
  const protocol = PROTOCOLS[config.target]
  const sign = tokenSigner(config.secret)
  const [firstUrl, secondUrl] = config.urls as [string, string]
  const [firstPid, secondPid] = config.pids as [number, number]
  const { members, roomsOf } = layout(config.clients, config.roomsPerUser, config.roomSize)
  // Tokens are signed before any clock starts: signing is the generator's work, not the server's.
  const clients: Client[] = roomsOf.map((rooms, index) => {
    const userId = `${config.tag}-u${index}`
    return { userId, token: sign(userId), rooms, peer: null, cursors: new Map() }
  })

  const rooms = await createRooms(protocol, firstUrl, members, clients.map((client) => client.userId), config.tag, sign)
  const roomNames = rooms.names
  log(`${roomNames.length} rooms of ${config.roomSize}, ${config.clients} clients in ${config.roomsPerUser} each`)
  // A database in service has statistics of its tables; this one was written a moment ago, and
  // autovacuum would take a minute or more to gather them (until then PostgreSQL plans the session's
  // reads for empty tables: 5 ms instead of under 1 ms for a summaries statement, measured).
  if (config.databaseUrl !== null) {
    const admin = postgres(config.databaseUrl, { max: 1, onnotice: () => {} })
    try {
      await admin`analyze`
    } finally {
      await admin.end()
    }
  }
  await warm(protocol, firstUrl, config, 'w', sign)
  await warm(protocol, secondUrl, config, 'x', sign)

  // 1. The first wave, to node 0.
  let failed = 0
  let latencies: number[] = []
  let cpuBefore = cpuOf([firstPid])
  let databaseBefore = postgresCpuMicros()
  let started = performance.now()
  await pool(clients, config.concurrency, async (client) => {
    const begun = performance.now()
    try {
      client.peer = await open(protocol, firstUrl, client, roomNames)
      latencies.push(performance.now() - begun)
      for (const room of readyRooms(client.peer)) client.cursors.set(room.id, room.lastSeq)
    } catch {
      failed += 1
    }
  })
  const first = wave(config.clients, latencies, failed, (performance.now() - started) / 1000, cpuOf([firstPid]) - cpuBefore, postgresCpuMicros() - databaseBefore, 0)
  log(`first wave: ${first.ready}/${first.clients} ready in ${first.seconds} s (${first.connectsPerSecond}/s), p50 ${first.p50} p99 ${first.p99} ms, ${first.cpuMicrosPerConnect} µs CPU per connect`)

  // 2. One message per room, which every client's cursor misses.
  await writeOnePerRoom(protocol, firstUrl, rooms, config.tag, sign)

  // 3. The storm: node 0 dies; every client reconnects to node 1 at once, `concurrency` in flight.
  failed = 0
  latencies = []
  let roomsSynced = 0
  const admit = gate(config.concurrency)
  const live = clients.filter((client) => client.peer !== null)
  const resumed = live.map(async (client) => {
    const peer = client.peer as Peer
    if (peer.socket.readyState !== peer.socket.CLOSED) await new Promise<void>((resolve) => peer.socket.once('close', () => resolve()))
    try {
      await admit(async () => {
        const again = await open(protocol, secondUrl, client, roomNames)
        client.peer = again
        if (protocol.kind === 'chat') {
          const synced = await resume(again, client)
          roomsSynced += synced
        }
      })
      latencies.push(performance.now() - started)
    } catch {
      failed += 1
    }
  })
  cpuBefore = cpuOf([secondPid])
  databaseBefore = postgresCpuMicros()
  started = performance.now()
  process.kill(firstPid, 'SIGKILL')
  const settled = await Promise.race([Promise.all(resumed).then(() => true), sleep(config.stormLimitMs).then(() => false)])
  const stormSeconds = (performance.now() - started) / 1000
  const storm = wave(live.length, latencies, failed + (settled ? 0 : live.length - latencies.length - failed), stormSeconds, cpuOf([secondPid]) - cpuBefore, postgresCpuMicros() - databaseBefore, roomsSynced)
  log(`storm: ${storm.ready}/${storm.clients} resumed on node 1 in ${storm.seconds} s (${storm.connectsPerSecond}/s), p50 ${storm.p50} p99 ${storm.p99} ms after the kill, ${storm.cpuMicrosPerConnect} µs CPU per reconnect, ${roomsSynced} rooms synced`)
  for (const client of clients) client.peer?.close()
  return {
    scenario: 'conns',
    clients: config.clients,
    roomsPerUser: config.roomsPerUser,
    rooms: roomNames.length,
    concurrency: config.concurrency,
    first,
    storm,
  }
}
