// Run by .ci/package-smoke from inside the plain-JavaScript host app, so that every import resolves as it
// does for a user: the installed package's client (fastify-chat-suite/client) and `ws` (which the suite
// brings through @fastify/websocket). Two users, one on each host, chat through the README's snippet:
//   node driver.mjs <js host URL> <ts host URL> <APP_JWT_SECRET>
import { createHmac } from 'node:crypto'
import { ChatClient } from 'fastify-chat-suite/client'
import { WebSocket } from 'ws'

const [jsHost, tsHost, secret] = process.argv.slice(2)
if (secret === undefined) throw new Error('usage: node driver.mjs <js host URL> <ts host URL> <secret>')

/** An HS256 token with only `sub`, as the host's @fastify/jwt would sign it: names come from resolveUser. */
function token (sub) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, iat: now, exp: now + 600 })}`
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`
}

function connect (host, sub) {
  return new ChatClient({ url: `${host.replace(/^http/, 'ws')}/chat/ws`, token: token(sub), WebSocket, reconnect: false })
}

/** Resolves with the first `message.new` that matches, or rejects after 10 s. */
function nextMessage (client, match) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no matching message.new within 10 s')), 10000)
    const off = client.on('message.new', (event) => {
      if (!match(event)) return
      clearTimeout(timer)
      if (typeof off === 'function') off()
      resolve(event)
    })
  })
}

function check (condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`)
  console.log(`  ok - ${what}`)
}

const alice = connect(jsHost, 'alice')
const bob = connect(tsHost, 'bob')
try {
  const [aliceReady, bobReady] = await Promise.all([alice.connect(), bob.connect()])
  check(aliceReady.user.name === 'Alice' && bobReady.user.name === 'Bob', 'sessions on both hosts, names from the snippet\'s resolveUser')

  const { room } = await alice.openDirect('bob')
  check(typeof room.id === 'string', 'alice opens a direct chat with bob (the authorize hook: a confirmed booking)')

  const toBob = nextMessage(bob, ({ roomId, message }) => roomId === room.id && message.content === 'Hello Bob, from the JavaScript host')
  const { message: sent } = await alice.sendMessage(room.id, 'Hello Bob, from the JavaScript host')
  check(sent.seq >= 1, `alice's send is acked (seq ${sent.seq})`)
  const received = await toBob
  check(received.message.sender.id === 'alice' && received.message.sender.name === 'Alice', 'bob, on the other host, gets it through Redis (the host\'s ioredis client)')

  const toAlice = nextMessage(alice, ({ roomId, message }) => roomId === room.id && message.content === 'Hi Alice, from the TypeScript host')
  await bob.sendMessage(room.id, 'Hi Alice, from the TypeScript host')
  const reply = await toAlice
  check(reply.seq === sent.seq + 1, 'alice gets bob\'s reply, next in the room\'s order')

  const system = [nextMessage(alice, ({ message }) => message.type === 'SYSTEM'), nextMessage(bob, ({ message }) => message.type === 'SYSTEM')]
  const confirm = await fetch(`${tsHost}/bookings/${room.id}/confirm`, { method: 'POST' })
  check(confirm.status === 200, 'the snippet\'s host route answers')
  const [toA, toB] = await Promise.all(system)
  check(toA.message.content === 'Booking confirmed' && toB.message.content === 'Booking confirmed', 'app.chat.sendSystemMessage reaches both users on both hosts')

  const { messages } = await bob.history(room.id)
  check(messages.length === 3, 'history holds the three messages, once each')
  for (const host of [jsHost, tsHost]) {
    const ready = await fetch(`${host}/chat/ready`)
    check(ready.status === 200, `${host}/chat/ready is 200`)
  }
} finally {
  await Promise.allSettled([alice.close(), bob.close()])
}
