import type { Connection } from './connection.js'

const EMPTY: ReadonlySet<Connection> = new Set()

/**
 * This node's authenticated sockets, by user (its key: tenant and sub, lib/user-key.ts) and by room, and the only code that writes frames to them.
 * It knows nothing of the broker or of rooms' rules: the hub tells it who listens to what, and learns
 * from it when a user or a room gains its first or loses its last local socket.
 */
/** Adds to the key's set; true when the key had no set before. */
function addTo (index: Map<string, Set<Connection>>, key: string, connection: Connection): boolean {
  const set = index.get(key)
  if (set !== undefined) {
    set.add(connection)
    return false
  }
  index.set(key, new Set([connection]))
  return true
}

/** Removes from the key's set, dropping an emptied set; true when the connection was the key's last. */
function removeFrom (index: Map<string, Set<Connection>>, key: string, connection: Connection): boolean {
  const set = index.get(key)
  if (set === undefined || !set.delete(connection)) return false
  if (set.size > 0) return false
  index.delete(key)
  return true
}

export class LocalSockets {
  private readonly byUser = new Map<string, Set<Connection>>()
  private readonly byRoom = new Map<string, Set<Connection>>()

  get userCount (): number {
    return this.byUser.size
  }

  connectionsOf (userKey: string): ReadonlySet<Connection> {
    return this.byUser.get(userKey) ?? EMPTY
  }

  roomConnections (roomId: string): ReadonlySet<Connection> {
    return this.byRoom.get(roomId) ?? EMPTY
  }

  hasRoom (roomId: string): boolean {
    return this.byRoom.has(roomId)
  }

  localRooms (): IterableIterator<string> {
    return this.byRoom.keys()
  }

  * connections (): IterableIterator<Connection> {
    for (const set of this.byUser.values()) yield * set
  }

  /** Adds a socket of a user; true when it is the user's first on this node. */
  add (userKey: string, connection: Connection): boolean {
    return addTo(this.byUser, userKey, connection)
  }

  /** Removes a socket of a user; true when it was the user's last on this node. */
  remove (userKey: string, connection: Connection): boolean {
    return removeFrom(this.byUser, userKey, connection)
  }

  /** Is a socket of this node's registry (added and not removed since)? */
  has (userKey: string, connection: Connection): boolean {
    return this.byUser.get(userKey)?.has(connection) === true
  }

  /** The socket listens to the room; true when the room had no local socket before. */
  join (connection: Connection, roomId: string): boolean {
    if (connection.rooms.has(roomId)) return false
    connection.rooms.add(roomId)
    return addTo(this.byRoom, roomId, connection)
  }

  /** The socket stops listening to the room; true when that was the room's last local socket. */
  leave (connection: Connection, roomId: string): boolean {
    if (!connection.rooms.delete(roomId)) return false
    return removeFrom(this.byRoom, roomId, connection)
  }

  /** Writes one frame to every local socket of a room but `except`. */
  deliverRoom (roomId: string, frame: string, except: Connection | null): void {
    const set = this.byRoom.get(roomId)
    if (set === undefined) return
    // Encoded to UTF-8 once for the whole room, not once per socket.
    const encoded = set.size > 1 ? Buffer.from(frame) : undefined
    for (const connection of set) {
      if (connection !== except) connection.send(frame, encoded)
    }
  }

  /** Writes one frame to every local socket of a room that listens to none of `deliveredTo` (which had it already). */
  deliverRoomOnce (roomId: string, frame: string, deliveredTo: readonly string[]): void {
    if (deliveredTo.length === 0) {
      this.deliverRoom(roomId, frame, null)
      return
    }
    const set = this.byRoom.get(roomId)
    if (set === undefined) return
    let encoded: Buffer | undefined
    for (const connection of set) {
      if (deliveredTo.some((room) => connection.rooms.has(room))) continue
      encoded ??= Buffer.from(frame)
      connection.send(frame, encoded)
    }
  }

  /** Writes one frame to every local socket of a user but `except`. */
  deliverUser (userKey: string, frame: string, except: Connection | null): void {
    const set = this.byUser.get(userKey)
    if (set === undefined) return
    for (const connection of set) {
      if (connection !== except) connection.send(frame)
    }
  }
}
