import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ChatUser, Connection } from '../realtime/connection.js'
import { holdsGrant } from '../auth/permission-claims.js'
import { shownStatus, type ChosenStatus, type PresenceStatus, type PresenceVersion } from '../../lib/presence/store.js'
import type { PresenceInfo } from './presence-store.js'
import { FlushWindow } from './flush-window.js'
import type { VersionedPush } from '../realtime/hub.js'
import { userKeyOf, userOfKey, type TenantUser } from '../../lib/user-key.js'

export type { PresenceStatus } from '../../lib/presence/store.js'
export type { PresenceInfo } from './presence-store.js'

export interface PresenceService {
  /** What others see of each user of `tenant` (invisible users read as offline). Every id asked for is in the map. */
  statusOf (tenant: string, userIds: string[]): Promise<Map<string, PresenceInfo>>
  /**
   * What `viewer` may see of each user of its tenant (protocol 11.1): the real status of users who share a
   * room with the viewer (and the viewer's own), `offline` with `lastSeen: null` for everyone else, unless
   * the viewer holds the `chats:presence` grant. Every id asked for is in the map.
   */
  visibleTo (viewer: ChatUser, userIds: string[]): Promise<Map<string, PresenceInfo>>
  /** presence.set: online, away, or offline (invisible: shown offline until changed, across reconnects). */
  set (user: TenantUser, status: PresenceStatus): Promise<PresenceInfo>
  /** 'memory' on one node, 'redis' across nodes. */
  readonly storeKind: 'memory' | 'redis'
}

declare module 'fastify' {
  interface FastifyInstance {
    chatPresence: PresenceService
  }
}

/** Changes within a window go out together, one push per user with their latest status (flush-window.ts). */
const FLUSH_WINDOW_MS = 25
const FLUSH_WINDOW_MAX_MS = 1000
/** Changes per second from which windows grow: 5 users in a 25 ms window. */
const FLUSH_BUSY_PER_SECOND = 200
/** Users taken per store call when many graces end at once. */
const EXPIRE_BATCH = 500
/** Parallel database writes of last seen when many users go offline at once. */
const TOUCH_CONCURRENCY = 16

function chosenFor (status: PresenceStatus): ChosenStatus | null {
  if (status === 'away') return 'away'
  return status === 'offline' ? 'invisible' : null
}

async function inBatches<T> (items: T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let index = 0; index < items.length; index += size) {
    await Promise.all(items.slice(index, index + size).map(work))
  }
}

/**
 * Presence (protocol section 7). The shared state (sockets per user and node, chosen status, grace
 * deadlines) lives in the PresenceStore of presence-store.ts, which also answers statusOf. This plugin
 * writes it as sockets come and go, and keeps only this node's own socket counts, to write them back if
 * the node was ever taken for dead. Status changes are pushed as `presence` to the user's rooms (from the
 * rooms service), coalesced per short window.
 */
export const presencePlugin = fp(async function presencePlugin (app: FastifyInstance) {
  const { chatConfig: config, chatHub: hub, chatGateway: gateway, chatUsers: users, chatRooms: rooms } = app
  const { store, statusOf } = app.chatPresenceStore
  const log = app.log.child({ concern: 'presence' })

  // Every map and store entry is by user key (tenant and sub, lib/user-key.ts): the same sub in two
  // tenants is two users with two presences (protocol 11.1).
  /** Sockets of each user attached on this node. */
  const localCounts = new Map<string, number>()
  const attached = new WeakSet<Connection>()
  /** Users whose status changed and is not pushed yet: the latest change (by version) wins. */
  const pending = new Map<string, { info: PresenceInfo, version: PresenceVersion }>()
  let flushTimer: NodeJS.Timeout | null = null
  const flushWindow = new FlushWindow(FLUSH_WINDOW_MS, FLUSH_WINDOW_MAX_MS, FLUSH_BUSY_PER_SECOND)
  let flushing: Promise<void> = Promise.resolve()
  let closing = false
  /** Set when a store write failed: the next heartbeat writes this node's counts back whole. */
  let needsResync = false

  const graceDeadline = (): number => Date.now() + config.presenceGraceMs

  function queuePush (userKey: string, info: PresenceInfo, version: PresenceVersion): void {
    // Store calls answer in any order: a change older than the one already queued is out of date.
    const queued = pending.get(userKey)
    if (queued !== undefined && queued.version > version) return
    pending.set(userKey, { info, version })
    if (flushTimer === null && !closing) {
      flushTimer = setTimeout(() => {
        flushTimer = null
        flushWindow.flushed(pending.size)
        flushing = flushing.then(flush).catch((error: unknown) => { log.warn({ err: error }, 'presence: flush failed') })
      }, flushWindow.ms)
    }
  }

  async function flush (): Promise<void> {
    if (pending.size === 0) return
    const batch = [...pending]
    pending.clear()
    // One member count per room per batch, however many of its members changed.
    const sizes = new Map<string, Promise<number>>()
    const sizeOf = (roomId: string): Promise<number> => {
      let size = sizes.get(roomId)
      if (size === undefined) {
        size = rooms.memberIds(roomId).then((ids) => ids.length)
        sizes.set(roomId, size)
      }
      return size
    }
    const pushes: VersionedPush[] = []
    await inBatches(batch, 64, async ([userKey, { info, version }]) => {
      const user = userOfKey(userKey)
      try {
        const frame = JSON.stringify({ event: 'presence', data: { userId: user.id, status: info.status, lastSeen: info.lastSeen } })
        // The user's rooms are of the user's tenant only: nothing of it reaches another tenant.
        const roomIds = await rooms.roomIdsOf(user)
        const sizes = await Promise.all(roomIds.map(sizeOf))
        // Another node may push a later change of this user first: every node keeps the latest version.
        pushes.push({ roomIds: roomIds.filter((_, index) => (sizes[index] as number) <= config.presenceFanoutMaxMembers), frame, version: { key: `presence:${userKey}`, version } })
      } catch (error) {
        log.warn({ err: error, userId: user.id, tenant: user.tenant }, 'presence push failed')
      }
    })
    // The window's pushes in one broker command; a socket that shares several rooms with a user gets
    // the user's push once.
    try {
      await hub.publishVersioned(pushes)
    } catch (error) {
      log.warn({ err: error, users: pushes.length }, 'presence push failed')
    }
  }

  async function stampOffline (userKey: string, at: number, version: PresenceVersion): Promise<void> {
    const lastSeen = new Date(at)
    queuePush(userKey, { status: 'offline', lastSeen: lastSeen.toISOString() }, version)
    const user = userOfKey(userKey)
    try {
      await users.touchLastSeen(user, lastSeen)
    } catch (error) {
      log.warn({ err: error, userId: user.id, tenant: user.tenant }, 'presence: stamping last seen failed')
    }
  }

  app.chatSessions.contribute(async (connection, user) => {
    // A socket that closed while its session started has already ended; counting it would be a ghost.
    if (!connection.isOpen || closing) return {}
    attached.add(connection)
    const userKey = userKeyOf(user)
    localCounts.set(userKey, (localCounts.get(userKey) ?? 0) + 1)
    try {
      const { wasPresent, chosen, version } = await store.attach(userKey)
      const status = shownStatus(true, chosen)
      if (!wasPresent && status !== 'offline') queuePush(userKey, { status, lastSeen: null }, version)
    } catch (error) {
      needsResync = true
      log.warn({ err: error, userId: user.id }, 'presence: attach failed, written back at the next heartbeat')
    }
    return {}
  })

  app.chatSessions.onEnd(async (connection, user) => {
    if (!attached.has(connection)) return
    attached.delete(connection)
    const userKey = userKeyOf(user)
    const left = (localCounts.get(userKey) ?? 1) - 1
    if (left > 0) localCounts.set(userKey, left)
    else localCounts.delete(userKey)
    if (closing) return
    try {
      await store.detach(userKey, graceDeadline())
    } catch (error) {
      needsResync = true
      log.warn({ err: error, userId: user.id }, 'presence: detach failed, written back at the next heartbeat')
    }
  })

  const service: PresenceService = {
    storeKind: store.kind,

    statusOf,

    async visibleTo (viewer, userIds) {
      const unique = [...new Set(userIds)]
      let shown = unique
      if (!holdsGrant(viewer, 'chats:presence')) {
        const sharing = await rooms.sharingARoom(viewer, unique.filter((id) => id !== viewer.id))
        shown = unique.filter((id) => id === viewer.id || sharing.has(id))
      }
      const statuses = await statusOf(viewer.tenant, shown)
      return new Map(unique.map((id) => [id, statuses.get(id) ?? { status: 'offline', lastSeen: null }]))
    },

    async set (user, status) {
      const userKey = userKeyOf(user)
      const { present, previous, chosen, version } = await store.setChosen(userKey, chosenFor(status))
      const before = shownStatus(present, previous)
      const after = shownStatus(present, chosen)
      if (after === 'offline') {
        if (before === 'offline') return (await service.statusOf(user.tenant, [user.id])).get(user.id) as PresenceInfo
        // Going invisible looks like leaving: others see offline, last seen now.
        const at = Date.now()
        await stampOffline(userKey, at, version)
        return { status: 'offline', lastSeen: new Date(at).toISOString() }
      }
      if (before !== after) queuePush(userKey, { status: after, lastSeen: null }, version)
      return { status: after, lastSeen: null }
    },
  }
  app.decorate('chatPresence', service)

  // One sweep: graces that ended become offline (on any node; the store hands each user to one node).
  let sweeping = false
  async function sweep (): Promise<void> {
    if (sweeping || closing) return
    sweeping = true
    try {
      for (;;) {
        const expired = await store.expireDue(Date.now(), EXPIRE_BATCH)
        const visible = expired.filter((user) => user.chosen !== 'invisible')
        await inBatches(visible, TOUCH_CONCURRENCY, (user) => stampOffline(user.userId, Math.min(user.at, Date.now()), user.version))
        if (expired.length < EXPIRE_BATCH) break
      }
    } catch (error) {
      log.warn({ err: error }, 'presence: sweep failed')
    } finally {
      sweeping = false
    }
  }

  let beating = false
  async function heartbeat (): Promise<void> {
    if (beating || closing) return
    beating = true
    try {
      // The live counts, not a copy: a store reads them only to write them back (then the current counts
      // are the truth), and a copy of every user's count each beat was most of an idle node's heartbeat.
      const restored = needsResync
        ? await store.resync(localCounts, graceDeadline())
        : await store.heartbeat(localCounts, graceDeadline())
      needsResync = false
      for (const { userId, chosen, version } of restored) {
        const status = shownStatus(true, chosen)
        if (status !== 'offline') queuePush(userId, { status, lastSeen: null }, version)
      }
    } catch (error) {
      log.warn({ err: error }, 'presence: heartbeat failed')
    } finally {
      beating = false
    }
  }

  // A previous process with the same node id may have left entries: start from this node's truth (none).
  await store.resync(new Map(), graceDeadline())
  const sweepTimer = setInterval(() => { void sweep() }, config.presenceSweepMs)
  sweepTimer.unref()
  let heartbeatTimer: NodeJS.Timeout | null = null
  if (store.kind === 'redis') {
    heartbeatTimer = setInterval(() => { void heartbeat() }, Math.max(100, Math.floor(config.presenceNodeTtlMs / 3)))
    heartbeatTimer.unref()
    // Redis may have restarted empty, or missed writes while it was away.
    app.chatBroker.onReconnect(() => {
      needsResync = true
      void heartbeat()
    })
  }

  app.addHook('onClose', async () => {
    closing = true
    clearInterval(sweepTimer)
    if (heartbeatTimer !== null) clearInterval(heartbeatTimer)
    if (flushTimer !== null) clearTimeout(flushTimer)
    flushTimer = null
    await flushing
    // This node's users enter the grace at once; another node ends it, or they reconnect in time.
    try {
      await store.leave(graceDeadline())
    } catch (error) {
      log.warn({ err: error }, 'presence: leaving failed; the liveness key expires instead')
    }
  })
}, { name: 'chat-presence', fastify: '5.x', dependencies: ['chat-config', 'chat-broker', 'chat-hub', 'chat-gateway', 'chat-sessions', 'chat-users', 'chat-presence-store', 'chat-rooms'] })
