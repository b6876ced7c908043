import t from 'tap'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { CHROMIUM, CHROMIUM_ARGS, startDemoServer } from './fixtures/demo-server.js'
import { dropSockets } from './fixtures/chat-client.js'
import { uid } from './fixtures/chat.js'
import { storeMessage } from './fixtures/rooms.js'
import { spawnServer } from './fixtures/process.js'
import { freshDatabaseUrl } from './fixtures/database.js'
import { until } from './fixtures/timing.js'

// The demo page, served by the standalone server, driven in Debian's chromium: two contexts are two users.
const server = await startDemoServer(t, { presenceGraceMs: 300 })
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
t.teardown(() => browser.close())

const WAIT = { timeout: 20000 }

interface User {
  id: string
  name: string
  context: BrowserContext
  page: Page
  /** Every alert/confirm/prompt the page opened. */
  dialogs: string[]
  /** Uncaught errors of the page. */
  errors: string[]
}

async function openAs (id: string, name: string): Promise<User> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } })
  const page = await context.newPage()
  const user: User = { id, name, context, page, dialogs: [], errors: [] }
  page.on('dialog', (dialog) => {
    user.dialogs.push(dialog.message())
    void dialog.dismiss()
  })
  page.on('pageerror', (error) => { user.errors.push(error.message) })
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
