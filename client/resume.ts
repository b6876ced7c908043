import { ChatClientError } from './errors.js'
import type { Emitter } from './events.js'
import { DURABLE_EVENTS, type Message, type RoomEvent, type SessionReady, type SyncRoom } from './types.js'

/** What resume needs of the rest of the client. */
export interface ResumeLine {
  /** A session is up: a gap can be asked for now. */
  readonly sessionUp: boolean
  /** Bumped for every socket: a sync of an older socket stops touching the cursors. */
  readonly generation: number
  /** The `sync` request (the client's own: it goes out as soon as a session is up). */
  sync (cursors: Array<{ roomId: string, seq: number }>): Promise<{ rooms: SyncRoom[] }>
  /** A message.new that answers a send of this client still waiting for its ack: true when it did. */
  claimOwnSend (roomId: string, message: Message | undefined): boolean
}

interface RoomCursor {
  /** The highest seq applied with nothing missing below it. */
  cursor: number
  /** Seqs above the cursor this client already has: its own acked sends (never echoed to the sending socket). */
  ahead: Set<number>
  /** Pushes that arrived after a gap, held until the gap is filled. */
  held: Map<number, RoomEvent>
  syncing: boolean
}

/** How many rooms one `sync` request asks for (the server's limit). */
const SYNC_BATCH = 100
/** Changes whose ack says where they landed in the room (their push goes to the other sockets only). */
const OWN_CHANGES = new Set(['message.edit', 'message.delete', 'reaction.add', 'reaction.remove'])

/**
 * A cursor per room: durable events are emitted once each, in seq order. A push past a gap is held and
 * the gap asked for with `sync`; after a reconnect the rooms that moved are replayed from their cursors;
 * a room whose cursor the server no longer covers gets `resync`.
 */
export class RoomCursors {
  private readonly events: Emitter
  private readonly line: ResumeLine
  private readonly rooms = new Map<string, RoomCursor>()
  private readonly syncWanted = new Set<string>()
  private syncScheduled = false

  constructor (events: Emitter, line: ResumeLine) {
    this.events = events
    this.line = line
  }

  /** The highest seq applied in a room with nothing missing below it; undefined for a room not tracked. */
  cursor (roomId: string): number | undefined {
    return this.rooms.get(roomId)?.cursor
  }

  roomIds (): string[] {
    return [...this.rooms.keys()]
  }

  /**
   * A new session's rooms: forget those lost while away, start the new ones at their lastSeq, and return
   * those that moved since the last session (to sync once the session is up).
   */
  sessionStarted (ready: SessionReady, resuming: boolean): string[] {
    const current = new Map(ready.rooms.map((room) => [room.id, room.lastSeq]))
    for (const roomId of [...this.rooms.keys()]) if (!current.has(roomId)) this.rooms.delete(roomId)
    const behind: string[] = []
    for (const [roomId, lastSeq] of current) {
      const room = this.rooms.get(roomId)
      if (room === undefined) this.track(roomId, lastSeq)
      else if (resuming && (room.cursor !== lastSeq || room.held.size > 0)) behind.push(roomId)
    }
    return behind
  }

  /** The socket is gone or the client stopped: no sync runs or waits any more. */
  reset (): void {
    for (const room of this.rooms.values()) room.syncing = false
    this.syncWanted.clear()
  }

  /** A server push: durable ones go through their room's cursor, room.added / room.removed (un)track it. */
  receive (event: string, data: Record<string, unknown>): void {
    if (DURABLE_EVENTS.has(event) && typeof data.roomId === 'string' && typeof data.seq === 'number') {
      this.durable(event, data, false)
      return
    }
    if (event === 'room.added') {
      const room = data.room as { id?: unknown, lastSeq?: unknown } | undefined
      if (typeof room?.id === 'string' && typeof room.lastSeq === 'number') this.track(room.id, room.lastSeq)
    } else if (event === 'room.removed' && typeof data.roomId === 'string') {
      this.rooms.delete(data.roomId)
    }
    this.events.emit(event, data)
  }

  /** Keeps the room cursors in step with what this client did itself. */
  afterAck (event: string, data: Record<string, unknown> | undefined, ack: Record<string, unknown>): void {
    if (event === 'room.create' || event === 'dm.open' || event === 'room.join') {
      const room = ack.room as { id?: unknown, lastSeq?: unknown } | undefined
      if (typeof room?.id === 'string' && typeof room.lastSeq === 'number') this.track(room.id, room.lastSeq)
    } else if ((event === 'room.leave' || event === 'room.delete') && typeof data?.roomId === 'string') {
      this.rooms.delete(data.roomId)
    } else if (OWN_CHANGES.has(event) && typeof ack.roomId === 'string' && typeof ack.seq === 'number') {
      // An edit, a deletion or a reaction of this client: its push went to the other sockets only.
      this.ownEvent(ack.roomId, ack.seq)
    }
  }

  /** A seq this client wrote itself and will not get as a push: the cursor moves over it when it gets there. */
  ownEvent (roomId: string, seq: number): void {
    const room = this.rooms.get(roomId)
    if (room === undefined || seq <= room.cursor) return
    room.ahead.add(seq)
    this.advance(roomId, room)
  }

  /**
   * Replays what the rooms missed, from each cursor, page after page (`hasMore`), in order; a room whose
   * cursor the server no longer covers gets `resync`. Never throws: a failed sync is retried by the
   * next gap or reconnect.
   */
  async sync (roomIds: string[]): Promise<void> {
    const generation = this.line.generation
    const mine = roomIds.filter((roomId) => {
      const room = this.rooms.get(roomId)
      if (room === undefined || room.syncing) return false
      room.syncing = true
      return true
    })
    if (mine.length === 0) return
    let progressed = false
    try {
      let cursors = mine.map((roomId) => ({ roomId, seq: (this.rooms.get(roomId) as RoomCursor).cursor }))
      while (cursors.length > 0 && generation === this.line.generation) {
        const batch = cursors.slice(0, SYNC_BATCH)
        const asked = new Map(batch.map((cursor) => [cursor.roomId, cursor.seq]))
        const rest = cursors.slice(SYNC_BATCH)
        const reply = await this.line.sync(batch)
        if (generation !== this.line.generation) return
        const next: Array<{ roomId: string, seq: number }> = []
        for (const entry of reply.rooms) {
          const room = this.rooms.get(entry.roomId)
          if (room === undefined) continue
          if (entry.error !== undefined) {
            this.rooms.delete(entry.roomId)
            this.events.emit('room.removed', { roomId: entry.roomId })
            continue
          }
          if (entry.resync === true) {
            // Behind the retained window: jump to the room's end. Ahead of the room (its log was reset): go back to it.
            const askedSeq = asked.get(entry.roomId) ?? room.cursor
            room.cursor = askedSeq > entry.lastSeq ? entry.lastSeq : Math.max(room.cursor, entry.lastSeq)
            room.ahead.clear()
            progressed = true
            this.advance(entry.roomId, room)
            this.events.emit('resync', { roomId: entry.roomId, lastSeq: entry.lastSeq })
            continue
          }
          for (const replayed of entry.events) {
            if (typeof replayed.data?.seq !== 'number') continue
            progressed = true
            this.durable(replayed.event, { ...replayed.data, roomId: entry.roomId }, true)
          }
          // A room cut short continues from its last event; one the reply had no room for, from where it was asked.
          const last = entry.events[entry.events.length - 1]
          const from = last === undefined ? asked.get(entry.roomId) : last.data.seq as number
          if (entry.hasMore && from !== undefined) next.push({ roomId: entry.roomId, seq: from })
        }
        cursors = [...next, ...rest]
      }
    } catch (error) {
      if (generation === this.line.generation && error instanceof ChatClientError) this.events.emitError(error)
      return
    } finally {
      for (const roomId of mine) {
        const room = this.rooms.get(roomId)
        if (room !== undefined) room.syncing = false
      }
    }
    if (generation !== this.line.generation) return
    this.events.emit('synced', { roomIds: mine })
    // A gap that opened while this ran, or that the replay did not close, gets another round.
    for (const roomId of mine) {
      const room = this.rooms.get(roomId)
      if (room !== undefined && room.held.size > 0 && progressed) this.wantSync(roomId)
    }
  }

  private track (roomId: string, lastSeq: number): RoomCursor {
    let room = this.rooms.get(roomId)
    if (room === undefined) {
      room = { cursor: lastSeq, ahead: new Set(), held: new Map(), syncing: false }
      this.rooms.set(roomId, room)
    }
    return room
  }

  /**
   * One durable event, pushed or replayed: emitted once, in seq order. A push past a gap is held and
   * the gap is asked for with `sync`; whatever arrives twice (a push and its replay) is dropped.
   */
  private durable (event: string, data: Record<string, unknown>, replayed: boolean): void {
    const roomId = data.roomId as string
    const seq = data.seq as number
    let room = this.rooms.get(roomId)
    if (room === undefined) {
      if (replayed) return
      // A room this client has not heard of yet (its room.added is on the way): start from here.
      room = this.track(roomId, seq - 1)
    }
    if (seq <= room.cursor || room.held.has(seq)) return
    if (seq === room.cursor + 1) {
      this.apply(roomId, room, event, data)
      this.advance(roomId, room)
      return
    }
    if (room.ahead.has(seq)) return
    room.held.set(seq, { event, data })
    if (!replayed) this.wantSync(roomId)
  }

  private apply (roomId: string, room: RoomCursor, event: string, data: Record<string, unknown>): void {
    const seq = data.seq as number
    room.cursor = seq
    if (room.ahead.delete(seq)) return // this client's own send: it had the ack, not an echo
    // A send of this client stored before its ack was lost: it resolves the send instead.
    if (event === 'message.new' && this.line.claimOwnSend(roomId, data.message as Message | undefined)) return
    this.events.emit(event, data)
  }

  /** Moves the cursor over this client's own seqs and over held pushes that are next. */
  private advance (roomId: string, room: RoomCursor): void {
    for (;;) {
      const next = room.cursor + 1
      if (room.ahead.delete(next)) {
        room.cursor = next
        continue
      }
      const held = room.held.get(next)
      if (held !== undefined) {
        room.held.delete(next)
        this.apply(roomId, room, held.event, held.data)
        continue
      }
      break
    }
    for (const seq of room.ahead) if (seq <= room.cursor) room.ahead.delete(seq)
    for (const seq of room.held.keys()) if (seq <= room.cursor) room.held.delete(seq)
  }

  private wantSync (roomId: string): void {
    const room = this.rooms.get(roomId)
    if (room === undefined || room.syncing || !this.line.sessionUp) return
    this.syncWanted.add(roomId)
    if (this.syncScheduled) return
    this.syncScheduled = true
    queueMicrotask(() => {
      this.syncScheduled = false
      const roomIds = [...this.syncWanted]
      this.syncWanted.clear()
      if (roomIds.length > 0) void this.sync(roomIds)
    })
  }
}
