import type { FastifyBaseLogger } from 'fastify'
import type { Connection } from '../plugins/realtime/connection.js'

interface Pending {
  frame: string
  except: Connection | null
}

interface RoomState {
  /** The last seq delivered to this node's sockets; null until the first frame or a baseline. */
  last: number | null
  pending: Map<number, Pending>
  timer: NodeJS.Timeout | null
  /** The gap fill in progress, if any: one at a time per room. */
  filling: Promise<void> | null
}

export interface SequencerOptions {
  deliver (roomId: string, frame: string, except: Connection | null): void
  /** Reads committed events in (after, upTo] from the database, ascending. */
  fetch (roomId: string, after: number, upTo: number | undefined): Promise<Array<{ seq: number, frame: string }>>
  log: FastifyBaseLogger
  /** How long a gap may stay open before it is filled from the database. */
  reorderWindowMs?: number
}

/**
 * Delivers each room's durable pushes in seq order on this node. Frames that arrive early wait in a
 * short reorder window; a gap still open after it is filled from the database, so a push lost by the
 * broker costs latency, never a message. Duplicates (a seq already delivered) are dropped.
 */
export class RoomSequencer {
  private readonly rooms = new Map<string, RoomState>()
  private readonly windowMs: number
  private closed = false

  constructor (private readonly options: SequencerOptions) {
    this.windowMs = options.reorderWindowMs ?? 100
  }

  baseline (roomId: string, lastSeq: number): void {
    const state = this.state(roomId)
    if (state.last === null || lastSeq > state.last) {
      state.last = lastSeq
      this.drain(roomId, state)
    }
  }

  /**
   * Delivers, from the database, every event of the room up to `committed` that this node has not
   * delivered yet; resolves once they are delivered (or a read failed: the next push's gap fill retries).
   * For a node that starts listening to a room: events committed before its subscription took effect
   * were published to no one here.
   */
  async catchUp (roomId: string, committed: number): Promise<void> {
    for (;;) {
      const state = this.rooms.get(roomId)
      if (state === undefined || state.last === null || state.last >= committed || this.closed) return
      const before = state.last
      await (state.filling ?? this.fill(roomId, committed))
      // A fill that delivered nothing failed (or the room was forgotten): stop rather than spin.
      if (this.rooms.get(roomId) !== state || state.last === before) return
    }
  }

  /** The last seq delivered to this node's sockets in the room, or null when it has none yet. */
  delivered (roomId: string): number | null {
    return this.rooms.get(roomId)?.last ?? null
  }

  accept (roomId: string, seq: number | null, frame: string, except: Connection | null): void {
    if (seq === null) {
      this.options.deliver(roomId, frame, except)
      return
    }
    const state = this.state(roomId)
    if (state.last === null) state.last = seq - 1
    if (seq <= state.last) return
    if (seq === state.last + 1) {
      this.options.deliver(roomId, frame, except)
      state.last = seq
      this.drain(roomId, state)
      return
    }
    state.pending.set(seq, { frame, except })
    this.arm(roomId, state)
  }

  forget (roomId: string): void {
    const state = this.rooms.get(roomId)
    if (state?.timer != null) clearTimeout(state.timer)
    this.rooms.delete(roomId)
  }

  catchUpAll (): void {
    for (const roomId of this.rooms.keys()) void this.fill(roomId, undefined)
  }

  close (): void {
    this.closed = true
    for (const roomId of [...this.rooms.keys()]) this.forget(roomId)
  }

  private state (roomId: string): RoomState {
    let state = this.rooms.get(roomId)
    if (state === undefined) {
      state = { last: null, pending: new Map(), timer: null, filling: null }
      this.rooms.set(roomId, state)
    }
    return state
  }

  private drain (roomId: string, state: RoomState): void {
    for (;;) {
      const next = (state.last as number) + 1
      const pending = state.pending.get(next)
      if (pending === undefined) break
      state.pending.delete(next)
      this.options.deliver(roomId, pending.frame, pending.except)
      state.last = next
    }
    for (const seq of state.pending.keys()) if (seq <= (state.last as number)) state.pending.delete(seq)
    if (state.pending.size === 0 && state.timer !== null) {
      clearTimeout(state.timer)
      state.timer = null
    }
  }

  private arm (roomId: string, state: RoomState): void {
    if (state.timer !== null) return
    state.timer = setTimeout(() => {
      state.timer = null
      const upTo = Math.min(...state.pending.keys()) - 1
      void this.fill(roomId, upTo)
    }, this.windowMs)
    state.timer.unref()
  }

  /** Reads the missing events from the database and delivers them, then whatever waited behind them. */
  private fill (roomId: string, upTo: number | undefined): Promise<void> {
    const state = this.rooms.get(roomId)
    if (state === undefined || state.last === null || state.filling !== null || this.closed) return state?.filling ?? Promise.resolve()
    const filling = this.read(roomId, state, upTo).finally(() => {
      state.filling = null
      if (state.pending.size > 0 && !this.closed && this.rooms.get(roomId) === state) this.arm(roomId, state)
    })
    state.filling = filling
    return filling
  }

  private async read (roomId: string, state: RoomState, upTo: number | undefined): Promise<void> {
    try {
      const events = await this.options.fetch(roomId, state.last as number, upTo)
      if (this.rooms.get(roomId) !== state) return
      for (const event of events) {
        if (event.seq !== (state.last as number) + 1) break
        const waiting = state.pending.get(event.seq)
        state.pending.delete(event.seq)
        this.options.deliver(roomId, event.frame, waiting?.except ?? null)
        state.last = event.seq
      }
      this.drain(roomId, state)
    } catch (error) {
      this.options.log.warn({ err: error, roomId }, 'filling a gap from the database failed; retrying')
    }
  }
}
