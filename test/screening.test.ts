import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { startNode, type TestNode } from './fixtures/server.js'
import { connect, groupRoom, messagesOf, uid, type Person } from './fixtures/chat.js'
import { rest } from './fixtures/rooms.js'
import { sampleValue, scrape } from './fixtures/prometheus.js'
import type { Frame } from './fixtures/ws-client.js'
import { resolveConfig, type ModerationRequest, type ModerationVerdict } from '../plugins/core/config.js'
import { noopMetrics } from '../plugins/core/metrics.js'
import { createScreening } from '../plugins/messaging/screening.js'

// Content screening (protocol 11.3): the blockedWords option and the host's moderateMessage hook look at
// every user's send and edit, over WebSocket and REST, before anything is written.

const FAST = { rate: 10000, burst: 10000 }
const BLOCKED = ['ass', 'école', 'spam']

/** A promise and the function that settles it (Node 20 has no Promise.withResolvers). */
function signal (): { promise: Promise<void>, resolve: () => void } {
  let resolve = (): void => {}
  const promise = new Promise<void>((settle) => { resolve = settle })
  return { promise, resolve }
}

/** The gate a test holds a GATED send's verdict behind, and the signal that the hook was asked. */
let gate = signal()
let gatedAsked = signal()
const asked: ModerationRequest[] = []

// The host's hook, steered by markers in the content.
async function moderateMessage (request: ModerationRequest): Promise<ModerationVerdict> {
  asked.push(request)
  const { content } = request
  if (content.includes('GATED')) {
    gatedAsked.resolve()
    await gate.promise
    return { action: 'allow' }
  }
  if (content.includes('REJECT')) return { action: 'reject', reason: 'off topic' }
  if (content.includes('REPLACE')) return { action: 'replace', content: content.replace('REPLACE', '[removed]') }
  if (content.includes('EMPTY')) return { action: 'replace', content: '   ' }
  if (content.includes('UNKNOWN')) return { action: 'shrug' } as unknown as ModerationVerdict
  if (content.includes('THROW')) throw new Error('the classifier is down')
  return { action: 'allow' }
}

const node = await startNode(t, {
  options: {
    blockedWords: BLOCKED,
    // A synchronous throw is a failure too: the hook may be a plain function.
    moderateMessage: (request) => request.content.includes('SYNCTHROW') ? (() => { throw new Error('sync') })() : moderateMessage(request),
    // Long enough never to run out here: the slow hook's timeout has a node of its own below.
    moderationTimeoutMs: 60000,
    rateLimits: { send: FAST, other: FAST, userSend: FAST },
  },
})
const api = node.app.chat.config.apiPrefix

function codeOf (reply: Frame): string {
  return reply.event === 'ack' ? 'ack' : reply.error?.code ?? 'none'
}

async function contentsOf (person: Person, roomId: string): Promise<string[]> {
  const page = await person.client.ack('history.fetch', { roomId })
  return (page.messages as Array<{ content: string }>).map((message) => message.content)
}

async function metric (target: TestNode, name: string, labels: Record<string, string>): Promise<number> {
  return sampleValue(await scrape(target.httpUrl), name, labels)
}

/** A room of two people, both told of it. */
async function pair (target: TestNode, prefix: string): Promise<{ alice: Person, bob: Person, roomId: string }> {
  const alice = await connect(target, uid(`${prefix}-a`))
  const bob = await connect(target, uid(`${prefix}-b`))
  const roomId = await groupRoom(alice, [bob.id])
  await bob.client.next((frame) => frame.event === 'room.added')
  t.teardown(() => { alice.client.close(); bob.client.close() })
  return { alice, bob, roomId }
}

t.test('blocked words: whole words, any case, any script, full-width and decomposed forms; WebSocket and REST', async (t) => {
  const { alice, roomId } = await pair(node, 'words')
  const before = await metric(node, 'chat_messages_screened_total', { action: 'blocked' })
  for (const content of ['a class act', 'the spammer', 'écoles', 'Assez']) {
    t.equal(codeOf(await alice.client.request('message.send', { roomId, content })), 'ack', `"${content}" holds a blocked word only inside a longer word`)
  }
  for (const content of ['what an ass!', 'ÉCOLE fermée', 'ＳＰＡＭ here', 'une e\u0301cole', 'Spam.']) {
    const reply = await alice.client.request('message.send', { roomId, content })
    t.equal(codeOf(reply), 'FORBIDDEN', `"${content}" is refused`)
    t.same(reply.error?.details, { reason: 'blocked word' }, 'details.reason says why')
    for (const word of BLOCKED) t.notMatch(reply.error?.message ?? '', word, 'the message does not echo the list')
  }
  const viaRest = await rest(node, alice.token, 'POST', `${api}/rooms/${roomId}/messages`, { content: 'more SPAM' })
  t.equal(viaRest.status, 403)
  t.match(viaRest.body, { code: 'FORBIDDEN', details: { reason: 'blocked word' } }, 'REST says the same, details included')
  t.equal((await rest(node, alice.token, 'POST', `${api}/rooms/${roomId}/messages`, { content: 'classy' })).status, 201)
  t.same(await contentsOf(alice, roomId), ['a class act', 'the spammer', 'écoles', 'Assez', 'classy'], 'nothing refused was written')
  t.equal(await metric(node, 'chat_messages_screened_total', { action: 'blocked' }) - before, 6, 'each refusal counted')
})

t.test('the hook: allow, reject with its reason, replace (ack, push and history carry the replacement)', async (t) => {
  const { alice, bob, roomId } = await pair(node, 'hook')
  const rejectedBefore = await metric(node, 'chat_messages_screened_total', { action: 'reject' })
  const replacedBefore = await metric(node, 'chat_messages_screened_total', { action: 'replace' })
  asked.length = 0
  const allowed = await alice.client.ack('message.send', { roomId, content: '  hello  ' })
  t.equal((allowed.message as { content: string }).content, 'hello')
  t.same(asked, [{ tenant: '', userId: alice.id, roomId, content: 'hello' }], 'the hook is asked with the tenant, user, room and trimmed content')

  const rejected = await alice.client.request('message.send', { roomId, content: 'REJECT me' })
  t.equal(codeOf(rejected), 'FORBIDDEN')
  t.same(rejected.error?.details, { reason: 'off topic' }, 'details.reason is the hook\'s reason')
  const rejectedRest = await rest(node, alice.token, 'POST', `${api}/rooms/${roomId}/messages`, { content: 'REJECT again' })
  t.match(rejectedRest, { status: 403, body: { code: 'FORBIDDEN', details: { reason: 'off topic' } } })

  const replaced = await alice.client.ack('message.send', { roomId, content: 'please REPLACE this' })
  t.equal((replaced.message as { content: string }).content, 'please [removed] this', 'the ack carries the replacement')
  const [pushed] = await messagesOf(bob.client, roomId, 2).then((frames) => frames.slice(1))
  t.equal((pushed?.data?.message as { content: string }).content, 'please [removed] this', 'so does the push')
  const replacedRest = await rest(node, alice.token, 'POST', `${api}/rooms/${roomId}/messages`, { content: 'REPLACE over REST' })
  t.equal(replacedRest.status, 201)
  t.equal(replacedRest.body.message.content, '[removed] over REST')
  t.same(await contentsOf(bob, roomId), ['hello', 'please [removed] this', '[removed] over REST'], 'history holds what was stored; nothing of the rejected sends')
  t.equal(await metric(node, 'chat_messages_screened_total', { action: 'reject' }) - rejectedBefore, 2)
  t.equal(await metric(node, 'chat_messages_screened_total', { action: 'replace' }) - replacedBefore, 2)
})

t.test('edits are screened too, over WebSocket and REST', async (t) => {
  const { alice, bob, roomId } = await pair(node, 'edit')
  const message = (await alice.client.ack('message.send', { roomId, content: 'original' })).message as { id: string }
  asked.length = 0
  const blocked = await alice.client.request('message.edit', { messageId: message.id, content: 'you ass' })
  t.equal(codeOf(blocked), 'FORBIDDEN')
  t.same(blocked.error?.details, { reason: 'blocked word' })
  t.same(asked, [], 'a blocked word refuses before the hook is asked')
  const rejected = await alice.client.request('message.edit', { messageId: message.id, content: 'REJECT this edit' })
  t.same(rejected.error?.details, { reason: 'off topic' })
  t.match(asked.at(-1), { userId: alice.id, roomId, content: 'REJECT this edit', messageId: message.id }, 'the hook is told which message is edited')
  const blockedRest = await rest(node, alice.token, 'PATCH', `${api}/messages/${message.id}`, { content: 'école' })
  t.match(blockedRest, { status: 403, body: { code: 'FORBIDDEN', details: { reason: 'blocked word' } } })
  t.same(await contentsOf(bob, roomId), ['original'], 'the refused edits changed nothing')

  const edited = await alice.client.ack('message.edit', { messageId: message.id, content: 'REPLACE edited' })
  t.equal((edited.message as { content: string }).content, '[removed] edited')
  const update = await bob.client.next((frame) => frame.event === 'message.updated')
  t.equal((update.data?.message as { content: string }).content, '[removed] edited', 'the push carries the replacement')
  t.same(await contentsOf(bob, roomId), ['[removed] edited'])
})

t.test('a hook that throws, or answers what cannot be used, refuses the send and writes nothing', async (t) => {
  const { alice, roomId } = await pair(node, 'broken')
  const failures = async (reason: string): Promise<number> => await metric(node, 'chat_moderation_hook_failures_total', { reason })
  const [errorsBefore, invalidBefore] = [await failures('error'), await failures('invalid')]
  for (const content of ['THROW', 'SYNCTHROW']) {
    const reply = await alice.client.request('message.send', { roomId, content })
    t.equal(codeOf(reply), 'UNAVAILABLE', `${content}: a failing hook is a refusal to retry later, not a verdict`)
    t.same(reply.error?.details, { reason: 'moderation unavailable' })
  }
  t.match(await rest(node, alice.token, 'POST', `${api}/rooms/${roomId}/messages`, { content: 'THROW' }), { status: 503, body: { code: 'UNAVAILABLE' } })
  for (const content of ['EMPTY', 'UNKNOWN']) {
    const reply = await alice.client.request('message.send', { roomId, content })
    t.equal(codeOf(reply), 'INTERNAL', `${content}: a verdict that cannot be used is the hook's bug`)
    t.same(reply.error?.details, { reason: 'moderation failed' })
  }
  t.same(await contentsOf(alice, roomId), [], 'nothing was written')
  t.equal(await failures('error') - errorsBefore, 3, 'throws counted')
  t.equal(await failures('invalid') - invalidBefore, 2, 'unusable verdicts counted')
})

t.test('a slow hook holds only its own send: other sends in the room are acked meanwhile', async (t) => {
  const { alice, bob, roomId } = await pair(node, 'slow')
  const otherRoom = await groupRoom(alice, [])
  gate = signal()
  gatedAsked = signal()
  let gatedAnswered = false
  const gated = alice.client.request('message.send', { roomId, content: 'GATED' }).finally(() => { gatedAnswered = true })
  await gatedAsked.promise
  // While the hook has not answered: another member's sends into the same room, and the same sender's
  // send into another room, are written (none of them waits behind it in a group-commit batch).
  const others = await Promise.all([
    bob.client.ack('message.send', { roomId, content: 'bob 1' }),
    bob.client.ack('message.send', { roomId, content: 'bob 2' }),
    rest(node, bob.token, 'POST', `${api}/rooms/${roomId}/messages`, { content: 'bob over REST' }),
    alice.client.ack('message.send', { roomId: otherRoom, content: 'elsewhere' }),
  ])
  t.equal(others.length, 4, 'all acked')
  t.equal(gatedAnswered, false, 'the gated send is still waiting for its verdict')
  gate.resolve()
  const reply = await gated
  t.equal(codeOf(reply), 'ack', 'then it is written')
  t.equal((reply.data?.message as { seq: number }).seq, 4, 'after the sends acked meanwhile')
  t.same(await contentsOf(bob, roomId), ['bob 1', 'bob 2', 'bob over REST', 'GATED'])
})

t.test('the server\'s SYSTEM messages are not screened; a service\'s send as a named user is', async (t) => {
  const tenant = uid('tenant')
  const owner = await connect(node, uid('owner'), { tenant })
  t.teardown(() => owner.client.close())
  const roomId = await groupRoom(owner, [])
  asked.length = 0
  const system = await node.app.chat.sendSystemMessage(roomId, 'spam REJECT notice')
  t.equal(system.content, 'spam REJECT notice', 'the host\'s own words are stored as given')
  t.same(asked, [], 'the hook is not asked for them')
  const service = node.token(uid('svc'), { tenant, permissions: ['chats:service'] })
  const systemRest = await rest(node, service, 'POST', `/api/service/rooms/${roomId}/messages`, { content: 'spam notice' })
  t.equal(systemRest.status, 201, 'nor for a service\'s SYSTEM message')
  const asUser = await rest(node, service, 'POST', `/api/service/rooms/${roomId}/messages`, { type: 'TEXT', senderId: owner.id, content: 'buy spam' })
  t.match(asUser, { status: 403, body: { code: 'FORBIDDEN', details: { reason: 'blocked word' } } }, 'a send as a user is that user\'s words')
  const replaced = await rest(node, service, 'POST', `/api/service/rooms/${roomId}/messages`, { type: 'TEXT', senderId: owner.id, content: 'REPLACE it' })
  t.equal(replaced.body.message.content, '[removed] it')
  t.match(asked.at(-1), { tenant, userId: owner.id, roomId })
})

t.test('a hook past moderationTimeoutMs refuses that send; the room goes on', async (t) => {
  let hung = signal()
  const slow = await startNode(t, {
    options: {
      moderationTimeoutMs: 300,
      moderateMessage: (request) => {
        if (!request.content.includes('HANG')) return { action: 'allow' }
        hung.resolve()
        return new Promise<ModerationVerdict>(() => {})
      },
    },
  })
  const { alice, bob, roomId } = await pair(slow, 'timeout')
  const before = await metric(slow, 'chat_moderation_hook_failures_total', { reason: 'timeout' })
  hung = signal()
  const hanging = alice.client.request('message.send', { roomId, content: 'HANG' })
  await hung.promise
  t.equal(codeOf(await bob.client.request('message.send', { roomId, content: 'meanwhile' })), 'ack', 'another member\'s send is written')
  const reply = await hanging
  t.equal(codeOf(reply), 'UNAVAILABLE')
  t.same(reply.error?.details, { reason: 'moderation unavailable' })
  t.equal(codeOf(await alice.client.request('message.send', { roomId, content: 'after' })), 'ack', 'the sender\'s next send goes through')
  t.same(await contentsOf(bob, roomId), ['meanwhile', 'after'], 'nothing of the timed-out send was written')
  t.equal(await metric(slow, 'chat_moderation_hook_failures_total', { reason: 'timeout' }) - before, 1)
})

t.test('options: blockedWords is checked at start; with nothing configured there is no screening at all', async (t) => {
  t.throws(() => resolveConfig({ blockedWords: ['  '] }), /blockedWords/, 'a blank word is refused')
  t.throws(() => resolveConfig({ moderationTimeoutMs: 1 }), /moderationTimeoutMs/)
  t.equal(resolveConfig({}).moderationTimeoutMs, 1000, 'the default timeout')
  const host = (config: ReturnType<typeof resolveConfig>, hooks: Record<string, unknown> = {}): FastifyInstance =>
    ({ chatConfig: config, chatHooks: hooks, chatMetrics: noopMetrics(), log: node.app.log }) as unknown as FastifyInstance
  t.equal(createScreening(host(resolveConfig({}))), null, 'neither option: null, so the send path skips it')
  const user = { id: 'u', tenant: '', name: null, avatar: null, roles: [], permissions: [], exp: null }
  const words = createScreening(host(resolveConfig({ blockedWords: ['c++', 'a.b'] })))
  t.equal(words?.screen(user, 'r', 'I like c'), 'I like c', 'without a hook the answer is synchronous')
  t.throws(() => words?.screen(user, 'r', 'I like C++!'), { code: 'FORBIDDEN' }, 'metacharacters are matched as themselves')
  t.equal(words?.screen(user, 'r', 'axb'), 'axb')
})
