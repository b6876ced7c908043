import t, { type Test } from 'tap'
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core'
import { CHROMIUM, CHROMIUM_ARGS, startDemoServer } from './fixtures/demo-server.js'
import { dropSockets } from './fixtures/chat-client.js'
import { uid } from './fixtures/chat.js'
import { rest, storeMessage } from './fixtures/rooms.js'
import { spawnServer } from './fixtures/process.js'
import { freshDatabaseUrl } from './fixtures/database.js'
import { until } from './fixtures/timing.js'

// The demo page, served by the standalone server, driven in Debian's chromium: two contexts are two users.
const server = await startDemoServer(t, { presenceGraceMs: 300 })
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
t.teardown(() => browser.close())

const WAIT = { timeout: 20000 }
// Three pages of chromium and a dozen steps each: up to 75 s on a loaded 2-core machine, over half the
// 120 s every file gets (.taprc); this file alone is given more.
t.setTimeout(300_000)

interface User {
  id: string
  name: string
  context: BrowserContext
  page: Page
  /** Every alert/confirm/prompt the page opened. */
  dialogs: string[]
  /** Uncaught errors of the page. */
  errors: string[]
  /** What the page logged as errors (failed requests, the client's own). */
  consoleErrors: string[]
}

async function openAs (id: string, name: string): Promise<User> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } })
  // Every text the notice line shows (it clears itself after 4 s), kept for a failure's diagnostics.
  await context.addInitScript({
    content: `window.testNotices = []
    window.addEventListener('DOMContentLoaded', () => {
      const notice = document.getElementById('notice')
      new MutationObserver(() => { if (notice.textContent) window.testNotices.push(notice.textContent) })
        .observe(notice, { childList: true, characterData: true, subtree: true })
    })`,
  })
  const page = await context.newPage()
  const user: User = { id, name, context, page, dialogs: [], errors: [], consoleErrors: [] }
  page.on('dialog', (dialog) => {
    user.dialogs.push(dialog.message())
    void dialog.dismiss()
  })
  page.on('pageerror', (error) => { user.errors.push(error.message) })
  page.on('console', (entry) => { if (entry.type() === 'error') user.consoleErrors.push(`${entry.text()} ${entry.location().url}`) })
  await page.goto(`${server.httpUrl}/?token=${encodeURIComponent(server.token(id, { name }))}`)
  await page.locator('#status', { hasText: 'open' }).waitFor(WAIT)
  return user
}

function room (user: User, name: string) {
  return user.page.locator('#rooms .room', { has: user.page.locator('.room-name', { hasText: name }) })
}

function message (user: User, text: string) {
  return user.page.locator('#messages .message', { has: user.page.locator('.content', { hasText: text }) })
}

async function send (user: User, text: string): Promise<void> {
  await user.page.locator('#message-input').fill(text)
  await user.page.locator('#message-input').press('Enter')
}

const a = uid('alice')
const b = uid('bob')
let alice: User
let bob: User
let team = ''

t.test('the page is served at / by the standalone server, the suite\'s routes next to it', async (t) => {
  const page = await fetch(`${server.httpUrl}/`)
  t.equal(page.status, 200)
  t.match(await page.text(), /<script type="module" src="app.js">/)
  const client = await fetch(`${server.httpUrl}/client/index.js`)
  t.equal(client.status, 200)
  t.match(client.headers.get('content-type'), /javascript/)
  t.same(await (await fetch(`${server.httpUrl}/demo-config.json`)).json(), { wsPath: '/ws' })
  t.equal((await fetch(`${server.httpUrl}/health`)).status, 200, 'the suite\'s routes still answer')
  const missing = await fetch(`${server.httpUrl}/api/nowhere`, { headers: { authorization: `Bearer ${server.token(a)}` } })
  t.equal(missing.status, 404, 'an unknown URL is still a 404, not a file')
})

t.test('two users chat in real time, with typing, presence, replies, reactions, edits and deletes', async (t) => {
  alice = await openAs(a, 'Alice')
  bob = await openAs(b, 'Bob')
  t.equal(await alice.page.locator('#me').textContent(), 'Alice')

  await alice.page.locator('#new-room-name').fill('team')
  await alice.page.locator('#new-room-members').fill(b)
  await alice.page.locator('#create-room button').click()
  await alice.page.locator('#room-title', { hasText: 'team' }).waitFor(WAIT)
  team = await room(alice, 'team').getAttribute('data-room-id') ?? ''
  t.ok(team.length > 0, 'alice created and opened the room')

  await room(bob, 'team').waitFor(WAIT)
  await room(bob, 'team').click()
  await bob.page.locator('#room-title', { hasText: 'team' }).waitFor(WAIT)
  await t.resolves(bob.page.locator('#members li', { hasText: 'Alice' }).locator('.presence-dot[data-status="online"]').waitFor(WAIT), 'bob sees the members with their presence')

  await alice.page.locator('#message-input').pressSequentially('hel')
  await t.resolves(bob.page.locator('#typing', { hasText: 'Alice is typing' }).waitFor(WAIT), 'bob sees alice typing')
  await alice.page.locator('#message-input').pressSequentially('lo bob')
  await alice.page.locator('#message-input').press('Enter')
  await message(bob, 'hello bob').waitFor(WAIT)
  t.equal(await bob.page.locator('#typing').textContent(), '', 'her message ends the typing indicator')
  t.equal(await message(bob, 'hello bob').locator('.sender').textContent(), 'Alice')

  await send(bob, 'hi alice')
  await t.resolves(message(alice, 'hi alice').waitFor(WAIT), 'alice gets bob\'s answer')

  // Reply, react, edit, delete: through the message's action buttons.
  await message(bob, 'hello bob').hover()
  await message(bob, 'hello bob').locator('.action-reply').click()
  await bob.page.locator('#composer-context', { hasText: 'Replying to Alice' }).waitFor(WAIT)
  await send(bob, 'a reply')
  await t.resolves(message(alice, 'a reply').locator('.reply-quote', { hasText: 'hello bob' }).waitFor(WAIT), 'the reply quotes the message it answers')

  await message(alice, 'hi alice').hover()
  await message(alice, 'hi alice').locator('.action-react', { hasText: '👍' }).click()
  await t.resolves(message(bob, 'hi alice').locator('.reaction', { hasText: '👍 1' }).waitFor(WAIT), 'bob sees alice\'s reaction')

  await message(alice, 'hello bob').hover()
  await message(alice, 'hello bob').locator('.action-edit').click()
  await alice.page.locator('#message-input').fill('hello bob, edited')
  await alice.page.locator('#message-input').press('Enter')
  await t.resolves(message(bob, 'hello bob, edited').locator('.edited').waitFor(WAIT), 'bob sees the edit')

  await send(alice, 'to be deleted')
  await message(bob, 'to be deleted').waitFor(WAIT)
  await message(alice, 'to be deleted').hover()
  await message(alice, 'to be deleted').locator('.action-delete').click()
  await bob.page.locator('#messages .message.deleted').waitFor(WAIT)
  t.equal(await message(bob, 'to be deleted').count(), 0, 'the deleted message lost its content for bob')

  // Presence: the direct room shows bob's dot.
  await alice.page.locator('#direct-user').fill(b)
  await alice.page.locator('#open-direct button').click()
  await alice.page.locator('#rooms .room[data-type="DIRECT"] .presence-dot[data-status="online"]').waitFor(WAIT)
  t.equal(await alice.page.locator('#rooms .room[data-type="DIRECT"] .room-name').textContent(), 'Bob')
  await room(alice, 'team').click()
  t.same([...alice.errors, ...bob.errors], [], 'no page errors')
})

t.test('message text is shown as text, never as HTML', async (t) => {
  const attack = '<img src=x onerror=alert(1)>'
  await send(alice, attack)
  await message(bob, attack).waitFor(WAIT)
  t.equal(await message(bob, attack).locator('.content').textContent(), attack, 'the markup is visible as text')
  t.ok(await message(bob, attack).isVisible())
  t.equal(await bob.page.locator('#messages img').count(), 0, 'no element was made from it')
  t.equal(await alice.page.locator('#messages img').count(), 0)
  await bob.page.waitForTimeout(300)
  t.same(bob.dialogs, [], 'no dialog fired for bob')
  t.same(alice.dialogs, [], 'no dialog fired for alice')
})

t.test('bob goes offline and gets what he missed on return', async (t) => {
  // His page marked the room read as messages came in; let the last mark land before he leaves.
  await until('bob has read everything', async () => {
    const response = await fetch(`${server.httpUrl}/api/rooms`, { headers: { authorization: `Bearer ${server.token(b)}` } })
    const { rooms } = await response.json() as { rooms: Array<{ id: string, unreadCount: number }> }
    return rooms.find((r) => r.id === team)?.unreadCount === 0
  }, { timeoutMs: 10000, everyMs: 50 })
  await bob.context.close()
  await t.resolves(alice.page.locator('#rooms .room[data-type="DIRECT"] .presence-dot[data-status="offline"]').waitFor(WAIT), 'alice sees bob go offline')
  await send(alice, 'while you were away 1')
  await send(alice, 'while you were away 2')
  await message(alice, 'while you were away 2').locator('.sender').waitFor(WAIT)

  bob = await openAs(b, 'Bob')
  await t.resolves(alice.page.locator('#rooms .room[data-type="DIRECT"] .presence-dot[data-status="online"]').waitFor(WAIT), 'alice sees bob back online')
  t.equal(await room(bob, 'team').locator('.unread').textContent(), '2', 'the room shows his 2 unread messages')
  await room(bob, 'team').click()
  await message(bob, 'while you were away 1').waitFor(WAIT)
  await message(bob, 'while you were away 2').waitFor(WAIT)
  t.ok(await room(bob, 'team').locator('.unread').isHidden(), 'opening the room reads it')

  // A dropped connection while the page stays open: the client reconnects and resumes.
  dropSockets(server, b)
  await send(alice, 'sent during the drop')
  await message(bob, 'sent during the drop').waitFor(WAIT)
  await bob.page.locator('#status', { hasText: 'open' }).waitFor(WAIT)
  await bob.page.waitForTimeout(300)
  t.equal(await message(bob, 'sent during the drop').count(), 1, 'exactly once')
  t.same([...alice.errors, ...bob.errors], [], 'no page errors')
})

t.test('older history loads when scrolling up', async (t) => {
  for (let index = 1; index <= 45; index += 1) await storeMessage(server, team, a, `old ${index}`)
  const reader = await openAs(b, 'Bob')
  await room(reader, 'team').click()
  const items = reader.page.locator('#messages .message')
  await message(reader, 'old 45').waitFor(WAIT)
  const first = await items.count()
  t.equal(first, 30, 'one page at first')
  await reader.page.locator('#messages').evaluate((list) => { list.scrollTop = 0 })
  await reader.page.waitForFunction(`document.querySelectorAll('#messages .message').length > ${first}`, undefined, WAIT)
  t.ok(await items.count() > first, 'an older page came in above')
  await reader.page.locator('#messages').evaluate((list) => { list.scrollTop = 0 })
  await reader.page.locator('#messages .history-end').waitFor(WAIT)
  await t.resolves(message(reader, 'hello bob, edited').waitFor(WAIT), 'scrolled back to the beginning')
  await reader.context.close()
})

t.test('moderation from the page: bob reports a message to alice, who owns the room; alice bans bob', async (t) => {
  await room(alice, 'team').click()
  await room(bob, 'team').click()
  await message(bob, 'sent during the drop').hover()
  t.equal(await message(bob, 'hello bob, edited').locator('.action-pin').count(), 0, 'a MEMBER has no pin in his menu')
  await message(bob, 'sent during the drop').locator('.action-report').click()
  await t.resolves(alice.page.locator('#notice', { hasText: 'report: "sent during the drop"' }).waitFor(WAIT), 'alice, the OWNER, is told of the report live')
  t.equal(await bob.page.locator('#notice', { hasText: 'report:' }).count(), 0, 'bob, a MEMBER, is not')

  const bobInList = alice.page.locator('#members li[data-user-id="' + b + '"]')
  await bobInList.waitFor(WAIT)
  t.equal(await bob.page.locator('#members .action-ban').count(), 0, 'bob has no moderator menu')
  await bobInList.locator('.action-ban').click()
  await t.resolves(bob.page.locator('#notice', { hasText: 'you were banned from team' }).waitFor(WAIT), 'bob is told he was banned')
  await t.resolves(room(bob, 'team').waitFor({ state: 'detached', timeout: 20000 }), 'the room leaves his list')
  await t.resolves(bobInList.waitFor({ state: 'detached', timeout: 20000 }), 'and alice\'s member list')
  await bob.page.locator('#join-room-id').fill(team)
  await bob.page.locator('#join-room button').click()
  await t.resolves(bob.page.locator('#notice', { hasText: 'banned' }).waitFor(WAIT), 'joining again is refused: banned')
  t.equal(await room(bob, 'team').count(), 0, 'he is not back in')
  t.same([...alice.errors, ...bob.errors], [], 'no page errors')
})

/** What a page shows and logged: printed when a step fails, so that a CI failure explains itself. */
async function diagnose (user: User): Promise<Record<string, unknown>> {
  if (user.page.isClosed()) return { user: user.id, page: 'closed' }
  const text = async (selector: string) => await user.page.locator(selector).innerText({ timeout: 2000 })
    .then((shown) => shown.replace(/\s+/g, ' ').trim().slice(0, 500), (error: Error) => `(${error.message.split('\n')[0]})`)
  return {
    user: user.id,
    status: await text('#status'),
    notice: await text('#notice'),
    notices: await user.page.evaluate('window.testNotices').catch(() => []),
    roomTitle: await text('#room-title'),
    rooms: await user.page.locator('#rooms .room').allInnerTexts().then((rooms) => rooms.map((shown) => shown.replace(/\s+/g, ' ')), () => []),
    thread: await user.page.locator('#thread').isVisible().then((visible) => visible ? text('#thread') : 'closed', () => 'unknown'),
    consoleErrors: user.consoleErrors,
    pageErrors: user.errors,
  }
}

/** Waits (generously) for a locator to reach a state; on failure prints every page's diagnostics and stops the test. */
async function see (t: Test, users: User[], what: string, locator: Locator, state: 'visible' | 'hidden' | 'detached' = 'visible'): Promise<void> {
  try {
    await locator.waitFor({ state, timeout: 30000 })
  } catch (error) {
    t.fail(what, { error: (error as Error).message.split('\n')[0], pages: await Promise.all(users.map(diagnose)) })
    throw error
  }
  t.pass(what)
}

/**
 * Clicks a message's action button: actions show while the message is hovered, and a message that arrives
 * meanwhile redraws the list, so hover and click are tried again until the click lands.
 */
async function clickAction (users: User[], item: Locator, action: string): Promise<void> {
  const deadline = Date.now() + 30000
  for (;;) {
    try {
      await item.hover({ timeout: 5000 })
      await item.locator(action).click({ timeout: 3000 })
      return
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`could not click ${action}: ${(error as Error).message.split('\n')[0]}\n${JSON.stringify(await Promise.all(users.map(diagnose)), null, 2)}`)
      }
    }
  }
}

t.test('two fresh users: a mention (badge, highlight), a thread (reply in it, live count and panel), the room directory and search', async (t) => {
  // New users and pages: nothing of the tests above (bob's ban, rate limits, sockets) carries over.
  // Rooms and memberships are made over REST before the pages open: the page's room form is tested above.
  const c = uid('carol')
  const d = uid('dave')
  const created = await rest(server, server.token(c, { name: 'Carol' }), 'POST', '/api/rooms', { name: 'ideas', type: 'GROUP', memberIds: [d] })
  t.equal(created.status, 201, 'carol made the room over REST, with dave in it')
  const ideas = created.body.room.id as string
  const carol = await openAs(c, 'Carol')
  const dave = await openAs(d, 'Dave')
  t.teardown(async () => { await carol.context.close(); await dave.context.close() })
  const both = [carol, dave]
  // A word no other message has, for the search at the end.
  const jam = `marmalade${Math.random().toString(36).slice(2, 8)}`

  // A mention: dave's room shows it in a badge, and the message stands out when he opens the room.
  await see(t, both, 'dave has the room', room(dave, 'ideas'))
  await room(carol, 'ideas').click()
  await see(t, both, 'carol opened the room', carol.page.locator('#room-title', { hasText: 'ideas' }))
  await send(carol, `@${d} look at the plan`)
  await see(t, both, 'carol\'s message is sent', message(carol, 'look at the plan').locator('.sender'))
  await see(t, both, 'dave\'s room shows one unread mention', room(dave, 'ideas').locator('.mention-count', { hasText: '@1' }))
  await room(dave, 'ideas').click()
  await see(t, both, 'the message that mentions dave stands out', dave.page.locator('#messages .message.mentions-me', { hasText: 'look at the plan' }))
  await see(t, both, 'opening the room reads the mention', room(dave, 'ideas').locator('.mention-count'), 'hidden')
  t.equal(await carol.page.locator('#messages .message.mentions-me').count(), 0, 'carol\'s own message does not stand out for her')

  // A thread: dave replies in the thread of carol's message; carol sees the count, opens it, answers.
  await clickAction(both, message(dave, 'look at the plan'), '.action-thread')
  await see(t, both, 'the thread panel opens on the root', dave.page.locator('#thread-root .message', { hasText: 'look at the plan' }))
  await see(t, both, 'an empty thread says so', dave.page.locator('#thread-messages .history-end', { hasText: 'no replies yet' }))
  await dave.page.locator('#thread-input').fill(`a first thought about ${jam}`)
  await dave.page.locator('#thread-input').press('Enter')
  await see(t, both, 'dave\'s reply is in his thread panel', dave.page.locator('#thread-messages .message .sender', { hasText: 'Dave' }))
  await see(t, both, 'carol sees the root\'s count go to 1, live', message(carol, 'look at the plan').locator('.thread-link', { hasText: '1 reply' }))
  t.equal(await message(carol, jam).count(), 0, 'the reply is not in carol\'s timeline')
  t.equal(await message(dave, jam).count(), 0, 'nor in dave\'s')
  await message(carol, 'look at the plan').locator('.thread-link').click()
  await see(t, both, 'carol opens the thread and reads the reply', carol.page.locator('#thread-messages .message', { hasText: `a first thought about ${jam}` }))
  await carol.page.locator('#thread-input').fill('a second thought')
  await carol.page.locator('#thread-input').press('Enter')
  await see(t, both, 'dave gets carol\'s reply in his open panel, live', dave.page.locator('#thread-messages .message', { hasText: 'a second thought' }))
  await see(t, both, 'his panel counts 2 replies', dave.page.locator('#thread-title', { hasText: '2 replies' }))
  await see(t, both, 'and so does the root in his timeline', message(dave, 'look at the plan').locator('.thread-link', { hasText: '2 replies' }))
  t.equal(await dave.page.locator('#messages .message', { hasText: 'a second thought' }).count(), 0, 'the timeline still has no reply')

  // A page opened afresh reads the count from the server, and the timeline without replies.
  const later = await openAs(c, 'Carol')
  t.teardown(() => later.context.close())
  await room(later, 'ideas').click()
  await see(t, [later, dave], 'a fresh page shows the root with 2 replies', message(later, 'look at the plan').locator('.thread-link', { hasText: '2 replies' }))
  t.equal(await later.page.locator('#messages .message', { hasText: 'thought' }).count(), 0, 'and no reply in the timeline')
  await later.context.close()

  // The room directory: carol's public room (made over REST) is found and joined from dave's page.
  const lobby = uid('lobby')
  t.equal((await rest(server, server.token(c, { name: 'Carol' }), 'POST', '/api/rooms', { name: lobby, type: 'GROUP' })).status, 201)
  await dave.page.locator('#find-rooms-query').fill(lobby.slice(0, 8))
  await dave.page.locator('#find-rooms button').click()
  const found = dave.page.locator('#directory .directory-room', { hasText: lobby })
  await see(t, both, 'the room browser finds the public room', found)
  await found.locator('.directory-join').click()
  await see(t, both, 'and joins and opens it', dave.page.locator('#room-title', { hasText: lobby }))
  await see(t, both, 'opening another room closes the thread panel', dave.page.locator('#thread'), 'hidden')

  // Search: a word of the thread reply and of a timeline message; each result opens where it is.
  await send(carol, `${jam} is on the agenda`)
  await see(t, both, 'carol\'s message is sent', message(carol, `${jam} is on the agenda`).locator('.sender'))
  await dave.page.locator('#search-query').fill(jam)
  await dave.page.locator('#search button').click()
  const reply = dave.page.locator('#search-results .search-result', { hasText: `a first thought about ${jam}` })
  await see(t, both, 'search finds the thread reply', reply)
  await see(t, both, 'and the timeline message', dave.page.locator('#search-results .search-result', { hasText: `${jam} is on the agenda` }))
  t.equal(await dave.page.locator('#search-results .search-result').count(), 2, 'and nothing else')
  await see(t, both, 'the reply is marked as one in a thread', reply.locator('.search-in-thread'))
  await reply.click()
  await see(t, both, 'clicking the reply opens its room', dave.page.locator('#room-title', { hasText: 'ideas' }))
  await see(t, both, 'and its thread, the reply standing out', dave.page.locator('#thread-messages .message.found', { hasText: `a first thought about ${jam}` }))
  await see(t, both, 'under its root', dave.page.locator('#thread-root .message', { hasText: 'look at the plan' }))
  await dave.page.locator('#search-results .search-result', { hasText: `${jam} is on the agenda` }).click()
  await see(t, both, 'a timeline result stands out in the timeline', dave.page.locator('#messages .message.found', { hasText: `${jam} is on the agenda` }))
  t.equal(await dave.page.locator('.message.found').count(), 1, 'and only that one')
  t.same([...carol.errors, ...dave.errors], [], 'no page errors')
  t.same([...carol.dialogs, ...dave.dialogs], [], 'no dialogs')
})

t.test('the link `npm start` prints in development mode opens the page as alice', async (t) => {
  const standalone = await spawnServer(t, { DATABASE_URL: await freshDatabaseUrl(t), JWT_SECRET: '' })
  const link = (await standalone.waitFor(/(http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+\.[\w-]+\.[\w-]+)/))[1] as string
  t.ok(link.startsWith(`${standalone.httpUrl}/?token=`), 'the demo URL with a dev token')
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await context.newPage()
  await page.goto(link)
  await page.locator('#status', { hasText: 'open' }).waitFor(WAIT)
  t.equal(await page.locator('#me').textContent(), 'Alice')
  t.equal(await page.locator('#token').inputValue(), link.split('?token=')[1], 'the token field is filled from ?token=')
  standalone.child.kill('SIGTERM')
  t.equal((await standalone.exited).code, 0)
})
