import { ChatClientError } from './errors.js'
import { Emitter, type ChatClientEvents, type ConnectionState, type Listener } from './events.js'
import type { ChatClientOptions } from './options.js'
import { Outbox } from './outbox.js'
import { PendingRequests } from './requests.js'
import { RoomCursors } from './resume.js'
import { ReadMarks } from './read-marks.js'
import { Transport, type StopCode } from './transport.js'
import type {
  CreateRoomInput, DirectoryRequest, HistoryPage, Message, ModerationOptions, Report, PresenceStatus, Requests, Role, RoomPatch, SearchRequest, SendOptions, SessionReady, SyncRoom,
} from './types.js'

/**
 * A chat client over one WebSocket: typed requests answered by promises, typed listeners, reconnects with
 * backoff, lossless resume through `sync`, and an outbox that retries sends without duplicates.
 *
 * It wires the parts, each in its own file: the transport (the socket, the envelope, reconnects,
 * liveness, the token), the pending requests (acks and timeouts), the outbox (unacked sends, replayed in
 * order), the room cursors (resume and gap sync) and the listeners. What happens on session.ready, on a
 * lost socket and on a stop, across all of them, is here, in order.
 */
export class ChatClient {
  private readonly events = new Emitter()
  private readonly transport: Transport
  private readonly requests: PendingRequests
  private readonly outbox: Outbox
  private readonly rooms: RoomCursors
  private readonly marks = new ReadMarks()
  /** The user of the current (or last) session. */
  private me: string | null = null
  private hadSession = false

  constructor (options: ChatClientOptions) {
    const transport = new Transport(options, this.events, {
      answer: (id, data, error) => this.answer(id, data, error),
      push: (event, data) => this.rooms.receive(event, data),
      ready: (ready) => { void this.sessionReady(ready) },
      lost: (code, reason) => this.lost(code, reason),
      stopped: (code, message) => this.stopped(code, message),
      reauthenticate: (token) => this.requests.request('auth', { token }, true),
    })
    this.transport = transport
    this.requests = new PendingRequests(this.transport, options)
    this.outbox = new Outbox(this.transport, options, (roomId, seq) => {
      this.rooms.ownEvent(roomId, seq)
      // Sending reads the room up to the send (the server moved the mark the same way).
      if (this.me !== null) this.marks.note(roomId, this.me, seq)
    })
    this.events.on('receipt.read', ({ roomId, userId, seq }) => this.marks.note(roomId, userId, seq))
    this.events.on('room.removed', ({ roomId }) => this.marks.forget(roomId))
    this.rooms = new RoomCursors(this.events, {
      get sessionUp () { return transport.sessionUp },
      get generation () { return transport.generation },
      sync: (cursors) => this.requests.request('sync', { cursors }, true) as Promise<{ rooms: SyncRoom[] }>,
      claimOwnSend: (roomId, message) => message?.sender?.id === this.me && this.outbox.claim(roomId, message),
    })
  }

  /** connecting, open (a session is up), closed, or idle before the first connect(). */
  get state (): ConnectionState {
    return this.transport.state
  }

  /** The user of the current (or last) session. */
  get userId (): string | null {
    return this.me
  }

  /** Sends that have no ack yet (waiting for a connection, or in flight). */
  get pendingSends (): number {
    return this.outbox.size
  }

  /** The highest seq applied in a room with nothing missing below it; undefined for a room not tracked. */
  cursor (roomId: string): number | undefined {
    return this.rooms.cursor(roomId)
  }

  /** Opens the connection; resolves with the next session.ready. Reconnects on its own after that. */
  connect (): Promise<SessionReady> {
    return this.transport.connect()
  }

  /**
   * Closes the socket cleanly and never reconnects (until connect() again). Requests and sends still
   * waiting reject with CLOSED; a send already in flight may have been stored all the same.
   */
  close (): Promise<void> {
    return this.transport.close()
  }

  // Listeners

  /** Listens to a push (`message.new`, `typing`, ...) or a client event (`state`, `resync`, ...); returns the unsubscribe. */
  on<K extends keyof ChatClientEvents> (event: K, listener: Listener<ChatClientEvents[K]>): () => void
  on (event: string, listener: Listener<any>): () => void
  on (event: string, listener: Listener<any>): () => void {
    return this.events.on(event, listener)
  }

  once<K extends keyof ChatClientEvents> (event: K, listener: Listener<ChatClientEvents[K]>): () => void
  once (event: string, listener: Listener<any>): () => void
  once (event: string, listener: Listener<any>): () => void {
    const off = this.on(event, (data: unknown) => {
      off()
      listener(data)
    })
    return off
  }

  off (event: string, listener: Listener<any>): void {
    this.events.off(event, listener)
  }

  // Requests

  /** Any request by its event name; resolves with the ack's data, rejects with a ChatClientError. */
  request<K extends keyof Requests> (event: K, data: Requests[K]['data']): Promise<Requests[K]['ack']>
  request (event: string, data?: Record<string, unknown>): Promise<Record<string, unknown>>
  request (event: string, data?: Record<string, unknown>): Promise<unknown> {
    if (event === 'message.send') {
      const { roomId, content, ...rest } = (data ?? {}) as unknown as { roomId: string, content: string } & SendOptions
      return this.sendMessage(roomId, content, rest)
    }
    return this.requests.request(event, data).then((ack) => {
      this.rooms.afterAck(event, data, ack)
      return ack
    })
  }

  /**
   * Sends a message. It always carries a clientMsgId, and stays in the outbox until acked: a send made
   * while disconnected, or cut off before its ack, is sent again after the reconnect with the same
   * clientMsgId, so the server stores it once; the promise resolves with the original either way.
   */
  sendMessage (roomId: string, content: string, options: SendOptions = {}): Promise<{ message: Message }> {
    return this.outbox.send(roomId, content, options)
  }

  editMessage (messageId: string, content: string): Promise<Requests['message.edit']['ack']> {
    return this.request('message.edit', { messageId, content })
  }

  deleteMessage (messageId: string): Promise<Requests['message.delete']['ack']> {
    return this.request('message.delete', { messageId })
  }

  react (messageId: string, emoji: string): Promise<Requests['reaction.add']['ack']> {
    return this.request('reaction.add', { messageId, emoji })
  }

  unreact (messageId: string, emoji: string): Promise<Requests['reaction.remove']['ack']> {
    return this.request('reaction.remove', { messageId, emoji })
  }

  /** A page of history ascending by seq: `before` a seq, `after` one, or the latest. */
  history (roomId: string, page: HistoryPage = {}): Promise<Requests['history.fetch']['ack']> {
    return this.request('history.fetch', { roomId, ...page })
  }

  markRead (roomId: string, seq: number): Promise<Requests['message.read']['ack']> {
    return this.request('message.read', { roomId, seq })
  }

  createRoom (input: CreateRoomInput): Promise<Requests['room.create']['ack']> {
    return this.request('room.create', input)
  }

  openDirect (userId: string): Promise<Requests['dm.open']['ack']> {
    return this.request('dm.open', { userId })
  }

  joinRoom (roomId: string): Promise<Requests['room.join']['ack']> {
    return this.request('room.join', { roomId })
  }

  leaveRoom (roomId: string): Promise<Record<string, never>> {
    return this.request('room.leave', { roomId })
  }

  updateRoom (roomId: string, patch: RoomPatch): Promise<Requests['room.update']['ack']> {
    return this.request('room.update', { roomId, ...patch })
  }

  deleteRoom (roomId: string): Promise<Record<string, never>> {
    return this.request('room.delete', { roomId })
  }

  /** A page of the room's members, oldest first (`offset`, `limit`: default 100, at most 500); `nextOffset` asks for the next. */
  members (roomId: string, page: { offset?: number, limit?: number } = {}): Promise<Requests['room.members']['ack']> {
    return this.request('room.members', { roomId, ...page }).then((ack) => {
      for (const member of ack.members) if (member.lastReadSeq !== undefined) this.marks.note(roomId, member.user.id, member.lastReadSeq)
      return ack
    })
  }

  /**
   * Who has read a room's message of `seq`: the members whose read mark is at least `seq`, as far as this
   * client knows (list the room's members once with `members()`; receipts and own sends keep it current).
   */
  seenBy (roomId: string, seq: number): string[] {
    return this.marks.seenBy(roomId, seq)
  }

  addMembers (roomId: string, userIds: string[]): Promise<Requests['room.member.add']['ack']> {
    return this.request('room.member.add', { roomId, userIds })
  }

  removeMember (roomId: string, userId: string): Promise<Record<string, never>> {
    return this.request('room.member.remove', { roomId, userId })
  }

  setRole (roomId: string, userId: string, role: Role): Promise<Requests['room.member.role']['ack']> {
    return this.request('room.member.role', { roomId, userId, role })
  }

  // Moderation (docs/moderation.md): each refused with FORBIDDEN below the role it takes.

  /** Bans a user (a member of a lower role is removed); `durationSec` for a timed ban. */
  ban (roomId: string, userId: string, options: ModerationOptions = {}): Promise<Requests['room.ban']['ack']> {
    return this.request('room.ban', { roomId, userId, ...options })
  }

  unban (roomId: string, userId: string): Promise<Record<string, never>> {
    return this.request('room.unban', { roomId, userId })
  }

  bans (roomId: string): Promise<Requests['room.bans']['ack']> {
    return this.request('room.bans', { roomId })
  }

  /** Mutes a member of a lower role: they read, but cannot send, react or type (MUTED). */
  mute (roomId: string, userId: string, options: ModerationOptions = {}): Promise<Requests['room.mute']['ack']> {
    return this.request('room.mute', { roomId, userId, ...options })
  }

  unmute (roomId: string, userId: string): Promise<Requests['room.unmute']['ack']> {
    return this.request('room.unmute', { roomId, userId })
  }

  /** Reports a message to the room's moderators. */
  report (messageId: string, reason: string): Promise<Requests['message.report']['ack']> {
    return this.request('message.report', { messageId, reason })
  }

  reports (roomId: string, status?: Report['status']): Promise<Requests['room.reports']['ack']> {
    return this.request('room.reports', status === undefined ? { roomId } : { roomId, status })
  }

  resolveReport (reportId: string, action: 'dismiss' | 'delete'): Promise<Requests['room.report.resolve']['ack']> {
    return this.request('room.report.resolve', { reportId, action })
  }

  pin (messageId: string): Promise<Requests['message.pin']['ack']> {
    return this.request('message.pin', { messageId })
  }

  unpin (messageId: string): Promise<Requests['message.unpin']['ack']> {
    return this.request('message.unpin', { messageId })
  }

  /**
   * The directory: public rooms of your tenant you may join, by name prefix or word (`query`), `type`;
   * pass the answer's `nextCursor` as `cursor` for the next page (null at the end).
   */
  directory (request: DirectoryRequest = {}): Promise<Requests['room.directory']['ack']> {
    return this.request('room.directory', request)
  }

  /**
   * Searches the messages of the rooms you are a member of (or of one room: `roomId`) for `query` (words,
   * `"a phrase"`, `-without`, `or`), best match first, newest first among equals; deleted messages are
   * left out, a thread reply carries its `threadRootId`. Pass the answer's `nextCursor` as `cursor` for
   * the next page (null at the end).
   */
  searchMessages (request: SearchRequest): Promise<Requests['message.search']['ack']> {
    return this.request('message.search', request)
  }

  /** The tenant's open SUPPORT rooms, for holders of chats:support (who join them as MODERATOR). */
  supportQueue (page: { offset?: number, limit?: number } = {}): Promise<Requests['support.queue']['ack']> {
    return this.request('support.queue', page)
  }

  setPresence (status: PresenceStatus): Promise<Record<string, never>> {
    return this.request('presence.set', { status })
  }

  getPresence (userIds: string[]): Promise<Requests['presence.get']['ack']> {
    return this.request('presence.get', { userIds })
  }

  typingStart (roomId: string): Promise<Record<string, never>> {
    return this.request('typing.start', { roomId })
  }

  typingStop (roomId: string): Promise<Record<string, never>> {
    return this.request('typing.stop', { roomId })
  }

  toggleFavorite (type: 'ROOM' | 'USER', id: string): Promise<Requests['favorite.toggle']['ack']> {
    return this.request('favorite.toggle', { type, id })
  }

  /** Asks for every event after the cursors of these rooms (all tracked rooms by default) now. */
  async syncNow (roomIds?: string[]): Promise<void> {
    await this.rooms.sync(roomIds ?? this.rooms.roomIds())
  }

  // What happens across the parts

  /** An ack or an error frame: a send's, a request's, or (an error) one that answers nothing. */
  private answer (id: string | undefined, data: Record<string, unknown>, error: ChatClientError | null): void {
    if (id !== undefined && (this.outbox.settle(id, data, error) || this.requests.settle(id, data, error))) return
    if (error !== null) this.events.emitError(error)
  }

  /**
   * session.ready: the rooms of this session are reconciled with the cursors, listeners and connect()
   * hear of it, the rooms that moved while away are synced, and only then do the unacked sends (in
   * their order) and the requests made offline go out, so that replies never overtake the replay.
   */
  private async sessionReady (first: SessionReady): Promise<void> {
    const session = this.transport.sessionStarted(first)
    const ready = first.roomsHasMore === true ? await this.allRooms(first) : first
    if (ready === null || !this.transport.isCurrent(session)) return
    this.me = ready.user.id
    const resuming = this.hadSession
    this.hadSession = true
    const behind = this.rooms.sessionStarted(ready, resuming)
    this.events.emit('session.ready', ready)
    this.transport.opened(ready)
    if (!this.transport.isCurrent(session)) return
    this.transport.keepAlive()
    if (behind.length > 0) await this.rooms.sync(behind)
    if (!this.transport.isCurrent(session)) return
    this.transport.goLive()
    this.outbox.replay()
    this.requests.sendQueued()
  }

  /**
   * session.ready with every room: one that could not carry them all (the server's maxReplyBytes) is
   * completed with room.list pages. Null when the socket went away meanwhile (the next session retries).
   */
  private async allRooms (ready: SessionReady): Promise<SessionReady | null> {
    const rooms = [...ready.rooms]
    const seen = new Set(rooms.map((room) => room.id))
    let offset: number | null = rooms.length
    try {
      while (offset !== null) {
        const page = await this.requests.request('room.list', { offset, limit: 500 }, true) as Requests['room.list']['ack']
        // A room that moved up the list between pages (new activity) is already here.
        for (const room of page.rooms) if (!seen.has(room.id)) { seen.add(room.id); rooms.push(room) }
        offset = page.nextOffset
      }
    } catch (error) {
      if (error instanceof ChatClientError) this.events.emitError(error)
      return null
    }
    const { roomsHasMore: _more, ...rest } = ready
    return { ...rest, rooms }
  }

  /** The socket is gone: no sync runs, what was sent on it and had no reply fails, sends wait for the next. */
  private lost (code: number, reason: string): void {
    this.rooms.reset()
    this.requests.disconnected(code, reason)
    this.outbox.disconnected()
  }

  /** Stopped for good: every waiting request and send rejects with the code. */
  private stopped (code: StopCode, message: string): void {
    this.requests.rejectAll(code, message)
    this.outbox.rejectAll(code, message)
    this.rooms.reset()
  }
}
