import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { LatestVersions } from '../lib/latest-versions.js'
import { MemoryPresenceStore } from '../lib/presence/memory.js'
import { RedisPresenceStore } from '../lib/presence/redis.js'
import type { PresenceStore } from '../lib/presence/store.js'

t.test('latest versions: an older version of a key is refused, an equal or newer one admitted', async (t) => {
  const latest = new LatestVersions(1000)
  t.ok(latest.admit('u', 5, 0), 'first version of a key')
  t.ok(latest.admit('u', 5, 1), 'the same change again (another room of the same push)')
  t.notOk(latest.admit('u', 4, 2), 'older')
  t.ok(latest.admit('other', 1, 3), 'keys are independent')
  t.ok(latest.admit('u', 6, 4), 'newer')
  t.notOk(latest.admit('u', 5, 5))
})

t.test('latest versions: keys quiet for longer than the memory are forgotten once there are many', async (t) => {
  const latest = new LatestVersions(1000)
  latest.admit('old', 10, 0)
  for (let index = 0; index < 1024; index += 1) latest.admit(`fresh-${index}`, 1, 5000)
  t.equal(latest.size, 1024, 'the quiet key went when the map grew past its bound')
  t.ok(latest.admit('old', 1, 5000), 'and a later push of it is taken as new')
  t.notOk(latest.admit('fresh-0', 0, 5000), 'fresh keys are kept')
})

/** Attach, away, back, detach, grace ends: every change takes a larger version than the one before. */
async function changesInOrder (t: Test, store: PresenceStore, userId: string): Promise<number> {
  const versions: number[] = []
  versions.push((await store.attach(userId)).version)
  versions.push((await store.setChosen(userId, 'away')).version)
  versions.push((await store.setChosen(userId, null)).version)
  await store.detach(userId, Date.now() - 1)
  const expired = await store.expireDue(Date.now(), 10)
  t.same(expired.map((user) => user.userId), [userId], 'the grace ended')
  versions.push((expired[0] as { version: number }).version)
  versions.push((await store.attach(userId)).version)
  t.ok(versions.every((version, index) => index === 0 || version > (versions[index - 1] as number)), `increasing: ${versions.join(', ')}`)
  return versions[versions.length - 1] as number
}

t.test('memory store: each change takes a larger version', async (t) => {
  await changesInOrder(t, new MemoryPresenceStore(), 'alice')
})

const redisUrl = process.env.REDIS_URL ?? ''
t.test('redis store: each change takes a larger version, also after Redis lost the counter', { skip: redisUrl === '' ? 'needs REDIS_URL' : false }, async (t) => {
  const client = new Redis(redisUrl)
  const prefix = `test-${randomBytes(4).toString('hex')}:`
  t.teardown(async () => {
    const keys = await client.keys(`${prefix}*`)
    if (keys.length > 0) await client.del(...keys)
    client.disconnect()
  })
  const store = new RedisPresenceStore({ client, prefix, nodeId: 'n1', nodeTtlMs: 10000 })
  const last = await changesInOrder(t, store, 'alice')
  // A Redis that restarted empty: the versions it hands out next still come after the old ones.
  await client.del(`${prefix}{presence}:version`)
  t.ok((await store.setChosen('alice', 'away')).version > last, 'after the counter was lost')
  // Another node's entries written back after it was taken for dead: the users present again get versions too.
  await client.del(`${prefix}{presence}:user:bob`)
  const before = Number(await client.get(`${prefix}{presence}:version`))
  const restored = await store.resync(new Map([['alice', 1], ['bob', 1]]), Date.now() + 1000)
  t.same(restored.map((user) => user.userId), ['bob'])
  t.ok((restored[0] as { version: number }).version > before, 'a restored user takes a new version')
})
