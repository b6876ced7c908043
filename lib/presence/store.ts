/** What a user chose with presence.set; `null` is plain online. `invisible` is `presence.set offline`. */
export type ChosenStatus = 'away' | 'invisible'

export type PresenceStatus = 'online' | 'away' | 'offline'

/** A user as the store knows them: present (a socket open somewhere, or inside the grace) and their choice. */
export interface StoredPresence {
  present: boolean
  chosen: ChosenStatus | null
}

/**
 * Every change of a user's presence takes a version from the store, in the same atomic step as the
 * change: larger is later. Pushes of one user made on different nodes can reach a node in either order;
 * the version lets it drop the one that is out of date.
 */
export type PresenceVersion = number

export interface AttachResult {
  /** True when the user already had a socket open on some node or was inside the grace period. */
  wasPresent: boolean
  chosen: ChosenStatus | null
  version: PresenceVersion
}

export interface SetChosenResult {
  present: boolean
  previous: ChosenStatus | null
  /** The choice now stored (away is not stored for a user who is not present). */
  chosen: ChosenStatus | null
  version: PresenceVersion
}

/** A user whose grace ran out without a reconnect: offline now. `chosen` is what they had chosen. */
export interface ExpiredUser {
  userId: string
  chosen: ChosenStatus | null
  /** When the grace ended (ms since the epoch): the user's last seen. */
  at: number
  version: PresenceVersion
}

/** Users who became present again when a node re-asserted its sockets (after being taken for dead). */
export interface RestoredUser {
  userId: string
  chosen: ChosenStatus | null
  version: PresenceVersion
}

/**
 * The shared state of presence: per user and node the number of open sockets, the chosen status and
 * the grace deadlines. One implementation in memory (one node), one in Redis (many nodes, with liveness
 * keys so that a dead node's sockets stop counting). Every method is atomic on its own. A "userId" here is
 * the user key of lib/user-key.ts (tenant and sub): the store never looks inside it.
 */
export interface PresenceStore {
  readonly kind: 'memory' | 'redis'
  /** One more socket of the user on this node; ends a running grace period. */
  attach (userId: string): Promise<AttachResult>
  /** One socket fewer; when it was the user's last one anywhere, the grace runs until `graceDeadline`. */
  detach (userId: string, graceDeadline: number): Promise<void>
  /** Stores a choice (null: online). */
  setChosen (userId: string, chosen: ChosenStatus | null): Promise<SetChosenResult>
  read (userIds: string[]): Promise<Map<string, StoredPresence>>
  /** Takes the users whose grace ended by `now` and still have no socket: they are offline now. Away is forgotten. */
  expireDue (now: number, limit: number): Promise<ExpiredUser[]>
  /**
   * Refreshes this node's liveness and removes the entries of nodes that stopped refreshing (their users
   * enter the grace with `graceDeadline`). When this node itself had been taken for dead (a long pause,
   * a Redis restart), its sockets are written back from `localCounts` and the users that became present
   * again are returned.
   */
  heartbeat (localCounts: ReadonlyMap<string, number>, graceDeadline: number): Promise<RestoredUser[]>
  /** Replaces this node's entries with `localCounts` (startup: clears a previous run under the same node id). */
  resync (localCounts: ReadonlyMap<string, number>, graceDeadline: number): Promise<RestoredUser[]>
  /** Removes this node's entries (clean shutdown): its users enter the grace with `graceDeadline`. */
  leave (graceDeadline: number): Promise<void>
}

export function shownStatus (present: boolean, chosen: ChosenStatus | null): PresenceStatus {
  if (!present || chosen === 'invisible') return 'offline'
  return chosen === 'away' ? 'away' : 'online'
}
