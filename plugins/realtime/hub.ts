import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Broker, BrokerHandler } from '../../lib/broker/types.js'
import type { Connection, ConnectionObserver } from './connection.js'
import { LatestVersions } from '../../lib/latest-versions.js'

/** A cross-node instruction addressed to a user's sockets (subscribe to a room, drop one, ...). */
export interface UserControl {
  type: string
  [key: string]: unknown
}

export type UserControlHandler = (userId: string, control: UserControl) => void
/** Gets a room's frames as they arrive from the broker or from this node; may reorder before delivering. */
export type RoomFrameSink = (roomId: string, seq: number | null, frame: string, except: Connection | null) => void

/**
 * Told about this node's sockets and broadcasts (metrics). Called on the hot path: implementations must
 * be cheap and must not throw. The upgrade route hands it to each Connection as its ConnectionObserver.
 */
export interface HubObserver extends ConnectionObserver {
  socketOpened (): void
  socketClosed (code: number): void
  /** One broker publish of a room frame, a user frame or a user control. */
  published (kind: 'room' | 'user' | 'control'): void
  /** A room frame's local delivery: milliseconds from publishRoom (right after its commit) to the last local write. */
  roomDelivered (ms: number): void
}

// Broker payloads: "<kind><originNodeId> <seq or -> <body>". The header lets a node skip its own echo
// and order a room's frames without parsing the JSON it is about to forward untouched.
const FRAME = 'f'
const CONTROL = 'c'
// "v<originNodeId> <version> <key length>:<key><frame>": an ephemeral room frame that supersedes the
// older frames of its key (see publishRoom's `version`).
const VERSIONED = 'v'

/** An ephemeral frame's place among the frames it supersedes: the latest version of a key wins. */
export interface FrameVersion {
  key: string
  version: number
}

function encodeVersioned (nodeId: string, { key, version }: FrameVersion, frame: string): string {
  return `${VERSIONED}${nodeId} ${version} ${key.length}:${key}${frame}`
}

/** The key and the frame of a versioned payload's body; null when the body is not one. */
function splitVersioned (body: string): { key: string, frame: string } | null {
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

/**
 * This node's sockets by user and by room; the only place that writes to sockets. It knows nothing of
 * rooms' rules: concerns tell it who listens to what. A room channel is subscribed on the broker only
 * while at least one local socket listens to the room.
 */
export class Hub {
  readonly nodeId: string
  /** Set by the metrics plugin; null when nothing observes. */
  observer: HubObserver | null = null
  private readonly byUser = new Map<string, Set<Connection>>()
  private readonly byRoom = new Map<string, Set<Connection>>()
  private readonly roomHandlers = new Map<string, BrokerHandler>()
  private readonly userHandlers = new Map<string, BrokerHandler>()
  private readonly controlHandlers: UserControlHandler[] = []
  private readonly roomIdleHandlers: Array<(roomId: string) => void> = []
  private roomSink: RoomFrameSink = (roomId, _seq, frame, except) => this.deliverRoomLocal(roomId, frame, except)
  /** Latest version delivered per key of versioned frames, from this node or any other. */
  private readonly frameVersions = new LatestVersions()

  constructor (private readonly broker: Broker, private readonly log: FastifyBaseLogger, nodeId?: string) {
    this.nodeId = nodeId ?? randomUUID().slice(0, 8)
  }

  /** Lets the messaging layer put its reorder buffer between arrival and delivery. */
  setRoomSink (sink: RoomFrameSink): void {
    this.roomSink = sink
  }

  /** Called when the last local socket of a room leaves it (per-room state can be dropped). */
  onRoomIdle (handler: (roomId: string) => void): void {
    this.roomIdleHandlers.push(handler)
  }

  onUserControl (handler: UserControlHandler): void {
    this.controlHandlers.push(handler)
  }

  get userCount (): number {
    return this.byUser.size
  }

  connectionsOf (userId: string): ReadonlySet<Connection> {
    return this.byUser.get(userId) ?? EMPTY
  }

  roomConnections (roomId: string): ReadonlySet<Connection> {
    return this.byRoom.get(roomId) ?? EMPTY
  }

  localRooms (): IterableIterator<string> {
    return this.byRoom.keys()
  }

  * connections (): IterableIterator<Connection> {
    for (const set of this.byUser.values()) yield * set
  }

  /** Adds an authenticated socket; the user's channel is subscribed with their first local socket. */
  async register (connection: Connection): Promise<void> {
    const userId = connection.userId
    if (userId === null) throw new Error('hub: register needs an authenticated connection')
    // The set is updated before any await so that concurrent logins of one user count each other.
    let set = this.byUser.get(userId)
    if (set !== undefined) {
      set.add(connection)
      return
    }
    set = new Set([connection])
    this.byUser.set(userId, set)
    const handler: BrokerHandler = (payload) => this.onUserPayload(userId, payload)
    this.userHandlers.set(userId, handler)
    await this.broker.subscribe(`user:${userId}`, handler)
  }

  async unregister (connection: Connection): Promise<void> {
    const userId = connection.userId
    if (userId === null) return
    const set = this.byUser.get(userId)
    if (set === undefined || !set.delete(connection)) return
    const leaving = [...connection.rooms].map((roomId) => this.unsubscribe(connection, roomId))
    if (set.size === 0) {
      this.byUser.delete(userId)
      const handler = this.userHandlers.get(userId)
      this.userHandlers.delete(userId)
      if (handler !== undefined) leaving.push(this.broker.unsubscribe(`user:${userId}`, handler))
    }
    await Promise.all(leaving)
  }

  async subscribe (connection: Connection, roomId: string): Promise<void> {
    if (connection.rooms.has(roomId)) return
    connection.rooms.add(roomId)
    let set = this.byRoom.get(roomId)
    if (set === undefined) {
      set = new Set()
      this.byRoom.set(roomId, set)
      const handler: BrokerHandler = (payload) => this.onRoomPayload(roomId, payload)
      this.roomHandlers.set(roomId, handler)
      set.add(connection)
      await this.broker.subscribe(`room:${roomId}`, handler)
      return
    }
    set.add(connection)
  }

  async unsubscribe (connection: Connection, roomId: string): Promise<void> {
    if (!connection.rooms.delete(roomId)) return
    const set = this.byRoom.get(roomId)
    if (set === undefined) return
    set.delete(connection)
    if (set.size > 0) return
    this.byRoom.delete(roomId)
    for (const idle of this.roomIdleHandlers) idle(roomId)
    const handler = this.roomHandlers.get(roomId)
    this.roomHandlers.delete(roomId)
    if (handler !== undefined) await this.broker.unsubscribe(`room:${roomId}`, handler)
  }

  /** Subscribes every local socket of a user to a room (a membership gained on any node). */
  async subscribeUser (userId: string, roomId: string): Promise<void> {
    await Promise.all([...this.connectionsOf(userId)].map((connection) => this.subscribe(connection, roomId)))
  }

  async unsubscribeUser (userId: string, roomId: string): Promise<void> {
    await Promise.all([...this.connectionsOf(userId)].map((connection) => this.unsubscribe(connection, roomId)))
  }

  /**
   * Sends one serialized frame to every socket of a room on every node: locally at once (no broker
   * round trip), and through the broker for the other nodes, which skip their own echo. A frame with a
   * `version` is ephemeral and supersedes the older ones of its key: every node (this one included)
   * drops it if it already delivered a newer one of that key.
   */
  async publishRoom (roomId: string, frame: string, options: { seq?: number, except?: Connection, version?: FrameVersion } = {}): Promise<void> {
    const seq = options.seq ?? null
    const version = options.version
    // Out of date already: a newer frame of its key, from another node, was delivered here (and so was
    // sent to every node).
    if (version !== undefined && !this.frameVersions.admit(version.key, version.version)) return
    // Handed to the broker first, so that it leaves for the other nodes before this node's own socket
    // writes (which go out when the tick ends) rather than after them.
    const payload = version === undefined ? encode(FRAME, this.nodeId, seq, frame) : encodeVersioned(this.nodeId, version, frame)
    const published = this.broker.publish(`room:${roomId}`, payload)
    this.observer?.published('room')
    try {
      this.deliverRoomFrame(roomId, seq, frame, options.except ?? null)
    } catch (error) {
      published.catch(() => {})
      throw error
    }
    await published
  }

  /** The broker half of publishRoom for many frames at once (a group-commit batch): one broker command. */
  async publishRoomFrames (frames: ReadonlyArray<{ roomId: string, seq: number, frame: string }>): Promise<void> {
    const messages = frames.map(({ roomId, seq, frame }) => [`room:${roomId}`, encode(FRAME, this.nodeId, seq, frame)] as const)
    for (let index = 0; index < frames.length; index += 1) this.observer?.published('room')
    await this.broker.publishMany(messages)
  }

  /** The local half of publishRoom: this node's sockets of the room, through the reorder step. */
  deliverRoomFrame (roomId: string, seq: number | null, frame: string, except: Connection | null): void {
    // Timed only where this node has sockets in the room: an empty fan-out says nothing about delivery.
    const timed = this.observer !== null && this.byRoom.has(roomId)
    const started = timed ? performance.now() : 0
    this.roomSink(roomId, seq, frame, except)
    if (timed) this.observer?.roomDelivered(performance.now() - started)
  }

  async publishUser (userId: string, frame: string, except?: Connection): Promise<void> {
    this.deliverUserLocal(userId, frame, except ?? null)
    this.observer?.published('user')
    await this.broker.publish(`user:${userId}`, encode(FRAME, this.nodeId, null, frame))
  }

  /** Runs a control on this node and on every other node that has sockets of the user. */
  async controlUser (userId: string, control: UserControl): Promise<void> {
    this.runControl(userId, control)
    this.observer?.published('control')
    await this.broker.publish(`user:${userId}`, encode(CONTROL, this.nodeId, null, JSON.stringify(control)))
  }

  deliverRoomLocal (roomId: string, frame: string, except: Connection | null): void {
    const set = this.byRoom.get(roomId)
    if (set === undefined) return
    // Encoded to UTF-8 once for the whole room, not once per socket.
    const encoded = set.size > 1 ? Buffer.from(frame) : undefined
    for (const connection of set) {
      if (connection !== except) connection.send(frame, encoded)
    }
  }

  deliverUserLocal (userId: string, frame: string, except: Connection | null): void {
    const set = this.byUser.get(userId)
    if (set === undefined) return
    for (const connection of set) {
      if (connection !== except) connection.send(frame)
    }
  }

  private onRoomPayload (roomId: string, payload: string): void {
    const message = decode(payload)
    if (message === null || message.nodeId === this.nodeId) return
    if (message.kind === FRAME) {
      this.roomSink(roomId, message.seq, message.body, null)
      return
    }
    if (message.kind !== VERSIONED || message.seq === null) return
    const versioned = splitVersioned(message.body)
    if (versioned === null || !this.frameVersions.admit(versioned.key, message.seq)) return
    this.roomSink(roomId, null, versioned.frame, null)
  }

  private onUserPayload (userId: string, payload: string): void {
    const message = decode(payload)
    if (message === null || message.nodeId === this.nodeId) return
    if (message.kind === FRAME) {
      this.deliverUserLocal(userId, message.body, null)
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
    this.runControl(userId, control)
  }

  private runControl (userId: string, control: UserControl): void {
    for (const handler of this.controlHandlers) {
      try {
        handler(userId, control)
      } catch (error) {
        this.log.error({ err: error, control: control.type }, 'hub: control handler failed')
      }
    }
  }
}

const EMPTY: ReadonlySet<Connection> = new Set()

declare module 'fastify' {
  interface FastifyInstance {
    chatHub: Hub
  }
}

export const hubPlugin = fp(async function hubPlugin (app: FastifyInstance) {
  app.decorate('chatHub', new Hub(app.chatBroker, app.log, app.chatConfig.nodeId))
}, { name: 'chat-hub', fastify: '5.x', dependencies: ['chat-config', 'chat-broker'] })
