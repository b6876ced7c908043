import t, { type Test } from 'tap'
import fc from 'fast-check'
import { WebSocket } from 'ws'
import { Compile } from 'typebox/compile'
import { ERROR_CODES } from '../index.js'
import { startNode, type TestNode } from './fixtures/server.js'
import { TestClient } from './fixtures/ws-client.js'
import { rowCounts, type RowCounts } from './fixtures/abuse.js'
import { sleep, until } from './fixtures/timing.js'

// Property-based tests of the envelope and of every registered event's schema, over a real socket.
// For every frame: a frame with an id gets exactly one well-formed ack or error; a refused frame writes
// nothing (rows counted in the node's own database); the socket stays open, the node stays up, another
// user's socket keeps working, Object.prototype stays clean. Events are read from the gateway's registry,
// so an event added later is fuzzed without touching this file.

const HIGH = { rate: 1_000_000, burst: 1_000_000 }
const node = await startNode(t, {
  redis: null,
  options: { rateLimits: { send: HIGH, typing: HIGH, other: HIGH, userSend: HIGH, floodRefusals: 1_000_000 } },
})
const gateway = node.app.chat.scope.chatGateway
const pushes = new Set([...gateway.declaredPushes().keys(), 'session.ready', 'typing', 'presence'])
const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort()

// ---- a raw client that records every frame as text --------------------------------------------------

interface Received { text: string, frame: Record<string, unknown> }

class RawClient {
  readonly received: Received[] = []
  closedWith: number | null = null
  private readonly waiters = new Map<string, () => void>()

  constructor (readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const text = data.toString()
      const frame = JSON.parse(text) as Record<string, unknown>
      this.received.push({ text, frame })
      if (typeof frame.id === 'string') {
        const waiter = this.waiters.get(frame.id)
        this.waiters.delete(frame.id)
        waiter?.()
      }
    })
    socket.on('close', (code) => { this.closedWith = code })
    socket.on('error', () => {})
  }

  static async open (token: string): Promise<RawClient> {
    const socket = new WebSocket(node.wsUrl, { headers: { authorization: `Bearer ${token}` } })
    const client = new RawClient(socket)
    await new Promise<void>((resolve, reject) => {
      const check = setInterval(() => {
        if (client.received.some((entry) => entry.frame.event === 'session.ready')) {
          clearInterval(check)
          resolve()
        }
      }, 5)
      socket.once('error', reject)
    })
    return client
  }

  /** Sends raw text and waits for the reply carrying `id` (or, without one, for the pong of a sentinel ping). */
  async exchange (text: string, id: string | null): Promise<void> {
    const awaited = id ?? `sentinel-${++sentinels}`
    const replied = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${text.slice(0, 200)}`)), 10_000)
      this.waiters.set(awaited, () => {
        clearTimeout(timer)
        resolve()
      })
    })
    this.socket.send(text)
    if (id === null) this.socket.send(JSON.stringify({ event: 'ping', id: awaited }))
    await replied
  }

  repliesTo (id: string): Received[] {
    return this.received.filter((entry) => entry.frame.id === id)
  }
}

let sentinels = 0
let frameCounter = 0

// ---- frames as JSON text, so that keys like __proto__ and deep nesting reach the wire as written ------

class Raw {
  constructor (readonly text: string) {}
}

function toJson (value: unknown): string {
  if (value instanceof Raw) return value.text
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value).map(([key, item]) => `${JSON.stringify(key)}:${toJson(item)}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code))
const EDGE_STRINGS = [
  '', ' ', '\u0000', 'a\u0000b', '\ud800', '\udfff', 'x\udc00\ud800y', '\ud83d\ude00', '\u202e', '\ufeff', '\u2028\u2029', '\u200b',
  'A'.repeat(129), 'x'.repeat(4001), '../../etc/passwd', '\' OR 1=1; --', '\\', '"', '%00', '${jndi:ldap://x}', '<script>alert(1)</script>',
  '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-fffffffffffg', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF\n',
]
const PROTO_OBJECTS = [
  '{"__proto__":{"polluted":"yes"}}', '{"constructor":{"prototype":{"polluted":"yes"}}}', '{"prototype":{"polluted":"yes"}}',
  '{"__proto__":null}', '{"__proto__":[]}', '{"__proto__":{"__proto__":{"polluted":"yes"}}}',
]
const nasty: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 2 ** 31, 2 ** 53, 1e308, -1e308, [], {}, new Raw('-0'), new Raw('1e400'),
    new Raw('-1e400'), new Raw('1e-400'), new Raw('9007199254740993'), new Raw('123456789012345678901234567890')),
  fc.constantFrom(...EDGE_STRINGS),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: codeUnit, maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.integer({ min: 100, max: 20_000 }).map((length) => 'y'.repeat(length)),
  fc.integer({ min: 2, max: 10_000 }).map((depth) => new Raw(`${'['.repeat(depth)}${']'.repeat(depth)}`)),
  fc.integer({ min: 2, max: 3_000 }).map((depth) => new Raw(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`)),
  fc.constantFrom(...PROTO_OBJECTS).map((text) => new Raw(text)),
  fc.integer({ min: 101, max: 600 }).map((length) => Array.from({ length }, (_, index) => `u${index}`)),
  fc.jsonValue({ maxDepth: 3 }),
)
/** Strings that pass a schema's type check and test what comes after it: hygiene, lengths, ids. */
const nastyString = fc.oneof(
  fc.constantFrom(...EDGE_STRINGS),
  fc.string({ unit: codeUnit, minLength: 1, maxLength: 20 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  fc.string({ minLength: 1, maxLength: 20 }).map((text) => `${text}\u0000`),
)
const oddKey = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', ''), fc.string({ maxLength: 20 }))

// ---- valid samples from each event's schema, filled with real ids ------------------------------------

type Schema = Record<string, any>

function sample (schema: Schema, name: string, ids: Record<string, string>): unknown {
  if (Array.isArray(schema.anyOf)) return sample(schema.anyOf[0] as Schema, name, ids)
  if ('const' in schema) return schema.const
  switch (schema.type) {
    case 'object': {
      const value: Record<string, unknown> = {}
      for (const key of (schema.required ?? []) as string[]) value[key] = sample(schema.properties[key] as Schema, key, ids)
      return value
    }
    case 'array': return Array.from({ length: Math.max(1, schema.minItems ?? 1) }, () => sample(schema.items as Schema, name.replace(/s$/, ''), ids))
    case 'integer': case 'number': return Math.max(schema.minimum ?? 0, 1)
    case 'boolean': return false
    case 'string':
      if (typeof schema.pattern === 'string') return ids[name] ?? ids.roomId
      if (name === 'userId' || name === 'userIds' || name === 'id') return ids.userId
      return 'sample'.padEnd(schema.minLength ?? 1, 's').slice(0, schema.maxLength ?? 6)
    default: return null
  }
}

type Mutation =
  | { kind: 'replace', field: string, value: unknown }
  | { kind: 'delete', field: string }
  | { kind: 'add', key: string, value: unknown }
  | { kind: 'data', value: unknown }
  | { kind: 'nest' }

function mutations (fields: string[]): fc.Arbitrary<Mutation> {
  const field = fields.length > 0 ? fc.constantFrom(...fields) : fc.constant('roomId')
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('replace' as const), field, value: nasty }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('replace' as const), field, value: nastyString }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), field }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('add' as const), key: oddKey, value: nasty }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('data' as const), value: nasty }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'nest' as const }) },
  )
}

/** The frame's data as JSON text, with the mutation applied to the valid sample. */
function mutate (valid: Record<string, unknown>, mutation: Mutation): string {
  const entries = Object.entries(valid).map(([key, value]) => [key, toJson(value)] as [string, string])
  switch (mutation.kind) {
    case 'replace': {
      const kept = entries.filter(([key]) => key !== mutation.field)
      kept.push([mutation.field, toJson(mutation.value)])
      return `{${kept.map(([key, text]) => `${JSON.stringify(key)}:${text}`).join(',')}}`
    }
    case 'delete': return `{${entries.filter(([key]) => key !== mutation.field).map(([key, text]) => `${JSON.stringify(key)}:${text}`).join(',')}}`
    case 'add': return `{${[...entries, [mutation.key, toJson(mutation.value)]].map(([key, text]) => `${JSON.stringify(key)}:${text}`).join(',')}}`
    case 'data': return toJson(mutation.value)
    case 'nest': return `{"data":${toJson(valid)}}`
  }
}

// ---- what every reply must look like ------------------------------------------------------------------

const errorCodes = new Set<string>(ERROR_CODES)

function problemOf (entry: Received): string | null {
  const { frame } = entry
  const keys = Object.keys(frame).sort().join(',')
  const isObject = (value: unknown): boolean => typeof value === 'object' && value !== null && !Array.isArray(value)
  switch (frame.event) {
    case 'ack':
      return keys === 'data,event,id' && typeof frame.id === 'string' && isObject(frame.data) ? null : `malformed ack ${entry.text.slice(0, 200)}`
    case 'error': {
      if (keys !== 'error,event,id' && keys !== 'error,event') return `malformed error envelope ${entry.text.slice(0, 200)}`
      const error = frame.error as Record<string, unknown>
      const errorKeys = Object.keys(error)
      if (!errorCodes.has(error.code as string) || typeof error.message !== 'string') return `bad error ${entry.text.slice(0, 200)}`
      if (errorKeys.some((key) => !['code', 'message', 'details', 'event'].includes(key))) return `extra error keys ${entry.text.slice(0, 200)}`
      if (error.code === 'INTERNAL') return `an INTERNAL error: ${entry.text.slice(0, 200)}`
      return null
    }
    case 'pong': return keys === 'event,id' || keys === 'event' ? null : `malformed pong ${entry.text}`
    default:
      return pushes.has(frame.event as string) && isObject(frame.data) ? null : `unexpected frame ${entry.text.slice(0, 200)}`
  }
}

// ---- fixtures -----------------------------------------------------------------------------------------

const owner = await TestClient.session(node.wsUrl, node.token('owner', { name: 'Owner' }))
const watcher = await TestClient.session(node.wsUrl, node.token('watcher', { name: 'Watcher' }))
const shared = ((await owner.client.ack('room.create', { name: 'shared', type: 'GROUP', memberIds: ['fuzzer', 'watcher'] })).room as { id: string }).id
const message = ((await owner.client.ack('message.send', { roomId: shared, content: 'a message to aim at' })).message as { id: string }).id
const fuzzer = await RawClient.open(node.token('fuzzer', { name: 'Fuzzer' }))
await fuzzer.exchange(JSON.stringify({ event: 'room.create', id: 'own', data: { name: 'own', type: 'GROUP' } }), 'own')
const own = ((fuzzer.repliesTo('own')[0]?.frame.data as { room: { id: string } }).room).id
// A pattern's valid sample: an id by its name, and an emoji (one grapheme or a :shortcode:, issue 20).
const ids = { roomId: shared, messageId: message, replyToId: message, userId: 'watcher', emoji: '👍' }

let watcherRounds = 0
/** The node is up, the fuzzing socket is open, another user's socket still sends and receives. */
async function healthy (t: Test, what: string): Promise<void> {
  t.equal(fuzzer.closedWith, null, `${what}: the fuzzing socket is still open`)
  t.equal((await fetch(`${node.httpUrl}/health`)).status, 200, `${what}: the node answers`)
  const content = `still working ${++watcherRounds}`
  await watcher.client.ack('message.send', { roomId: shared, content })
  await t.resolves(owner.client.next((frame) => frame.event === 'message.new' && (frame.data?.message as { content: string }).content === content),
    `${what}: another user's message is delivered`)
  t.same(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeKeys, `${what}: Object.prototype is untouched`)
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  t.equal(Object.getPrototypeOf({}), Object.prototype)
}

interface Outcome { writes: string[], problems: string[] }

/** Frames stay under maxPayload (64 KiB): a larger one closes the socket with 1009, by design (gateway.test.ts). */
const MAX_FRAME = 60_000

/** Sends one frame, checks its reply and that a refusal wrote nothing; returns what went wrong. */
async function probe (text: string, before: RowCounts): Promise<{ outcome: Outcome, after: RowCounts }> {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {}
  const envelope = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? parsed as Record<string, unknown> : {}
  const id = typeof envelope.id === 'string' && envelope.id.length >= 1 && envelope.id.length <= 64 ? envelope.id : null
  const start = fuzzer.received.length
  const problems: string[] = []
  if (id !== null && /^f\d+$/.test(id)) uniqueIds.push(id)
  try {
    await fuzzer.exchange(text, id)
  } catch (error) {
    problems.push(`${(error as Error).message.slice(0, 300)} (socket closed with ${String(fuzzer.closedWith)})`)
    return { outcome: { writes: [], problems }, after: before }
  }
  const fresh = fuzzer.received.slice(start)
  for (const entry of fresh) {
    const problem = problemOf(entry)
    if (problem !== null) problems.push(problem)
  }
  let refused = true
  if (id !== null) {
    // Generated ids may repeat (fast-check's strings): count the replies that came after this frame.
    const replies = fresh.filter((entry) => entry.frame.id === id)
    if (replies.length !== 1) problems.push(`${replies.length} replies to ${text.slice(0, 200)}`)
    refused = replies[0]?.frame.event === 'error'
  } else {
    const unnamed = fresh.filter((entry) => entry.frame.event === 'error' && entry.frame.id === undefined)
    if (unnamed.length > 1) problems.push(`${unnamed.length} errors for one frame ${text.slice(0, 200)}`)
  }
  const after = await rowCounts(node)
  const writes: string[] = []
  if (refused) {
    for (const key of Object.keys(before) as Array<keyof RowCounts>) {
      if (after[key] !== before[key]) writes.push(`${key} ${before[key]} -> ${after[key]} for refused ${text.slice(0, 200)}`)
    }
  }
  return { outcome: { writes, problems }, after }
}

/**
 * Probes frames in turn (inside a property: a frame over MAX_FRAME is skipped), each against the row counts
 * the one before left; keeps what went wrong.
 */
async function prober (): Promise<{ failures: string[], passes: (text: string) => Promise<boolean> }> {
  let counts = await rowCounts(node)
  const failures: string[] = []
  const passes = async (text: string): Promise<boolean> => {
    fc.pre(Buffer.byteLength(text) <= MAX_FRAME)
    const { outcome, after } = await probe(text, counts)
    counts = after
    failures.push(...outcome.problems, ...outcome.writes)
    return outcome.problems.length === 0 && outcome.writes.length === 0
  }
  return { failures, passes }
}

/** Runs a property; a failure is reported with its seed and a shortened counterexample (they can be 60 kB). */
async function holds (t: Test, what: string, property: fc.IAsyncProperty<any>, numRuns: number): Promise<void> {
  const details = await fc.check(property, { numRuns, endOnFailure: true })
  const summary = details.failed
    ? `failed after ${details.numRuns} runs (seed ${details.seed}, path ${String(details.counterexamplePath)}): ${JSON.stringify(details.counterexample).slice(0, 400)} ${String(details.errorInstance).slice(0, 300)}`
    : `${details.numRuns} runs, ${details.numSkips} skipped`
  t.notOk(details.failed, `${what}: ${summary}`)
}

/** The numbered ids (f1, f2, …) of the frames the fuzzing socket sent: unique, unlike generated ones. */
const uniqueIds: string[] = []
function frameId (): string {
  return `f${++frameCounter}`
}

/** Every frame this file numbered got exactly one reply, also counting replies that came late. */
async function noLateReplies (t: Test): Promise<void> {
  await sleep(200)
  const counts = new Map<string, number>()
  for (const entry of fuzzer.received) if (typeof entry.frame.id === 'string') counts.set(entry.frame.id, (counts.get(entry.frame.id) ?? 0) + 1)
  const wrong = uniqueIds.filter((id) => counts.get(id) !== 1).slice(0, 5).map((id) => `${id}: ${counts.get(id) ?? 0}`)
  t.same(wrong, [], `each of ${uniqueIds.length} numbered frames got exactly one reply`)
}

/** After a run: nothing went wrong (the first few failures shown), no reply came late, the node is healthy. */
async function verdict (t: Test, failures: string[], expected: string, what: string): Promise<void> {
  t.same(failures.slice(0, 5), [], expected)
  await noLateReplies(t)
  await healthy(t, what)
}

t.test('every registered event, with mutated payloads', async (t) => {
  const events = [...gateway.registeredEvents()].filter(([name]) => name !== 'auth')
  t.ok(events.length >= 20, `${events.length} events from the registry`)
  const { failures, passes } = await prober()
  for (const [name, definition] of events) {
    const schema = JSON.parse(JSON.stringify(definition.schema)) as Schema
    const check = Compile(definition.schema)
    const fields = [...new Set([...Object.keys(schema.properties ?? {}), ...((schema.required ?? []) as string[])])]
    const base = (roomId: string): Record<string, unknown> => sample(schema, 'data', { ...ids, roomId }) as Record<string, unknown>
    t.ok(check.Check(base(shared)), `${name}: the sample built from its schema is valid`)
    await holds(t, name, fc.asyncProperty(fc.constantFrom(shared, own), mutations(fields), async (roomId, mutation) => {
      const data = mutate(base(roomId), mutation)
      const text = `{"event":${JSON.stringify(name)},"id":"${frameId()}","data":${data}}`
      return await passes(text)
    }), 80)
  }
  await verdict(t, failures, 'one well-formed reply per frame, never INTERNAL, nothing written for a refusal', 'after the events')
})

t.test('the envelope: random and mutated frames', async (t) => {
  const names = [...gateway.registeredEvents().keys()].filter((name) => name !== 'auth')
  const event = fc.oneof(fc.constantFrom(...names, 'ping'), fc.string({ maxLength: 70 }), fc.string({ unit: codeUnit, maxLength: 70 }), nasty)
  const idValue = fc.oneof(fc.constant(undefined), fc.constant('ID'), nasty, fc.string({ minLength: 65, maxLength: 80 }))
  const envelope = fc.record({ event, id: idValue, data: fc.oneof(fc.constant(undefined), nasty), extra: fc.option(fc.tuple(oddKey, nasty)) })
    .map(({ event, id, data, extra }) => {
      const parts: string[] = [`"event":${toJson(event)}`]
      if (id !== undefined) parts.push(`"id":${id === 'ID' ? `"${frameId()}"` : toJson(id)}`)
      if (data !== undefined) parts.push(`"data":${toJson(data)}`)
      if (extra !== null) parts.push(`${JSON.stringify(extra[0])}:${toJson(extra[1])}`)
      return `{${parts.join(',')}}`
    })
  const garbage = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: codeUnit, maxLength: 200 }),
    fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value)),
    fc.constantFrom('', 'null', '[]', '"event"', '{', '{"event":', '{"event":"ping"', '{"event":"ping"}}', '\u0000', '\ufeff{"event":"ping"}',
      ...PROTO_OBJECTS, '{"event":"ping","__proto__":{"event":"auth"}}'),
    fc.integer({ min: 2, max: 25_000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`),
  )
  const { failures, passes } = await prober()
  await holds(t, 'envelopes', fc.asyncProperty(fc.oneof(envelope, garbage), async (text) => {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {}
    // An auth frame is the one frame that closes a socket on purpose (a bad token, 4401).
    fc.pre(!(typeof parsed === 'object' && parsed !== null && (parsed as { event?: unknown }).event === 'auth'))
    return await passes(text)
  }), 600)
  await verdict(t, failures, 'one well-formed reply per frame with an id, at most one error otherwise, nothing written', 'after the envelopes')
})

t.test('auth frames: a reply or a 4401, never anything else', async (t) => {
  const schema = JSON.parse(JSON.stringify(gateway.registeredEvents().get('auth')?.schema)) as Schema
  const fields = Object.keys(schema.properties ?? {})
  const outcomes = new Map<string, number>()
  await holds(t, 'auth frames', fc.asyncProperty(mutations(fields), async (mutation) => {
    const client = await RawClient.open(node.token('auth-fuzzer'))
    const id = frameId()
    client.socket.send(`{"event":"auth","id":"${id}","data":${mutate({ token: node.token('auth-fuzzer') }, mutation)}}`)
    // No reply within 5 s is an outcome too: the property below judges it.
    await until('a reply or a close', () => client.closedWith !== null || client.repliesTo(id).length > 0, { timeoutMs: 5000, everyMs: 5 }).catch(() => {})
    await sleep(20)
    const replies = client.repliesTo(id)
    const outcome = client.closedWith !== null ? `closed ${client.closedWith}` : replies.length === 1 ? String(replies[0]?.frame.event === 'error' ? (replies[0]?.frame.error as { code: string }).code : 'ack') : `${replies.length} replies`
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
    client.socket.close()
    return (outcome === 'closed 4401' && replies.length === 0) || (replies.length === 1 && problemOf(replies[0] as Received) === null && client.closedWith === null)
  }), 30)
  t.ok(outcomes.size >= 1, `outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`)
  await healthy(t, 'after the auth frames')
})

t.teardown(() => {
  owner.client.close()
  watcher.client.close()
  fuzzer.socket.close()
})
