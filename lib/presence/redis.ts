import { createHash } from 'node:crypto'
import { chatError, isChatError } from '../../plugins/core/errors.js'
import { withTimeout } from '../deadline.js'
import { MicroBatch } from '../micro-batch.js'
import { isCluster, type RedisConnection } from '../redis-connection.js'
import { presenceSlotOf, presenceTags } from './slots.js'
import type {
  AttachResult, ChosenStatus, ExpiredUser, PresenceStore, RestoredUser, SetChosenResult, StoredPresence,
} from './store.js'

/*
 * Keys, all under `<redisPrefix>{presence}:` on one Redis; on a Redis Cluster the same set of keys once
 * per presence slot, under `<redisPrefix>{presence:<n>}:` (lib/presence/slots.ts), a user's keys in the
 * slot their id hashes to. Every script touches the keys of one hash tag only, so it runs on a cluster,
 * where every key a script touches must live in one slot; each slot's set is a complete store of its own
 * users (its own grace set, version counter and liveness keys), so no script needs another slot:
 *   user:<userId>     hash  n:<nodeId> -> open sockets of the user on that node; s -> away | invisible
 *   sockets:<nodeId>  hash  userId -> open sockets on that node (the same numbers, to clean up a dead node)
 *   node:<nodeId>     string with a TTL: the node is alive while it exists (refreshed every third of the TTL)
 *   nodes             set of the node ids that have entries
 *   grace             sorted set userId -> the time (ms) their grace ends
 *   version           the version last handed to a change (VERSION below)
 * A user is present while a user hash has an n: field or the user is in `grace`.
 */

// The next version of presence, taken by every script that changes what others see of a user: Redis's
// clock in microseconds, or one more than the last version when that is larger. A Redis that restarted
// empty thus still hands out versions above those the nodes remember (its clock has moved on).
const VERSION = `
local function nextVersion(key)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
  local last = tonumber(redis.call('GET', key) or '0')
  local version = now
  if last >= now then version = last + 1 end
  redis.call('SET', key, string.format('%d', version))
  return version
end
`

// Sum of the n:<node> fields of a user hash: the user's open sockets on every node.
const TOTAL = `
local function total(key)
  local sum = 0
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'n:' then sum = sum + tonumber(all[i + 1]) end
  end
  return sum
end
`

// Removes a node's entries; its users without another socket enter the grace. Dynamic keys come from
// the prefix in ARGV (the client's keyPrefix included), all in the {presence} slot.
const DROP_NODE = `
local function dropNode(prefix, node, deadline)
  local socketsKey = prefix .. 'sockets:' .. node
  local graceKey = prefix .. 'grace'
  local users = redis.call('HKEYS', socketsKey)
  for _, user in ipairs(users) do
    local key = prefix .. 'user:' .. user
    redis.call('HDEL', key, 'n:' .. node)
    if total(key) == 0 and redis.call('ZSCORE', graceKey, user) == false then
      redis.call('ZADD', graceKey, deadline, user)
    end
  end
  redis.call('DEL', socketsKey)
  redis.call('SREM', prefix .. 'nodes', node)
  return #users
end
`

// KEYS: sockets:<node>, nodes, grace, version, user, user, ...   ARGV: node, userId, userId, ...
// -> wasPresent, chosen, version for each user, in order. A user may come twice (two sockets): the
// second sees the first.
const ATTACH_MANY = `${TOTAL}${VERSION}
redis.call('SADD', KEYS[2], ARGV[1])
local field = 'n:' .. ARGV[1]
local out = {}
for i = 2, #ARGV do
  local key = KEYS[i + 3]
  local before = total(key)
  local inGrace = redis.call('ZREM', KEYS[3], ARGV[i])
  redis.call('HINCRBY', key, field, 1)
  redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
  table.insert(out, (before > 0 or inGrace == 1) and 1 or 0)
  table.insert(out, redis.call('HGET', key, 's') or '')
  table.insert(out, nextVersion(KEYS[4]))
end
return out
`

// KEYS: user, sockets:<node>, grace   ARGV: node, userId, graceDeadline
const DETACH = `${TOTAL}
local field = 'n:' .. ARGV[1]
local count = redis.call('HINCRBY', KEYS[1], field, -1)
if count <= 0 then redis.call('HDEL', KEYS[1], field) end
local mine = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
if mine <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
if count < 0 then return 0 end
if total(KEYS[1]) == 0 then redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2]) end
return 1
`

// KEYS: user, grace, version   ARGV: chosen ('' for online), userId
const SET_CHOSEN = `${TOTAL}${VERSION}
local present = total(KEYS[1]) > 0 or redis.call('ZSCORE', KEYS[2], ARGV[2]) ~= false
local previous = redis.call('HGET', KEYS[1], 's') or ''
local chosen = ARGV[1]
if chosen == 'away' and not present then chosen = previous end
if chosen == '' then redis.call('HDEL', KEYS[1], 's') else redis.call('HSET', KEYS[1], 's', chosen) end
local version = nextVersion(KEYS[3])
if present then return {1, previous, chosen, version} end
return {0, previous, chosen, version}
`

// KEYS: grace   ARGV: now, limit, prefix   -> flat list userId, chosen, deadline, version, ...
const EXPIRE = `${TOTAL}${VERSION}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i = 1, #due, 2 do
  local user = due[i]
  redis.call('ZREM', KEYS[1], user)
  local key = ARGV[3] .. 'user:' .. user
  if total(key) == 0 then
    local chosen = redis.call('HGET', key, 's') or ''
    if chosen == 'away' then redis.call('HDEL', key, 's') end
    table.insert(out, user)
    table.insert(out, chosen)
    table.insert(out, due[i + 1])
    table.insert(out, nextVersion(ARGV[3] .. 'version'))
  end
end
return out
`

// KEYS: node:<node>, nodes   ARGV: node, ttlMs, graceDeadline, prefix   -> {alive before, nodes reaped}
// Refreshes this node's liveness, then removes every other node whose liveness key expired.
const HEARTBEAT = `${TOTAL}${DROP_NODE}
local existed = redis.call('PEXPIRE', KEYS[1], ARGV[2])
if existed == 0 then redis.call('SET', KEYS[1], '1', 'PX', ARGV[2]) end
redis.call('SADD', KEYS[2], ARGV[1])
local reaped = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if node ~= ARGV[1] and redis.call('EXISTS', ARGV[4] .. 'node:' .. node) == 0 then
    dropNode(ARGV[4], node, ARGV[3])
    reaped = reaped + 1
  end
end
return {existed, reaped}
`

// KEYS: node:<node>, sockets:<node>, nodes, grace   ARGV: node, ttlMs, graceDeadline, prefix, userId, count, ...
// Makes this node's entries exactly the given counts; returns userId, chosen, version of users present again.
const RESYNC = `${TOTAL}${VERSION}
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
local field = 'n:' .. ARGV[1]
local wanted = {}
for i = 5, #ARGV, 2 do wanted[ARGV[i]] = tonumber(ARGV[i + 1]) end
for _, user in ipairs(redis.call('HKEYS', KEYS[2])) do
  if wanted[user] == nil then
    local key = ARGV[4] .. 'user:' .. user
    redis.call('HDEL', key, field)
    redis.call('HDEL', KEYS[2], user)
    if total(key) == 0 and redis.call('ZSCORE', KEYS[4], user) == false then
      redis.call('ZADD', KEYS[4], ARGV[3], user)
    end
  end
end
local out = {}
for i = 5, #ARGV, 2 do
  local user = ARGV[i]
  local key = ARGV[4] .. 'user:' .. user
  local others = total(key) - tonumber(redis.call('HGET', key, field) or '0')
  local inGrace = redis.call('ZREM', KEYS[4], user)
  local wasHere = redis.call('HEXISTS', key, field)
  redis.call('HSET', key, field, ARGV[i + 1])
  redis.call('HSET', KEYS[2], user, ARGV[i + 1])
  if others == 0 and inGrace == 0 and wasHere == 0 then
    table.insert(out, user)
    table.insert(out, redis.call('HGET', key, 's') or '')
    table.insert(out, nextVersion(ARGV[4] .. 'version'))
  end
end
return out
`

// KEYS: node:<node>   ARGV: node, graceDeadline, prefix
const LEAVE = `${TOTAL}${DROP_NODE}
redis.call('DEL', KEYS[1])
return dropNode(ARGV[3], ARGV[1], ARGV[2])
`

class Script {
  readonly sha: string
  constructor (readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  async run (client: RedisConnection, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args)
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
      return await client.eval(this.source, keys.length, ...keys, ...args)
    }
  }
}

const SCRIPTS = {
  attachMany: new Script(ATTACH_MANY),
  detach: new Script(DETACH),
  setChosen: new Script(SET_CHOSEN),
  expire: new Script(EXPIRE),
  heartbeat: new Script(HEARTBEAT),
  resync: new Script(RESYNC),
  leave: new Script(LEAVE),
}

/** Bounds one attach script's work inside Redis, which runs nothing else meanwhile. */
const MAX_ATTACHES_PER_SCRIPT = 200

export interface RedisPresenceStoreOptions {
  /** One Redis, or a Cluster: then the keys spread over several slots (lib/presence/slots.ts). */
  client: RedisConnection
  /** The suite's redisPrefix. */
  prefix: string
  nodeId: string
  /** Life of this node's liveness key. */
  nodeTtlMs: number
  /** Upper bound of one command, so that a Redis that hangs turns into UNAVAILABLE. */
  commandTimeoutMs?: number
}

function chosenOf (value: unknown): ChosenStatus | null {
  return value === 'away' || value === 'invisible' ? value : null
}

function restoredOf (reply: unknown): RestoredUser[] {
  const flat = reply as Array<string | number>
  const users: RestoredUser[] = []
  for (let index = 0; index + 2 < flat.length; index += 3) {
    users.push({ userId: String(flat[index]), chosen: chosenOf(flat[index + 1]), version: Number(flat[index + 2]) })
  }
  return users
}

/** The keys of one presence tag: a complete store for the users whose ids hash to it. */
interface TagKeys {
  /** `<redisPrefix>{presence…}:`, as given to the client (which adds its keyPrefix to KEYS). */
  readonly keys: string
  /** The same with the client's keyPrefix: for the keys a script builds itself. */
  readonly script: string
}

/** Presence shared by every node through Redis: counts per user and node, liveness keys per node. */
export class RedisPresenceStore implements PresenceStore {
  readonly kind = 'redis' as const
  readonly #client: RedisConnection
  readonly #nodeId: string
  readonly #ttlMs: number
  readonly #timeoutMs: number
  readonly #tags: TagKeys[]
  readonly #attaches = new MicroBatch<string, AttachResult>(async (userIds) => await this.#attachMany(userIds), { maxBatch: MAX_ATTACHES_PER_SCRIPT })

  constructor (options: RedisPresenceStoreOptions) {
    this.#client = options.client
    this.#nodeId = options.nodeId
    this.#ttlMs = options.nodeTtlMs
    this.#timeoutMs = options.commandTimeoutMs ?? 2000
    const keyPrefix = String(options.client.options.keyPrefix ?? '')
    this.#tags = presenceTags(isCluster(options.client)).map((tag) => {
      const keys = `${options.prefix}${tag}:`
      return { keys, script: `${keyPrefix}${keys}` }
    })
  }

  /**
   * The attaches of one turn go to Redis as one script per presence tag (lib/micro-batch.ts): sessions
   * that start together (a reconnect storm) cost one command, not one each.
   */
  async attach (userId: string): Promise<AttachResult> {
    return await this.#attaches.load(userId)
  }

  async #attachMany (userIds: string[]): Promise<AttachResult[]> {
    const results = new Map<string, AttachResult[]>()
    await Promise.all([...this.#byTag(userIds)].map(async ([tag, ids]) => {
      const keys = [this.#sockets(tag), key(tag, 'nodes'), key(tag, 'grace'), key(tag, 'version'), ...ids.map((id) => user(tag, id))]
      const flat = await this.#run(SCRIPTS.attachMany, keys, [this.#nodeId, ...ids]) as Array<string | number>
      ids.forEach((id, index) => {
        const at = index * 3
        const result = { wasPresent: Number(flat[at]) === 1, chosen: chosenOf(flat[at + 1]), version: Number(flat[at + 2]) }
        const list = results.get(id)
        if (list === undefined) results.set(id, [result])
        else list.push(result)
      })
    }))
    // A user twice in the batch takes their results in order, as the script made them.
    return userIds.map((id) => results.get(id)?.shift() as AttachResult)
  }

  async detach (userId: string, graceDeadline: number): Promise<void> {
    const tag = this.#tagOf(userId)
    await this.#run(SCRIPTS.detach, [user(tag, userId), this.#sockets(tag), key(tag, 'grace')], [this.#nodeId, userId, graceDeadline])
  }

  async setChosen (userId: string, chosen: ChosenStatus | null): Promise<SetChosenResult> {
    const tag = this.#tagOf(userId)
    const reply = await this.#run(SCRIPTS.setChosen, [user(tag, userId), key(tag, 'grace'), key(tag, 'version')], [chosen ?? '', userId]) as [number, string, string, number]
    return { present: Number(reply[0]) === 1, previous: chosenOf(reply[1]), chosen: chosenOf(reply[2]), version: Number(reply[3]) }
  }

  async read (userIds: string[]): Promise<Map<string, StoredPresence>> {
    const result = new Map<string, StoredPresence>()
    if (userIds.length === 0) return result
    // One pipeline per tag: a cluster sends a pipeline to one node, so its keys must share a slot.
    await Promise.all([...this.#byTag(userIds)].map(async ([tag, ids]) => {
      const pipeline = this.#client.pipeline()
      for (const userId of ids) {
        pipeline.hgetall(user(tag, userId))
        pipeline.zscore(key(tag, 'grace'), userId)
      }
      const replies = await this.#bounded(pipeline.exec(), 'read')
      ids.forEach((userId, index) => {
        const [hashError, hash] = replies?.[index * 2] ?? [null, {}]
        const [graceError, grace] = replies?.[index * 2 + 1] ?? [null, null]
        if (hashError !== null) throw hashError
        if (graceError !== null) throw graceError
        let sockets = 0
        for (const [field, value] of Object.entries(hash as Record<string, string>)) {
          if (field.startsWith('n:')) sockets += Number(value)
        }
        result.set(userId, { present: sockets > 0 || grace !== null, chosen: chosenOf((hash as Record<string, string>).s) })
      })
    }))
    return result
  }

  /** At most `limit` users per presence tag (one tag on a single Redis). */
  async expireDue (now: number, limit: number): Promise<ExpiredUser[]> {
    const perTag = await Promise.all(this.#tags.map(async (tag) => {
      const flat = await this.#run(SCRIPTS.expire, [key(tag, 'grace')], [now, limit, tag.script]) as Array<string | number>
      const users: ExpiredUser[] = []
      for (let index = 0; index + 3 < flat.length; index += 4) {
        users.push({ userId: String(flat[index]), chosen: chosenOf(flat[index + 1]), at: Number(flat[index + 2]), version: Number(flat[index + 3]) })
      }
      return users
    }))
    return perTag.flat()
  }

  async heartbeat (localCounts: ReadonlyMap<string, number>, graceDeadline: number): Promise<RestoredUser[]> {
    // Grouped only when a write-back needs them: a beat of a node of 5,000 users would copy them all for nothing.
    let counts: Map<TagKeys, Map<string, number>> | null = null
    const restored = await Promise.all(this.#tags.map(async (tag) => {
      const reply = await this.#run(SCRIPTS.heartbeat, [key(tag, `node:${this.#nodeId}`), key(tag, 'nodes')],
        [this.#nodeId, this.#ttlMs, graceDeadline, tag.script]) as [number, number]
      // Our liveness key was gone: another node may have removed our entries, so write them back.
      if (Number(reply[0]) !== 0) return []
      counts ??= this.#countsByTag(localCounts)
      return await this.#resyncTag(tag, counts.get(tag) ?? new Map(), graceDeadline)
    }))
    return restored.flat()
  }

  async resync (localCounts: ReadonlyMap<string, number>, graceDeadline: number): Promise<RestoredUser[]> {
    const counts = this.#countsByTag(localCounts)
    const restored = await Promise.all(this.#tags.map(async (tag) => await this.#resyncTag(tag, counts.get(tag) ?? new Map(), graceDeadline)))
    return restored.flat()
  }

  async leave (graceDeadline: number): Promise<void> {
    await Promise.all(this.#tags.map(async (tag) => {
      await this.#run(SCRIPTS.leave, [key(tag, `node:${this.#nodeId}`)], [this.#nodeId, graceDeadline, tag.script])
    }))
  }

  async #resyncTag (tag: TagKeys, localCounts: ReadonlyMap<string, number>, graceDeadline: number): Promise<RestoredUser[]> {
    const args: Array<string | number> = [this.#nodeId, this.#ttlMs, graceDeadline, tag.script]
    for (const [userId, count] of localCounts) if (count > 0) args.push(userId, count)
    const reply = await this.#run(SCRIPTS.resync,
      [key(tag, `node:${this.#nodeId}`), this.#sockets(tag), key(tag, 'nodes'), key(tag, 'grace')], args)
    return restoredOf(reply)
  }

  #tagOf (userId: string): TagKeys {
    return this.#tags[presenceSlotOf(userId, this.#tags.length)] as TagKeys
  }

  #byTag (userIds: string[]): Map<TagKeys, string[]> {
    const groups = new Map<TagKeys, string[]>()
    for (const userId of userIds) {
      const tag = this.#tagOf(userId)
      const ids = groups.get(tag)
      if (ids === undefined) groups.set(tag, [userId])
      else ids.push(userId)
    }
    return groups
  }

  #countsByTag (localCounts: ReadonlyMap<string, number>): Map<TagKeys, Map<string, number>> {
    const groups = new Map<TagKeys, Map<string, number>>()
    for (const [userId, count] of localCounts) {
      const tag = this.#tagOf(userId)
      let counts = groups.get(tag)
      if (counts === undefined) {
        counts = new Map()
        groups.set(tag, counts)
      }
      counts.set(userId, count)
    }
    return groups
  }

  #sockets (tag: TagKeys): string {
    return key(tag, `sockets:${this.#nodeId}`)
  }

  async #run (script: Script, keys: string[], args: Array<string | number>): Promise<unknown> {
    return await this.#bounded(script.run(this.#client, keys, args), 'script')
  }

  async #bounded<T> (command: Promise<T>, what: string): Promise<T> {
    try {
      return await withTimeout(command, this.#timeoutMs,
        () => chatError('UNAVAILABLE', `presence: Redis did not answer (${what}) within ${this.#timeoutMs} ms`))
    } catch (error) {
      if (isChatError(error)) throw error
      throw chatError('UNAVAILABLE', `presence: Redis ${what} failed: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
}

function key (tag: TagKeys, name: string): string {
  return `${tag.keys}${name}`
}

function user (tag: TagKeys, userId: string): string {
  return `${tag.keys}user:${userId}`
}
