import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { MemoryPresenceStore } from '../../lib/presence/memory.js'
import { RedisPresenceStore } from '../../lib/presence/redis.js'
import { shownStatus, type PresenceStatus, type PresenceStore } from '../../lib/presence/store.js'
import { userKeysOf } from '../../lib/user-key.js'

export interface PresenceInfo {
  status: PresenceStatus
  /** ISO 8601; null while the user is online or away (they are here now), or was never seen. */
  lastSeen: string | null
}

/** The presence state shared by every node, and how others see a user in it. */
export interface SharedPresence {
  /** Redis (with per-node liveness keys) when the suite has Redis, memory otherwise. */
  readonly store: PresenceStore
  /**
   * What others see of each user of `tenant` (invisible users read as offline), by id; every id asked for
   * is in the map. The store is keyed by user key (tenant and sub, lib/user-key.ts). An offline user's last
   * seen is read from the database unless `knownLastSeen` has it (a caller that read it already).
   */
  statusOf (tenant: string, userIds: string[], knownLastSeen?: ReadonlyMap<string, string | null>): Promise<Map<string, PresenceInfo>>
}

declare module 'fastify' {
  interface FastifyInstance {
    chatPresenceStore: SharedPresence
  }
}

/**
 * The presence store and its read side, apart from the presence concern so that rooms can show members'
 * status without depending on the concern (which depends on rooms for its pushes). The presence plugin
 * writes the store as sockets come and go; without it nobody is attached, so everyone reads offline.
 */
export const presenceStorePlugin = fp(async function presenceStorePlugin (app: FastifyInstance) {
  const { chatConfig: config, chatHub: hub, chatUsers: users } = app
  const log = app.log.child({ concern: 'presence' })
  const store: PresenceStore = app.chatRedis !== null
    ? new RedisPresenceStore({ client: app.chatRedis, prefix: config.redisPrefix, nodeId: hub.nodeId, nodeTtlMs: config.presenceNodeTtlMs })
    : new MemoryPresenceStore()

  async function statusOf (tenant: string, userIds: string[], knownLastSeen?: ReadonlyMap<string, string | null>): Promise<Map<string, PresenceInfo>> {
    const unique = [...new Set(userIds)]
    const result = new Map<string, PresenceInfo>()
    if (unique.length === 0) return result
    const keys = userKeysOf(tenant, unique)
    let stored
    try {
      stored = await store.read(keys)
    } catch (error) {
      // Degraded rather than failing session.ready or room.members: this node's own sockets only.
      log.warn({ err: error }, 'presence: store unreadable, answering from this node')
      stored = new Map(keys.map((key) => [key, { present: hub.connectionsOf(key).size > 0, chosen: null }]))
    }
    const offline: string[] = []
    for (const [index, userId] of unique.entries()) {
      const entry = stored.get(keys[index] as string)
      const status = shownStatus(entry?.present ?? false, entry?.chosen ?? null)
      result.set(userId, { status, lastSeen: null })
      if (status !== 'offline') continue
      const known = knownLastSeen?.get(userId)
      if (known === undefined) offline.push(userId)
      else result.set(userId, { status, lastSeen: known })
    }
    if (offline.length > 0) {
      const profiles = await users.profiles(tenant, offline)
      for (const userId of offline) result.set(userId, { status: 'offline', lastSeen: profiles.get(userId)?.lastSeen ?? null })
    }
    return result
  }

  app.decorate('chatPresenceStore', { store, statusOf })
}, { name: 'chat-presence-store', fastify: '5.x', dependencies: ['chat-config', 'chat-broker', 'chat-hub', 'chat-users'] })
