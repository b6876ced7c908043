import t from 'tap'
import Fastify from 'fastify'
import { sql } from 'drizzle-orm'
import { Type } from 'typebox'
import chatSuite from '../index.js'
import { freshDatabaseUrl } from './fixtures/database.js'
import { randomPrefix, TEST_SECRET } from './fixtures/server.js'
import { TestClient } from './fixtures/ws-client.js'
import { sleep } from './fixtures/timing.js'

// Structured logs: what a host's own logger receives from the suite, at debug level, with Fastify's
// default serializers on the host (no redaction of its own): the suite must not hand it a token or the
// content of a message, and every socket line must say which connection and which user it is about.

interface LogLine {
  level: number
  msg: string
  reqId?: string
  connectionId?: string
  userId?: string
  req?: { url?: string }
  err?: { type?: string, message?: string, stack?: string, params?: unknown }
  [key: string]: unknown
}

const raw: string[] = []
const app = Fastify({ logger: { level: 'debug', stream: { write: (line: string) => { raw.push(line) } } } })
// upgradeLogLevel 'debug': the upgrade request's own line is written too, so its URL's redaction is checked.
await app.register(chatSuite, { database: await freshDatabaseUrl(t), jwt: { secret: TEST_SECRET }, redisPrefix: randomPrefix(), upgradeLogLevel: 'debug' })
const address = await app.listen({ port: 0, host: '127.0.0.1' })
t.teardown(() => app.close())
const scope = app.chat.scope
const wsUrl = `${address.replace(/^http/, 'ws')}${app.chat.config.wsPath}`

// A handler whose query fails with the frame's content among its bound parameters: drizzle-orm puts
// every parameter in the error's message, stack and `params`.
scope.chatGateway.on('test.failing', {
  schema: Type.Object({ content: Type.String() }, { additionalProperties: false }),
  async handler (_ctx, data) {
    await scope.chatDb.execute(sql`select ${data.content}::text as content from chat.table_that_does_not_exist`)
    return {}
  },
})

function lines (): LogLine[] {
  return raw.map((line) => JSON.parse(line) as LogLine)
}

t.test('a session with a token in the URL and a message logs neither, and tags every socket line', async (t) => {
  const token = app.chat.signToken({ sub: 'alice', name: 'Alice' })
  const content = `the-secret-content-${Date.now()}`
  const failingContent = `the-failing-content-${Date.now()}`
  const { client, ready } = await TestClient.session(wsUrl, token, 'query')
  const connectionId = ready.data?.connectionId as string

  const send = async (): Promise<void> => {
    const gateway = scope.chatGateway
    if (gateway.registeredEvents().has('message.send') && gateway.registeredEvents().has('room.create')) {
      const created = await client.ack('room.create', { name: 'logs', type: 'GROUP' })
      const reply = await client.request('message.send', { roomId: (created.room as { id: string }).id, content })
      t.equal(reply.event, 'ack', 'the message is sent')
    } else {
      const reply = await client.request('message.send', { roomId: '00000000-0000-4000-8000-000000000000', content })
      t.equal(reply.event, 'error', 'messaging not registered yet: the frame still travels the gateway')
    }
  }
  await send()
  const failed = await client.request('test.failing', { content: failingContent })
  t.equal(failed.error?.code, 'INTERNAL')
  // REST with a token in the query string too (a client mistake the log must survive).
  await fetch(`${address}${app.chat.config.apiPrefix}/rooms?token=${token}`)
  client.close()
  await client.closed
  await sleep(100)

  const output = raw.join('')
  const signature = token.split('.')[2] as string
  t.notOk(output.includes(token), 'the token is not in the log')
  t.notOk(output.includes(signature), 'not even its signature')
  t.notOk(output.includes(content), 'the message content is not in the log')
  t.notOk(output.includes(failingContent), 'the content of a failed write is not in the log')

  const all = lines()
  const upgrade = all.find((line) => line.msg === 'incoming request' && line.req?.url?.startsWith(app.chat.config.wsPath) === true)
  t.ok(upgrade, 'the upgrade request is logged')
  t.match(upgrade?.req?.url, /token=\[redacted\]/, 'with the token masked')
  const failure = all.find((line) => line.msg === 'event handler failed')
  t.ok(failure, 'the failed handler is logged (the error path above was taken)')
  t.match(failure?.err?.message, /params: \[redacted\]/, 'with the query kept and its parameters cut')
  t.equal(failure?.err?.params, undefined)
  t.match(failure, { event: 'test.failing', connectionId, userId: 'alice' })

  const socketLines = all.filter((line) => line.reqId === upgrade?.reqId && line.msg !== 'incoming request' && line.msg !== 'request completed')
  t.ok(socketLines.length >= 2, `${socketLines.length} socket lines: ${socketLines.map((line) => line.msg).join(", ")}`)
  for (const line of socketLines) {
    t.equal(line.connectionId, connectionId, `"${line.msg}" names the connection`)
    t.equal(line.userId, 'alice', `"${line.msg}" names the user`)
  }
  t.ok(socketLines.some((line) => line.msg === 'socket closed'), 'down to the close')
})

t.test('the suite\'s own logger (hub, broker, services) cuts query parameters too', async (t) => {
  const secret = `a-bound-value-${Date.now()}`
  const error = await scope.chatDb.execute(sql`select ${secret}::text from chat.still_not_a_table`).then(() => null, (caught: unknown) => caught)
  t.ok(error instanceof Error, 'the query failed')
  t.match(String((error as Error).message), secret, 'drizzle-orm put the value in the message')
  const before = raw.length
  scope.log.error({ err: error }, 'a service failed')
  const written = raw.slice(before).join('')
  t.match(written, /a service failed/)
  t.notOk(written.includes(secret), 'the value is not in the log')
  t.match(written, /still_not_a_table/, 'what failed is')
})

t.test('at the default upgradeLogLevel an upgrade writes no request line of its own; the socket\'s lines and REST lines stay', async (t) => {
  const captured: string[] = []
  const host = Fastify({ logger: { level: 'debug', stream: { write: (line: string) => { captured.push(line) } } } })
  await host.register(chatSuite, { database: await freshDatabaseUrl(t), jwt: { secret: TEST_SECRET }, redisPrefix: randomPrefix() })
  const base = await host.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => host.close())
  const token = host.chat.signToken({ sub: 'carol', name: 'Carol' })
  const { client, ready } = await TestClient.session(`${base.replace(/^http/, 'ws')}${host.chat.config.wsPath}`, token, 'query')
  client.close()
  await client.closed
  await fetch(`${base}${host.chat.config.apiPrefix}/rooms`, { headers: { authorization: `Bearer ${token}` } })
  await sleep(100)

  const all = captured.map((line) => JSON.parse(line) as LogLine)
  const requestLines = all.filter((line) => line.msg === 'incoming request' || line.msg === 'request completed')
  t.notOk(requestLines.some((line) => line.req?.url?.startsWith(host.chat.config.wsPath) === true), 'no request line names the upgrade')
  t.ok(requestLines.some((line) => line.req?.url?.startsWith(host.chat.config.apiPrefix) === true), 'a REST request is still logged at the host\'s level')
  const closed = all.find((line) => line.msg === 'socket closed' && line.connectionId === ready.data?.connectionId)
  t.ok(closed, 'the socket\'s own lines still follow the host\'s level')
  t.equal(closed?.userId, 'carol')
})
