import type { FastifyInstance } from 'fastify'
import { frameOf, type LogRead } from '../../db/queries/room-events.js'
import { roomHeadsOf, type RoomHead } from '../../db/queries/room-heads.js'
import { MicroBatch } from '../../lib/micro-batch.js'
import { ENVELOPE_RESERVE, ReplyBudget, utf8Bytes } from '../../lib/reply-budget.js'
import { chatError, refusals, toWireError } from '../core/errors.js'
import type { ChatUser } from '../realtime/connection.js'
import type { RoomEvent, RoomLog } from './room-log.js'

/** Events read from the log at a time while filling a sync reply. */
const SYNC_CHUNK = 100
/** The ack's data around its rooms, and the field a room's entry may gain. */
const SYNC_REPLY_FRAME = '{"rooms":[]}'
const RESYNC_FIELD = ',"resync":true'

export interface SyncRoomResult {
  roomId: string
  events: Array<{ event: string, data: Record<string, unknown> }>
  lastSeq: number
  hasMore: boolean
  resync?: boolean
  error?: { code: string, message: string }
}

/** A room's entry in a sync reply without its events: what it takes whatever the events. */
function skeletonOf (result: SyncRoomResult): SyncRoomResult {
  return { ...result, events: [], hasMore: false }
}

/** The contract's sync input rule the schema cannot say: no room twice in one request. */
function refuseRepeatedRooms (cursors: Array<{ roomId: string }>): void {
  const seen = new Set<string>()
  for (const [index, { roomId }] of cursors.entries()) {
    if (seen.has(roomId)) {
      throw chatError('VALIDATION_FAILED', `cursors.${index}.roomId: the room is already in cursors`, [{ field: `cursors.${index}.roomId`, message: 'a room may appear once' }])
    }
    seen.add(roomId)
  }
}

type ReadMany = (reads: readonly LogRead[]) => Promise<RoomEvent[][]>

/**
 * The first chunk of every room a sync will read, in one batched read instead of one read per room,
 * one room after another. Only as many rooms as `eventsLeft` could take are read ahead (each room's gap
 * bounds its events), so a reply that fills up early reads at most one budget's worth more than it
 * sends. The sync then takes each room's chunk as it would have read it.
 */
async function firstChunksOf (readMany: ReadMany, results: ReadonlyArray<{ roomId: string, from: number, lastSeq: number, hasMore: boolean }>, eventsLeft: number): Promise<Map<string, RoomEvent[]>> {
  const reads: LogRead[] = []
  let planned = 0
  for (const result of results) {
    if (planned >= eventsLeft) break
    if (!result.hasMore) continue
    const limit = Math.min(SYNC_CHUNK, eventsLeft, result.lastSeq - result.from)
    reads.push({ roomId: result.roomId, seq: result.from, upTo: result.lastSeq, limit })
    planned += limit
  }
  if (reads.length === 0) return new Map()
  const chunks = await readMany(reads)
  return new Map(reads.map((read, index) => [read.roomId, chunks[index] ?? []]))
}

function readKey (read: LogRead): string {
  return `${read.roomId} ${read.seq} ${read.upTo} ${read.limit}`
}

/**
 * The syncs of one event-loop turn read their first chunks together, each distinct read once. After a
 * node dies, every member of a room reconnects and asks for the same room from the same cursor: the
 * reconnect storm's largest cost was one statement per sync and table, and most of them read the same
 * rows. Reads of one room from different cursors go in separate calls (a call answers a room once).
 */
function turnReader (roomLog: RoomLog, timeoutMs: number): ReadMany {
  const batch = new MicroBatch<readonly LogRead[], RoomEvent[][]>(async (lists) => {
    const unique = new Map<string, LogRead>()
    for (const list of lists) for (const read of list) if (!unique.has(readKey(read))) unique.set(readKey(read), read)
    const rounds: Array<{ rooms: Set<string>, reads: LogRead[] }> = []
    for (const read of unique.values()) {
      let round = rounds.find((candidate) => !candidate.rooms.has(read.roomId))
      if (round === undefined) {
        round = { rooms: new Set(), reads: [] }
        rounds.push(round)
      }
      round.rooms.add(read.roomId)
      round.reads.push(read)
    }
    const answers = await Promise.all(rounds.map(async (round) => await roomLog.eventsAfterMany(round.reads)))
    const byKey = new Map<string, RoomEvent[]>()
    rounds.forEach((round, index) => round.reads.forEach((read, at) => byKey.set(readKey(read), answers[index]?.[at] ?? [])))
    return lists.map((list) => list.map((read) => byKey.get(readKey(read)) ?? []))
  }, { inFlight: { max: 1, timeoutMs, what: 'the sync\'s reads' } })
  return async (reads) => await batch.load(reads)
}

/** The syncs of one turn read the heads (tenant, lastSeq) of the rooms they name in one statement. */
function turnHeads (db: FastifyInstance['chatDb'], timeoutMs: number): (roomIds: readonly string[]) => Promise<Map<string, RoomHead>> {
  const batch = new MicroBatch<readonly string[], Map<string, RoomHead>>(async (lists) => {
    const all = await roomHeadsOf(db, [...new Set(lists.flat())])
    // Each sync sees only the rooms it named.
    return lists.map((list) => new Map(list.flatMap((roomId) => {
      const head = all.get(roomId)
      return head === undefined ? [] : [[roomId, head] as const]
    })))
  }, { inFlight: { max: 1, timeoutMs, what: 'reading rooms\' heads' } })
  return async (roomIds) => roomIds.length === 0 ? new Map() : await batch.load(roomIds)
}

export type Sync = (user: ChatUser, cursors: Array<{ roomId: string, seq: number }>) => Promise<{ rooms: SyncRoomResult[] }>

/**
 * How a client catches up (the `sync` event): for each room it names with the last seq it saw, the
 * events of the room's durable log after it, as many as `syncMaxEvents` and `maxReplyBytes` allow;
 * `hasMore` where a room has more, `resync` where the cursor is beyond the log's window (the client
 * reloads that room with history.fetch), an `error` for a room the caller may not read.
 */
export function createSync (app: FastifyInstance): Sync {
  const db = app.chatDb
  const config = app.chatConfig
  const readFirstChunks = turnReader(app.chatRoomLog, config.databaseTimeoutMs)
  const headsOf = turnHeads(db, config.databaseTimeoutMs)
  const roomLog = app.chatRoomLog
  return async function sync (user, cursors) {
    const roomsService = app.chatRooms
    await roomsService.authorize(user, 'sync')
    refuseRepeatedRooms(cursors)
    // The user's rooms from the node's cache, and every named room's tenant and lastSeq in one query: a
    // frame of many cursors costs no query per cursor. A room that is not the user's answers NOT_MEMBER
    // when it is a room of the user's tenant, NOT_FOUND otherwise (it does not exist, or is another
    // tenant's: the same answer, so nothing tells them apart).
    const mine = new Set(await roomsService.roomIdsOf(user))
    const named = await headsOf(cursors.map(({ roomId }) => roomId))
    const refused = new Map<string, SyncRoomResult>()
    await Promise.all(cursors.map(async ({ roomId }) => {
      try {
        if (!mine.has(roomId)) throw named.get(roomId)?.tenant === user.tenant ? refusals.notMember() : refusals.roomNotFound()
        await roomsService.requireMember(roomId, user)
      } catch (error) {
        refused.set(roomId, { roomId, events: [], lastSeq: 0, hasMore: false, error: toWireError(error) })
      }
    }))
    const lastSeqs = new Map([...named.values()].map((row) => [row.id, row.lastSeq]))
    const retention = config.eventRetention
    const results = cursors.map(({ roomId, seq }): SyncRoomResult & { from: number } => {
      const refusal = refused.get(roomId)
      if (refusal !== undefined) return { ...refusal, from: seq }
      const lastSeq = lastSeqs.get(roomId) ?? 0
      const oldestKept = retention > 0 ? Math.max(1, lastSeq - retention + 1) : 1
      if (seq > lastSeq || seq < oldestKept - 1) return { roomId, events: [], lastSeq, hasMore: false, resync: true, from: seq }
      return { roomId, events: [], lastSeq, hasMore: seq < lastSeq, from: seq }
    })
    // Every room's fixed fields are set aside first (they are in the reply whatever happens), then
    // events are added room after room while the event count and the bytes allow.
    const budget = new ReplyBudget(config.maxReplyBytes, ENVELOPE_RESERVE + SYNC_REPLY_FRAME.length)
    for (const result of results) budget.reserve(utf8Bytes(JSON.stringify(skeletonOf(result))) + 1 + RESYNC_FIELD.length)
    let eventsLeft = config.syncMaxEvents
    let full = false
    const firstChunks = await firstChunksOf(readFirstChunks, results, eventsLeft)
    for (const result of results) {
      if (full || eventsLeft === 0) break
      if (!result.hasMore) continue
      let after = result.from
      while (after < result.lastSeq && eventsLeft > 0 && !full) {
        // In chunks, so that a room's backlog is never read whole into memory for a reply that takes a page.
        const limit = Math.min(SYNC_CHUNK, eventsLeft)
        const read = after === result.from ? firstChunks.get(result.roomId) : undefined
        const chunk = read !== undefined ? read.slice(0, limit) : await roomLog.eventsAfter(result.roomId, after, limit, result.lastSeq)
        if (chunk.length === 0) break
        for (const event of chunk) {
          if (!budget.take(frameOf(event))) {
            full = true
            break
          }
          result.events.push({ event: event.event, data: event.data })
          after = event.seq
          eventsLeft -= 1
        }
        if (full && result.events.length === 0 && !results.some((other) => other.events.length > 0)) {
          // One event larger than any reply can be: the room is answered as beyond the window (the
          // client reloads it with history.fetch) instead of never getting past it.
          result.resync = true
          full = false
          break
        }
      }
      result.hasMore = result.resync !== true && after < result.lastSeq
    }
    return { rooms: results.map(({ from: _from, ...result }) => result) }
  }
}
