import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { and, eq, inArray, sql } from 'drizzle-orm'
import { users } from '../../db/schema/index.js'
import type { ChatUser } from '../realtime/connection.js'
import { userKeyOf } from '../../lib/user-key.js'
import { MicroBatch } from '../../lib/micro-batch.js'

export interface Profile {
  id: string
  name: string | null
  avatar: string | null
  lastSeen: string | null
}

export interface UsersService {
  /**
   * Caches the token's name and avatar in the users table (writing only when they changed), and fills
   * them from the host's resolveUser hook when the token carries only `sub`. Returns the user as known.
   */
  remember (user: ChatUser): Promise<ChatUser>
  /** The profiles of users of one tenant (a user is the pair (tenant, sub)), by id; every id asked is in the map. */
  profiles (tenant: string, ids: string[]): Promise<Map<string, Profile>>
  /** Stamps last seen (presence going offline). */
  touchLastSeen (user: { id: string, tenant: string }, at: Date): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    chatUsers: UsersService
  }
}

const REMEMBERED_MAX = 50_000

/** Users as tokens describe them, cached in the database so that history and member lists show names. */
export const usersPlugin = fp(async function usersPlugin (app: FastifyInstance) {
  const db = app.chatDb
  // One batch of each kind at a time: the stamps and profiles that arrive meanwhile go in the next.
  const timeoutMs = app.chatConfig.databaseTimeoutMs
  // What this node last wrote per user: a session start of an unchanged user costs no write.
  const remembered = new Map<string, string>()
  const resolveUser = app.chatHooks.resolveUser
  // The profiles of the sessions that start in the same turn go in one statement; a row whose name and
  // avatar are already those is left alone (a node that restarts, or takes another's users, rewrites nothing).
  // Written as SQL: drizzle's insert builder cost more CPU than the statement in a reconnect storm's profile.
  const writes = new MicroBatch<ChatUser, void>(async (batch) => {
    // One row per user: a statement may not update the same row twice.
    const unique = [...new Map(batch.map((user) => [userKeyOf(user), user])).values()]
    await db.execute(sql`insert into chat.users (id, tenant, name, avatar)
      values ${sql.join(unique.map((user) => sql`(${user.id}, ${user.tenant}, ${user.name}::text, ${user.avatar}::text)`), sql`, `)}
      on conflict (tenant, id) do update set name = excluded.name, avatar = excluded.avatar, updated_at = now()
      where users.name is distinct from excluded.name or users.avatar is distinct from excluded.avatar`)
    return batch.map(() => undefined)
  }, { inFlight: { max: 1, timeoutMs, what: 'writing profiles' } })
  // Last-seen stamps of one turn in one statement: when a node dies, another node's sweep stamps every
  // one of its users offline at once (one upsert each before). A user stamped twice in a turn keeps the
  // later call's time, as two statements one after the other would have left it.
  const lastSeenStamps = new MicroBatch<{ id: string, tenant: string, at: Date }, void>(async (batch) => {
    const unique = [...new Map(batch.map((stamp) => [userKeyOf(stamp), stamp])).values()]
    await db.execute(sql`insert into chat.users (id, tenant, last_seen)
      values ${sql.join(unique.map((stamp) => sql`(${stamp.id}, ${stamp.tenant}, ${stamp.at.toISOString()}::timestamptz)`), sql`, `)}
      on conflict (tenant, id) do update set last_seen = excluded.last_seen`)
    return batch.map(() => undefined)
  }, { inFlight: { max: 1, timeoutMs, what: 'stamping last seen' } })

  async function resolved (user: ChatUser): Promise<ChatUser> {
    if (resolveUser === undefined || (user.name !== null && user.avatar !== null)) return user
    const profile = await resolveUser(user.id, user.tenant)
    // A host that does not know the user answers null or undefined (a Map's get): the token's claims stand.
    if (profile === null || profile === undefined) return user
    return { ...user, name: user.name ?? profile.name ?? null, avatar: user.avatar ?? profile.avatar ?? null }
  }

  const service: UsersService = {
    async remember (given) {
      const user = await resolved(given)
      const key = userKeyOf(user)
      const signature = `${user.name ?? ''}\u0000${user.avatar ?? ''}`
      if (remembered.get(key) === signature) return user
      await writes.load(user)
      if (remembered.size >= REMEMBERED_MAX) remembered.clear()
      remembered.set(key, signature)
      return user
    },
    async profiles (tenant, ids) {
      const unique = [...new Set(ids)]
      const result = new Map<string, Profile>()
      if (unique.length === 0) return result
      const rows = await db.select({ id: users.id, name: users.name, avatar: users.avatar, lastSeen: users.lastSeen })
        .from(users).where(and(eq(users.tenant, tenant), inArray(users.id, unique)))
      for (const row of rows) result.set(row.id, { id: row.id, name: row.name, avatar: row.avatar, lastSeen: row.lastSeen?.toISOString() ?? null })
      for (const id of unique) if (!result.has(id)) result.set(id, { id, name: null, avatar: null, lastSeen: null })
      return result
    },
    async touchLastSeen (user, at) {
      await lastSeenStamps.load({ id: user.id, tenant: user.tenant, at })
    },
  }
  app.decorate('chatUsers', service)
}, { name: 'chat-users', fastify: '5.x', dependencies: ['chat-config', 'chat-database'] })
