import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Broker, BrokerHandler } from '../../lib/broker/types.js'
import type { Connection, ConnectionObserver } from './connection.js'
import { LatestVersions } from '../../lib/latest-versions.js'
import { RoomSequencer, type SequencerOptions } from '../../lib/room-sequencer.js'
import { withDeadline } from '../../lib/deadline.js'
import { eventsAfter, frameOf } from '../../db/queries/room-events.js'
import { roomHeadsOf } from '../../db/queries/room-heads.js'
import { MicroBatch } from '../../lib/micro-batch.js'
import { LocalSockets } from './local-sockets.js'

/** A cross-node instruction addressed to a user's sockets (subscribe to a room, drop one, ...). */
export interface UserControl {
  type: string
  [key: string]: unknown
}

export type UserControlHandler = (userKey: string, control: UserControl) => void

/**
 * Told about this node's sockets and broadcasts (metrics). Called on the hot path: implementations must
 * be cheap and must not throw. The sessions (sessions.ts) hand it to each Connection as its ConnectionObserver.
 */
export interface HubObserver extends ConnectionObserver {
  socketOpened (): void
  socketClosed (code: number): void
  /** One broker publish of a room frame, a user frame or a user control. */
  published (kind: 'room' | 'user' | 'control'): void
  /** A room frame's local delivery: milliseconds from publishRoom (right after its commit) to the last local write. */
  roomDelivered (ms: number): void
}

/** Broker channels: a room's frames, and a user's frames and controls. */
const ROOM_CHANNEL = 'room:'
const USER_CHANNEL = 'user:'

// Broker payloads: "<kind><originNodeId> <seq or -> <body>". The header lets a node skip its own echo
// and order a room's frames without parsing the JSON it is about to forward untouched.
const FRAME = 'f'
const CONTROL = 'c'
// "v<originNodeId> <version> <key length>:<key><frame>": an ephemeral room frame that supersedes the
// older frames of its key (see publishVersioned).
const VERSIONED = 'v'

/** An ephemeral frame's place among the frames it supersedes: the latest version of a key wins. */
export interface FrameVersion {
  key: string
  version: number
}

/** An ephemeral frame for every socket of any of its rooms, once per socket (a user's presence). */
export interface VersionedPush {
  roomIds: readonly string[]
  frame: string
  version: FrameVersion
}

function encodeVersioned (nodeId: string, { key, version }: FrameVersion, frame: string): string {
  return `${VERSIONED}${nodeId} ${version} ${keyed(key, frame)}`
}

/** A body that starts with a key: "<key length>:<key><frame>". */
function keyed (key: string, frame: string): string {
  return `${key.length}:${key}${frame}`
}

/** The key and the frame of a keyed body; null when the body is not one. */
function splitKeyed (body: string): { key: string, frame: string } | null {
  const colon = body.indexOf(':')
  const length = colon < 0 ? NaN : Number(body.slice(0, colon))
  if (!Number.isInteger(length) || length < 0 || colon + 1 + length > body.length) return null
  return { key: body.slice(colon + 1, colon + 1 + length), frame: body.slice(colon + 1 + length) }
}

function encode (kind: string, nodeId: string, seq: number | null, body: string): string {
  return `${kind}${nodeId} ${seq ?? '-'} ${body}`
}

interface Decoded { kind: string, nodeId: string, seq: number | null, body: string }

function decode (payload: string): Decoded | null {
  const first = payload.indexOf(' ')
  const second = first < 0 ? -1 : payload.indexOf(' ', first + 1)
  if (second < 0) return null
  const seqText = payload.slice(first + 1, second)
  return {
    kind: payload[0] ?? '',
    nodeId: payload.slice(1, first),
    seq: seqText === '-' ? null : Number(seqText),
    body: payload.slice(second + 1),
  }
}

/** A committed durable event on its way to the room's sockets: its frame built once, for every node. */
export interface RoomPush {
  roomId: string
  seq: number
  frame: string
  /** The acting socket, which gets an ack instead of this push. */
  except?: Connection | null
}

export interface HubOptions {
  broker: Broker
  log: FastifyBaseLogger
  nodeId?: string
  /** Reads a room's committed events in (after, upTo] as push frames: the sequencer's gap fill. */
  fetchGap: SequencerOptions['fetch']
  /**
   * Reads rooms' committed seqs (rooms.last_seq), for a node that starts listening to a room: what was
   * published before its subscription took effect reached no one here. Unset: nothing is read (one node
   * with the in-process bus delivers every publish through this hub, so it cannot miss one).
   */
  committedSeqs?: (roomId: string) => Promise<number | null>
  reorderWindowMs?: number
}

/**
 * This node of the cluster, as centrifuge's Node: it owns the broker channels (a room's or a user's
 * channel is subscribed while a local socket listens), the payload codec, and each room's sequencer,
 * and hands frames in order to this node's sockets (LocalSockets). Every frame goes one way: published
 * here -> broker (other nodes) and sequencer (this node) -> local sockets; received from the broker ->
 * sequencer -> local sockets. It knows nothing of rooms' rules: concerns tell it who listens to what.
 */
export class Hub {
  readonly nodeId: string
  /** Set by the metrics plugin; null when nothing observes. */
  observer: HubObserver | null = null
  private readonly sockets = new LocalSockets()
  private readonly sequencer: RoomSequencer
  private readonly broker: Broker
  private readonly log: FastifyBaseLogger
  // One handler for every room channel and one for every user channel (the channel names the room or
  // the user), not a closure per channel: an idle socket's user channel cost one, and its registration.
  private readonly roomHandler: BrokerHandler = (payload, channel) => this.onRoomPayload(channel.slice(ROOM_CHANNEL.length), payload)
  private readonly userHandler: BrokerHandler = (payload, channel) => this.onUserPayload(channel.slice(USER_CHANNEL.length), payload)
  /** Rooms this node is starting to listen to: until their subscription is in effect and caught up. */
  private readonly startingRooms = new Map<string, Promise<void>>()
  private readonly committedSeqs: HubOptions['committedSeqs']
  private readonly controlHandlers: UserControlHandler[] = []
  /** Latest version delivered per key of versioned frames, from this node or any other. */
  private readonly frameVersions = new LatestVersions()
  /** The rooms lists of frameVersions written to in this turn (deliverVersioned). */
  private deliveredThisTurn: string[][] = []
  private publishFailures = 0
  private lastPublishWarning = 0

  constructor (options: HubOptions) {
    this.broker = options.broker
    this.log = options.log
    this.nodeId = options.nodeId ?? randomUUID().slice(0, 8)
    this.committedSeqs = options.committedSeqs
    const sequencerOptions: SequencerOptions = {
      deliver: (roomId, frame, except) => this.sockets.deliverRoom(roomId, frame, except),
      fetch: options.fetchGap,
      log: options.log,
    }
    if (options.reorderWindowMs !== undefined) sequencerOptions.reorderWindowMs = options.reorderWindowMs
    this.sequencer = new RoomSequencer(sequencerOptions)
    // After a broker outage every room this node listens to may have missed pushes: read them back.
    this.broker.onReconnect(() => this.sequencer.catchUpAll())
  }

  onUserControl (handler: UserControlHandler): void {
    this.controlHandlers.push(handler)
  }

  get userCount (): number {
    return this.sockets.userCount
  }

  /** The user's sockets on this node; a user is addressed by its key (lib/user-key.ts: tenant and sub). */
  connectionsOf (userKey: string): ReadonlySet<Connection> {
    return this.sockets.connectionsOf(userKey)
  }

  roomConnections (roomId: string): ReadonlySet<Connection> {
    return this.sockets.roomConnections(roomId)
  }

  localRooms (): IterableIterator<string> {
    return this.sockets.localRooms()
  }

  connections (): IterableIterator<Connection> {
    return this.sockets.connections()
  }

  /** The last seq of a room this node has delivered to its sockets, or null when none yet. */
  deliveredUpTo (roomId: string): number | null {
    return this.sequencer.delivered(roomId)
  }

  /** Adds an authenticated socket; the user's channel is subscribed with their first local socket. */
  async register (connection: Connection): Promise<void> {
    const userKey = connection.userKey
    if (userKey === null) throw new Error('hub: register needs an authenticated connection')
    // Added before any await so that concurrent logins of one user count each other.
    if (!this.sockets.add(userKey, connection)) return
    await this.broker.subscribe(USER_CHANNEL + userKey, this.userHandler)
  }

  async unregister (connection: Connection): Promise<void> {
    const userKey = connection.userKey
    if (userKey === null || !this.sockets.has(userKey, connection)) return
    const leaving = [...connection.rooms].map((roomId) => this.unsubscribe(connection, roomId))
    if (this.sockets.remove(userKey, connection)) leaving.push(this.broker.unsubscribe(USER_CHANNEL + userKey, this.userHandler))
    await Promise.all(leaving)
  }

  /**
   * The socket listens to the room from now on: it joins the room's local set at once (synchronously,
   * so no frame this node delivers from here on misses it). The room's first local socket makes this
   * node listen to the room's channel, from `knownSeq` (the seq the caller read the room at: the
   * session's snapshot, a join's seq) on. Resolves when the subscription is in effect and whatever was
   * committed before it took effect has been delivered here; a socket that joins meanwhile waits for
   * that too, so that `deliveredUpTo` is then the room's seq as far as its client needs to know.
   */
  async subscribe (connection: Connection, roomId: string, knownSeq?: number): Promise<void> {
    if (!this.sockets.join(connection, roomId)) {
      await this.startingRooms.get(roomId)
      return
    }
    if (knownSeq !== undefined) this.sequencer.baseline(roomId, knownSeq)
    const starting = this.startListening(roomId)
    this.startingRooms.set(roomId, starting)
    try {
      await starting
    } finally {
      if (this.startingRooms.get(roomId) === starting) this.startingRooms.delete(roomId)
    }
  }

  private async startListening (roomId: string): Promise<void> {
    await this.broker.subscribe(ROOM_CHANNEL + roomId, this.roomHandler)
    // From here every publish of another node reaches this node. One made between the caller's read of
    // the room and now did not: the room's committed seq, read now, says whether there was one.
    if (this.committedSeqs === undefined || this.sequencer.delivered(roomId) === null) return
    let committed: number | null
    try {
      committed = await this.committedSeqs(roomId)
    } catch (error) {
      // The next push's gap fill reads what was missed; until then a client may not know of it.
      this.log.warn({ err: error, roomId }, 'hub: reading a room\'s seq after subscribing failed')
      return
    }
    if (committed !== null) await this.sequencer.catchUp(roomId, committed)
  }

  async unsubscribe (connection: Connection, roomId: string): Promise<void> {
    if (!this.sockets.leave(connection, roomId)) return
    this.sequencer.forget(roomId)
    await this.broker.unsubscribe(ROOM_CHANNEL + roomId, this.roomHandler)
  }

  /** Unsubscribes every local socket of a user (by key) from a room (a membership lost on any node). */
  async unsubscribeUser (userKey: string, roomId: string): Promise<void> {
    await Promise.all([...this.connectionsOf(userKey)].map((connection) => this.unsubscribe(connection, roomId)))
  }

  /**
   * Sends committed durable events to every socket of their rooms on every node: one broker command for
   * all of them (a group-commit batch), then this node's sockets through the sequencer. Never rejects:
   * the events are committed, so a broker that fails now (Redis down) costs other nodes a push, which
   * they read back from the database (gap fill, catch-up after their broker reconnects).
   */
  async publishRoomEvents (pushes: readonly RoomPush[]): Promise<void> {
    if (pushes.length === 0) return
    // Handed to the broker first, so that the frames leave for the other nodes before this node's own
    // socket writes (which go out when the tick ends) rather than after them.
    const messages = pushes.map(({ roomId, seq, frame }) => [ROOM_CHANNEL + roomId, encode(FRAME, this.nodeId, seq, frame)] as const)
    const published = this.broker.publishMany(messages)
    for (let index = 0; index < pushes.length; index += 1) this.observer?.published('room')
    for (const push of pushes) this.deliverLocally(push.roomId, push.seq, push.frame, push.except ?? null)
    await published.catch((error: unknown) => this.publishFailed(error))
  }

  /**
   * Sends one frame to every socket of a room on every node: locally at once (no broker round trip),
   * and through the broker for the other nodes, which skip their own echo.
   */
  async publishRoom (roomId: string, frame: string, options: { seq?: number, except?: Connection } = {}): Promise<void> {
    const seq = options.seq ?? null
    const payload = encode(FRAME, this.nodeId, seq, frame)
    const published = this.broker.publish(ROOM_CHANNEL + roomId, payload)
    this.observer?.published('room')
    try {
      this.deliverLocally(roomId, seq, frame, options.except ?? null)
    } catch (error) {
      published.catch(() => {})
      throw error
    }
    await published
  }

  /**
   * Sends ephemeral frames that supersede the older ones of their key (a user's presence, which the
   * presence plugin coalesces per window) to every socket of their rooms on every node, in one broker
   * command. Every node (this one included) drops a frame when it already delivered a newer one of its
   * key, and writes it once to a socket that listens to several of its rooms: each node remembers, for
   * the turn in which a push's copies arrive, which rooms it wrote it to. The payload is a plain room
   * frame with its version, so a node of the previous release reads it as before (once per room).
   */
  async publishVersioned (pushes: readonly VersionedPush[]): Promise<void> {
    const messages: Array<readonly [channel: string, payload: string]> = []
    for (const { roomIds, frame, version } of pushes) {
      // Out of date already: a newer frame of its key, from another node, was delivered here (and so was
      // sent to every node).
      if (this.frameVersions.admit(version.key, version.version) === null) continue
      const payload = encodeVersioned(this.nodeId, version, frame)
      for (const roomId of roomIds) {
        messages.push([ROOM_CHANNEL + roomId, payload])
        this.observer?.published('room')
        this.deliverVersioned(roomId, version, frame)
      }
    }
    await this.broker.publishMany(messages)
  }

  /**
   * Sends one frame to every socket of a user on every node but `except`. The user is its key (tenant
   * and sub): the same sub in another tenant is another user with another channel (protocol 11.1).
   */
  async publishUser (userKey: string, frame: string, except?: Connection): Promise<void> {
    await this.publishUsers([userKey], frame, except)
  }

  /** `publishUser` of one frame to several users (a room's moderators): one broker command for all of them. */
  async publishUsers (userKeys: readonly string[], frame: string, except?: Connection): Promise<void> {
    if (userKeys.length === 0) return
    const payload = encode(FRAME, this.nodeId, null, frame)
    for (const userKey of userKeys) {
      this.sockets.deliverUser(userKey, frame, except ?? null)
      this.observer?.published('user')
    }
    await this.broker.publishMany(userKeys.map((userKey) => [USER_CHANNEL + userKey, payload] as const))
  }

  /** Runs a control on this node and on every other node that has sockets of the user (by key). */
  async controlUser (userKey: string, control: UserControl): Promise<void> {
    this.runControl(userKey, control)
    this.observer?.published('control')
    await this.broker.publish(USER_CHANNEL + userKey, encode(CONTROL, this.nodeId, null, JSON.stringify(control)))
  }

  close (): void {
    this.sequencer.close()
  }

  /** This node's sockets of a room, through the sequencer (durable frames in seq order). */
  private deliverLocally (roomId: string, seq: number | null, frame: string, except: Connection | null): void {
    // Timed only where this node has sockets in the room: an empty fan-out says nothing about delivery.
    const timed = this.observer !== null && this.sockets.hasRoom(roomId)
    const started = timed ? performance.now() : 0
    this.sequencer.accept(roomId, seq, frame, except)
    if (timed) this.observer?.roomDelivered(performance.now() - started)
  }

  /** One warning per outage second, not one per event. */
  private publishFailed (error: unknown): void {
    this.publishFailures += 1
    const now = Date.now()
    if (now - this.lastPublishWarning < 1000) return
    this.lastPublishWarning = now
    this.log.warn({ err: error, failures: this.publishFailures }, 'hub: publishing committed events to the broker failed; other nodes will read them from the database')
    this.publishFailures = 0
  }

  private onRoomPayload (roomId: string, payload: string): void {
    const message = decode(payload)
    if (message === null || message.nodeId === this.nodeId) return
    if (message.kind === FRAME) {
      this.sequencer.accept(roomId, message.seq, message.body, null)
      return
    }
    if (message.kind !== VERSIONED || message.seq === null) return
    const versioned = splitKeyed(message.body)
    if (versioned !== null) this.deliverVersioned(roomId, { key: versioned.key, version: message.seq }, versioned.frame)
  }

  /** An ephemeral frame of a key to a room's sockets that did not have this version of it from another room. */
  private deliverVersioned (roomId: string, version: FrameVersion, frame: string): void {
    const deliveredTo = this.frameVersions.admit(version.key, version.version)
    if (deliveredTo === null || deliveredTo.includes(roomId)) return
    this.sockets.deliverRoomOnce(roomId, frame, deliveredTo)
    deliveredTo.push(roomId)
    // Kept for this turn only: one push's copies arrive together (one broker command, read in one go),
    // and no socket joins a room between them. A socket that joined one of the rooms later may not have
    // had the frame: for it, a later copy must not be skipped (a second copy is harmless, a lost one not).
    if (deliveredTo.length === 1) this.forgetDeliveredAfterTurn(deliveredTo)
  }

  private forgetDeliveredAfterTurn (deliveredTo: string[]): void {
    this.deliveredThisTurn.push(deliveredTo)
    if (this.deliveredThisTurn.length > 1) return
    setImmediate(() => {
      for (const rooms of this.deliveredThisTurn) rooms.length = 0
      this.deliveredThisTurn = []
    })
  }

  private onUserPayload (userKey: string, payload: string): void {
    const message = decode(payload)
    if (message === null || message.nodeId === this.nodeId) return
    if (message.kind === FRAME) {
      this.sockets.deliverUser(userKey, message.body, null)
      return
    }
    if (message.kind !== CONTROL) return
    let control: UserControl
    try {
      control = JSON.parse(message.body) as UserControl
    } catch (error) {
      this.log.warn({ err: error }, 'hub: unreadable control payload')
      return
    }
    this.runControl(userKey, control)
  }

  private runControl (userKey: string, control: UserControl): void {
    for (const handler of this.controlHandlers) {
      try {
        handler(userKey, control)
      } catch (error) {
        this.log.error({ err: error, control: control.type }, 'hub: control handler failed')
      }
    }
  }
}


declare module 'fastify' {
  interface FastifyInstance {
    chatHub: Hub
  }
}

/** How many events one gap fill reads at most; a longer gap is filled in rounds. */
const GAP_FILL_LIMIT = 1000

export const hubPlugin = fp(async function hubPlugin (app: FastifyInstance) {
  const db = app.chatDb
  const timeoutMs = app.chatConfig.databaseTimeoutMs
  // The rooms a turn's sessions start listening to (a reconnect storm's) are read in one statement.
  const seqs = new MicroBatch<string, number | null>(async (roomIds) => {
    const heads = await roomHeadsOf(db, roomIds)
    return roomIds.map((roomId) => heads.get(roomId)?.lastSeq ?? null)
  }, { maxBatch: 500, inFlight: { max: 1, timeoutMs, what: 'reading rooms\' seqs' } })
  const hub = new Hub({
    broker: app.chatBroker,
    log: app.log,
    nodeId: app.chatConfig.nodeId,
    // Bounded: a fill that never settles would leave the room's gap open for good (the sequencer retries).
    fetchGap: async (roomId, after, upTo) => (await withDeadline(timeoutMs, 'a gap fill', () => eventsAfter(db, roomId, after, GAP_FILL_LIMIT, upTo)))
      .map((event) => ({ seq: event.seq, frame: frameOf(event) })),
    ...(app.chatBroker.kind === 'memory' ? {} : { committedSeqs: (roomId: string) => seqs.load(roomId) }),
  })
  app.decorate('chatHub', hub)
  app.addHook('onClose', async () => hub.close())
}, { name: 'chat-hub', fastify: '5.x', dependencies: ['chat-config', 'chat-database', 'chat-broker'] })
