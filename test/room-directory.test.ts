import t, { type Test } from 'tap'
import { connect, uid, type Person } from './fixtures/chat.js'
import { rest } from './fixtures/rooms.js'
import { onOneAndTwoNodes, type TestNode } from './fixtures/server.js'

// room.directory / GET /api/rooms/directory (issue 24): the public GROUP and CHANNEL rooms of the
// caller's tenant that the caller may join, by name prefix or word, by type, paged by cursor.

interface Listed {
  id: string
  name: string
  type: string
  isPrivate: boolean
  joined: boolean
}

interface Page {
  rooms: Listed[]
  nextCursor: string | null
}

function close (t: Test, ...people: Person[]): void {
  t.teardown(() => { for (const person of people) person.client.close() })
}

async function create (owner: Person, name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const { room } = await owner.client.ack('room.create', { name, type: 'GROUP', ...extra }) as { room: { id: string } }
  return room.id
}

/** One directory page over the WebSocket (`via` 'ws') or REST. */
async function directory (node: TestNode, person: Person, via: 'ws' | 'rest', query: Record<string, string | number> = {}): Promise<Page> {
  if (via === 'ws') return await person.client.ack('room.directory', query) as unknown as Page
  const search = new URLSearchParams(Object.entries(query).map(([key, value]): [string, string] => [key, String(value)])).toString()
  const reply = await rest(node, person.token, 'GET', `/api/rooms/directory${search === '' ? '' : `?${search}`}`)
  if (reply.status !== 200) throw new Error(`GET /api/rooms/directory: ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body as Page
}

/** Every page from the start, `limit` at a time. */
async function allPages (node: TestNode, person: Person, via: 'ws' | 'rest', query: Record<string, string | number>): Promise<Page[]> {
  const pages: Page[] = []
  let cursor: string | null = null
  do {
    const page: Page = await directory(node, person, via, cursor === null ? query : { ...query, cursor })
    pages.push(page)
    cursor = page.nextCursor
  } while (cursor !== null && pages.length < 20)
  return pages
}

const names = (page: Page): string[] => page.rooms.map((room) => room.name)

onOneAndTwoNodes(t, 'the directory: public rooms of the tenant, by name prefix or word, type, paged by cursor', async (t, nodeA, nodeB) => {
  const tenant = uid('dir')
  const alice = await connect(nodeA, uid('alice'), { tenant })
  const bob = await connect(nodeB, uid('bob'), { tenant })
  const carol = await connect(nodeA, uid('carol'), { tenant })
  const stranger = await connect(nodeB, uid('stranger'), { tenant: uid('elsewhere') })
  close(t, alice, bob, carol, stranger)

  // Listed for bob, in order of lower(name): names that sort alike under any collation.
  const squad = await create(alice, 'Alpha Squad')
  await create(alice, 'Alpine%Soup')
  await create(alice, 'Announcements', { type: 'CHANNEL' })
  const beta = await create(alice, 'Beta', { memberIds: [bob.id] })
  await create(alice, 'The Alpha Lounge')
  const listed = ['Alpha Squad', 'Alpine%Soup', 'Announcements', 'Beta', 'The Alpha Lounge']
  // Never listed for bob: private, SUPPORT, DIRECT, banned, full, another tenant's.
  await create(alice, 'Alpha Secret', { isPrivate: true })
  await create(alice, 'Alpha Help', { type: 'SUPPORT', isPrivate: false })
  await alice.client.ack('dm.open', { userId: bob.id })
  const banned = await create(alice, 'Alpha Banned')
  await alice.client.ack('room.ban', { roomId: banned, userId: bob.id })
  await create(alice, 'Alpha Full', { maxMembers: 2, memberIds: [carol.id] })
  await create(stranger, 'Alpha Elsewhere')

  for (const via of ['ws', 'rest'] as const) {
    const all = await directory(nodeB, bob, via)
    t.same(names(all), listed, `${via}: only the tenant's public GROUP and CHANNEL rooms bob may join, by name`)
    t.equal(all.nextCursor, null, `${via}: one page holds them: nextCursor null`)
    t.ok(all.rooms.every((room) => !room.isPrivate && (room.type === 'GROUP' || room.type === 'CHANNEL')), `${via}: every one public, GROUP or CHANNEL`)
    t.same(all.rooms.filter((room) => room.joined).map((room) => room.id), [beta], `${via}: joined says bob is in Beta only`)

    t.same(names(await directory(nodeB, bob, via, { query: 'alpha' })), ['Alpha Squad', 'The Alpha Lounge'], `${via}: a name that starts so, or a word of it`)
    t.same(names(await directory(nodeB, bob, via, { query: 'ALP' })), ['Alpha Squad', 'Alpine%Soup', 'The Alpha Lounge'], `${via}: case-insensitive prefixes`)
    t.same(names(await directory(nodeB, bob, via, { query: 'lounge' })), ['The Alpha Lounge'], `${via}: a later word`)
    t.same(names(await directory(nodeB, bob, via, { query: 'ounge' })), [], `${via}: not the middle of a word`)
    t.same(names(await directory(nodeB, bob, via, { query: 'alpine%' })), ['Alpine%Soup'], `${via}: % taken literally`)
    t.same(names(await directory(nodeB, bob, via, { query: '%' })), [], `${via}: % alone matches nothing`)
    t.same(names(await directory(nodeB, bob, via, { query: 'alph_' })), [], `${via}: _ taken literally`)
    t.same(names(await directory(nodeB, bob, via, { type: 'CHANNEL' })), ['Announcements'], `${via}: type CHANNEL`)
    t.same(names(await directory(nodeB, bob, via, { type: 'GROUP', query: 'a' })), ['Alpha Squad', 'Alpine%Soup', 'The Alpha Lounge'], `${via}: type and query together`)

    const pages = await allPages(nodeB, bob, via, { limit: 2 })
    t.same(pages.map(names), [listed.slice(0, 2), listed.slice(2, 4), listed.slice(4)], `${via}: pages of 2 until nextCursor is null: every room once, in order`)
    const exact = await allPages(nodeB, bob, via, { limit: 5 })
    t.same(exact.map(names), [listed], `${via}: a page that takes the last room ends the directory`)
    const alphas = await allPages(nodeB, bob, via, { query: 'alp', limit: 1 })
    t.same(alphas.map(names), [['Alpha Squad'], ['Alpine%Soup'], ['The Alpha Lounge']], `${via}: a cursor keeps the query's rooms`)

    t.same(names(await directory(nodeB, stranger, via, { query: 'alpha' })), ['Alpha Elsewhere'], `${via}: another tenant sees its own rooms only`)
  }

  // A bad cursor or limit is refused, on both surfaces.
  const forged = Buffer.from(JSON.stringify(['alpha', 'not-a-uuid'])).toString('base64url')
  for (const cursor of ['nope!', forged, Buffer.from('{"a":1}').toString('base64url')]) {
    t.equal((await bob.client.request('room.directory', { cursor })).error?.code, 'VALIDATION_FAILED', `ws: cursor ${cursor} is VALIDATION_FAILED`)
    const reply = await rest(nodeB, bob.token, 'GET', `/api/rooms/directory?cursor=${encodeURIComponent(cursor)}`)
    t.same([reply.status, (reply.body as { code: string }).code], [400, 'VALIDATION_FAILED'], `rest: cursor ${cursor} is 400 VALIDATION_FAILED`)
  }
  t.equal((await bob.client.request('room.directory', { limit: 101 })).error?.code, 'VALIDATION_FAILED', 'limit at most 100')
  t.equal((await bob.client.request('room.directory', { type: 'DIRECT' })).error?.code, 'VALIDATION_FAILED', 'type GROUP or CHANNEL only')
  t.equal((await rest(nodeB, bob.token, 'GET', '/api/rooms/directory?type=SUPPORT')).status, 400, 'rest: type GROUP or CHANNEL only')

  // What the directory lists, bob may join; then it says joined.
  await bob.client.ack('room.join', { roomId: squad })
  const after = await directory(nodeB, bob, 'ws', { query: 'alpha squad' })
  t.same(after.rooms.map((room) => [room.name, room.joined]), [['Alpha Squad', true]], 'joined after a join')
})
