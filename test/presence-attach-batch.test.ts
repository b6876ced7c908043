import t from 'tap'
import { Redis } from 'ioredis'
import { RedisPresenceStore } from '../lib/presence/redis.js'
import { hasRedisServer, RedisServer } from './fixtures/redis-server.js'

/** Calls of one command on a Redis so far (INFO commandstats). */
async function callsOf (redis: Redis, command: string): Promise<number> {
  const match = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(String(await redis.info('commandstats')))
  return match === null ? 0 : Number(match[1])
}

t.test('redis store: the attaches of one turn are one script, each answered as if alone', { skip: hasRedisServer() ? false : 'needs redis-server' }, async (t) => {
  // A Redis of its own: commandstats of a shared one counts other test files' commands too.
  const server = await RedisServer.start(t)
  const client = new Redis(server.url)
  t.teardown(() => { client.disconnect() })
  const one = new RedisPresenceStore({ client, prefix: 'p:', nodeId: 'n1', nodeTtlMs: 10000 })
  const two = new RedisPresenceStore({ client, prefix: 'p:', nodeId: 'n2', nodeTtlMs: 10000 })
  // Loads the script, so that the batch below is one EVALSHA rather than a NOSCRIPT and an EVAL.
  t.equal((await two.attach('warm')).wasPresent, false)

  const users = Array.from({ length: 30 }, (_, index) => `u${index}`)
  await two.setChosen('u3', 'invisible')
  await two.attach('u4')
  const before = await callsOf(client, 'evalsha')
  // Sessions that start in one turn; alice twice (two sockets).
  const results = await Promise.all([...users, 'alice', 'alice'].map(async (userId) => await one.attach(userId)))
  t.equal(await callsOf(client, 'evalsha') - before, 1, `one script for ${results.length} attaches`)

  const byUser = [...users, 'alice', 'alice'].map((userId, index) => [userId, results[index]] as const)
  for (const [userId, result] of byUser.slice(0, 30)) {
    const present = userId === 'u4'
    t.equal(result?.wasPresent, present, `${userId}: ${present ? 'already present on the other node' : 'arrives'}`)
  }
  t.equal(results[3]?.chosen, 'invisible', 'a stored choice comes back with the attach')
  t.equal(results[30]?.wasPresent, false, 'alice\'s first socket: she arrives')
  t.equal(results[31]?.wasPresent, true, 'alice\'s second socket in the same batch sees the first')
  const versions = results.map((result) => result?.version ?? 0)
  t.same(versions, [...versions].sort((a, b) => a - b), 'versions rise in the order of the attaches')
  t.equal(new Set(versions).size, versions.length, 'each attach takes a version of its own')

  const read = await two.read([...users, 'alice'])
  t.ok([...read.values()].every((presence) => presence.present), 'every user reads present from the other node')
  // Both of alice's sockets were counted: one detach leaves her present, the second one takes her away.
  await one.detach('alice', Date.now() - 1)
  t.equal((await two.read(['alice'])).get('alice')?.present, true, 'one of her two sockets left: still present')
  await one.detach('alice', Date.now() - 1)
  t.same((await two.expireDue(Date.now(), 100)).map((user) => user.userId), ['alice'], 'her last socket gone: offline after the grace')
})
