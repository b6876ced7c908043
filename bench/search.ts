/**
 * `npm run bench:search`: message search at scale (issue 24). Seeds a scratch PostgreSQL database with
 * bench/seed-search.ts (1 million messages: 750,000 in 4,000 rooms, 250,000 in 10 big ones; 2,000 users,
 * each in 50 rooms, the first 100 in the big ones too), starts the server on it, and times
 * `message.search` over the WebSocket for users of both kinds, by kind of query:
 * a common word (in about half the messages), a middling one, a rare one, two words. In the same run,
 * as the baseline a chat stack without a text index uses, the same words are looked up with a
 * word-boundary regular expression (`content ~* '\mword\M'`) over the same user's rooms, in SQL.
 *
 *   npm run bench:search [-- --messages 1000000] [--queries 60] [--database <url of a seeded database>]
 *
 * Without --database the scratch database is dropped at the end; with it, it is seeded once and kept.
 */
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { createSigner } from 'fast-jwt'
import postgres from 'postgres'
import { openDatabase } from '../db/client.js'
import { migrateDatabase } from '../db/migrate.js'
import { BenchClient, benchLimits, percentile, round, scratchDatabase, startServer } from './lib.js'
import { DEFAULT_SHAPE, TENANT, VOCABULARY, roomSizes, seedSearch, userId } from './seed-search.js'

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: String(DEFAULT_SHAPE.messages) },
    queries: { type: 'string', default: '60' },
    database: { type: 'string' },
  },
})
const PG = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const SECRET = `bench-${randomBytes(16).toString('hex')}`
const QUERIES = Number(values.queries)
/** Sockets the queries are spread over. */
const POOL = 10
const shape = { ...DEFAULT_SHAPE, messages: Number(values.messages) }

/** Query kinds, each a word picker by Zipf rank: w1 is in about half the messages, w15000 in a handful. */
const KINDS: Record<string, () => string> = {
  common: () => `w${1 + Math.floor(Math.random() * 3)}`,
  middling: () => `w${100 + Math.floor(Math.random() * 400)}`,
  rare: () => `w${5000 + Math.floor(Math.random() * (VOCABULARY - 5000))}`,
  'two words': () => `w${20 + Math.floor(Math.random() * 80)} w${20 + Math.floor(Math.random() * 80)}`,
}

interface Figures { p50: number, p95: number, p99: number, hits: number }

function figuresOf (times: number[], hits: number[]): Figures {
  const sorted = [...times].sort((a, b) => a - b)
  return { p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)), p99: round(percentile(sorted, 99)), hits: round(hits.reduce((a, b) => a + b, 0) / hits.length, 1) }
}

function log (line: string): void {
  process.stderr.write(`${line}\n`)
}

async function main (): Promise<void> {
  const scratch = values.database === undefined ? await scratchDatabase(PG) : null
  const url = values.database ?? (scratch as { url: string }).url
  const handle = await openDatabase(url)
  try {
    await migrateDatabase(handle)
    const seedStart = performance.now()
    const held = await seedSearch(handle.db, shape)
    log(`${held} messages (seeding took ${round((performance.now() - seedStart) / 1000, 0)} s)`)
  } finally {
    await handle.close()
  }

  const server = await startServer({ DATABASE_URL: url, REDIS_URL: '', JWT_SECRET: SECRET, CHAT_OPTIONS: JSON.stringify(benchLimits()) })
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  const sign = createSigner({ key: SECRET, expiresIn: 3600_000 })
  const wsUrl = `${server.url.replace('http', 'ws')}/ws`
  const results: Record<string, { search: Figures, regex: Figures }> = {}
  // Two groups of connected users: in 50 rooms of 250 messages (their rooms are read one by one), and in
  // those plus the 10 big rooms (a quarter of all messages: the GIN index finds the words). A query goes to
  // one user of the group in turn; sockets are set up before timing.
  const groups: Array<{ name: string, people: Array<{ id: string, client: BenchClient }> }> = [
    { name: `${shape.roomsPerUser} rooms`, people: [] },
    { name: `${shape.roomsPerUser} rooms + ${shape.bigRooms} big`, people: [] },
  ]
  const people = groups.flatMap((group) => group.people)
  try {
    for (let index = 0; index < POOL; index += 1) {
      for (const [at, group] of groups.entries()) {
        const id = userId(at === 0 ? shape.bigRoomUsers + index * 13 : index)
        const person = { id, client: await BenchClient.connect(wsUrl, sign({ sub: id, tenant: TENANT })) }
        group.people.push(person)
        people.push(person)
        await person.client.request('message.search', { query: 'w42' })
      }
    }
    for (const group of groups) {
      for (const [kind, pick] of Object.entries(KINDS)) {
        const searchTimes: number[] = []
        const regexTimes: number[] = []
        const searchHits: number[] = []
        const regexHits: number[] = []
        for (let index = 0; index < QUERIES; index += 1) {
          const person = group.people[index % group.people.length] as { id: string, client: BenchClient }
          const words = pick()
          let began = performance.now()
          const page = await person.client.request('message.search', { query: words }) as { messages: unknown[] }
          searchTimes.push(performance.now() - began)
          searchHits.push(page.messages.length)
          const patterns = words.split(' ').map((word) => `\\m${word}\\M`)
          began = performance.now()
          const found = await sql`
            select m.id from chat.messages m
            where m.room_id in (select room_id from chat.room_members where user_id = ${person.id})
              and m.deleted_at is null and m.content ~* all(${patterns})
            order by m.created_at desc limit 20`
          regexTimes.push(performance.now() - began)
          regexHits.push(found.length)
        }
        const row = `${group.name}, ${kind}`
        results[row] = { search: figuresOf(searchTimes, searchHits), regex: figuresOf(regexTimes, regexHits) }
        log(`${row}: message.search p50 ${results[row].search.p50} ms, p95 ${results[row].search.p95} ms; regex scan p50 ${results[row].regex.p50} ms, p95 ${results[row].regex.p95} ms`)
      }
    }
  } finally {
    for (const person of people) person.client.close()
    await sql.end()
    await server.stop()
    await scratch?.drop()
  }
  const table = ['| user, query | message.search p50 / p95 / p99 ms | hits | regex scan p50 / p95 / p99 ms | p95 ratio |', '| --- | ---: | ---: | ---: | ---: |']
  for (const [kind, { search, regex }] of Object.entries(results)) {
    table.push(`| ${kind} | ${search.p50} / ${search.p95} / ${search.p99} | ${search.hits} | ${regex.p50} / ${regex.p95} / ${regex.p99} | ${round(regex.p95 / search.p95, 1)}x |`)
  }
  process.stdout.write(`${shape.messages} messages: ${shape.rooms} rooms of ${roomSizes(shape).small} and ${shape.bigRooms} of ${roomSizes(shape).big}; ${QUERIES} queries of each kind\n${table.join('\n')}\n`)
}

await main()
