import t from 'tap'
import { register as globalRegistry } from 'prom-client'
import { Type } from 'typebox'
import { TestClient } from './fixtures/ws-client.js'
import { startNode } from './fixtures/server.js'
import { until } from './fixtures/timing.js'
import { labelValues, parsePrometheus, sampleValue, scrape, type Sample } from './fixtures/prometheus.js'

const node = await startNode(t, {
  redis: null,
  // Every frame takes a token (unknown events and bad frames too): a burst of 30, the protocol's, refilled slowly.
  options: { rateLimits: { other: { rate: 1, burst: 30 } }, maxBufferedBytes: 1024 },
})
const scope = node.app.chat.scope
scope.chatGateway.on('test.metrics', {
  schema: Type.Object({ text: Type.Optional(Type.String()) }, { additionalProperties: false }),
  handler: (_ctx, data) => ({ text: data.text ?? '' }),
})
scope.chatGateway.declarePush('test.pushed', { schema: Type.Object({ n: Type.Integer() }) })

async function metrics (): Promise<Sample[]> {
  return await scrape(node.httpUrl)
}

/**
 * Scrapes until `check` holds (socket close events reach the server a moment later) and returns the last
 * scrape either way: the test asserts on it, so that a failure shows the values.
 */
async function scrapeUntil (check: (samples: Sample[]) => boolean, timeoutMs = 5000): Promise<Sample[]> {
  let samples: Sample[] = []
  await until('a scrape that passes the check', async () => check(samples = await metrics()), { timeoutMs, everyMs: 25 }).catch(() => {})
  return samples
}

t.test('GET /metrics is Prometheus text with the suite metrics and Node default metrics, without a token', async (t) => {
  const response = await fetch(`${node.httpUrl}/metrics`)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const text = await response.text()
  const samples = parsePrometheus(text)
  for (const name of ['chat_sockets_open', 'chat_sockets_opened_total', 'chat_messages_persisted_total', 'chat_broker_reconnects_total',
    'chat_online_users', 'chat_rate_limited_frames_total', 'chat_slow_consumers_cut_total', 'chat_group_commit_batch_size_count',
    'chat_send_to_ack_seconds_count', 'chat_delivery_seconds_count', 'chat_group_commit_duration_seconds_count']) {
    t.ok(samples.some((sample) => sample.name === name), `${name} is exposed`)
  }
  for (const name of ['chat_sockets_closed_total', 'chat_frames_in_total', 'chat_frames_out_total', 'chat_errors_total', 'chat_broker_publishes_total']) {
    t.match(text, new RegExp(`# TYPE ${name} counter`), `${name} is declared`)
  }
  t.ok(samples.some((sample) => sample.name === 'nodejs_eventloop_lag_p99_seconds'), 'event loop delay (default metrics)')
  t.ok(samples.some((sample) => sample.name === 'process_resident_memory_bytes'), 'process metrics')
})

t.test('each suite has a registry of its own, never the global one', async (t) => {
  const other = await startNode(t, { redis: null })
  t.not(other.app.chat.scope.chatMetrics.registry, scope.chatMetrics.registry)
  t.equal(globalRegistry.getSingleMetric('chat_sockets_open'), undefined, 'the default registry is left alone')
  const { client } = await TestClient.session(other.wsUrl, other.token('someone'))
  const [mine, theirs] = await Promise.all([metrics(), scrape(other.httpUrl)])
  t.equal(sampleValue(theirs, 'chat_sockets_open'), 1, 'the other node counts its socket')
  t.equal(sampleValue(mine, 'chat_sockets_open'), 0, 'this node does not')
  client.close()
  await client.closed
})

t.test('a socket moves the socket metrics: opened, open, online users, closed by code', async (t) => {
  const before = await metrics()
  const { client } = await TestClient.session(node.wsUrl, node.token('alice'))
  const second = await TestClient.session(node.wsUrl, node.token('alice'))
  const during = await metrics()
  t.equal(sampleValue(during, 'chat_sockets_opened_total') - sampleValue(before, 'chat_sockets_opened_total'), 2)
  t.equal(sampleValue(during, 'chat_sockets_open'), 2)
  t.equal(sampleValue(during, 'chat_online_users'), 1, 'one user with two sockets')
  t.equal(sampleValue(during, 'chat_frames_out_total', { event: 'session.ready' }) - sampleValue(before, 'chat_frames_out_total', { event: 'session.ready' }), 2)

  client.socket.close(1000)
  second.client.socket.close(4000, 'made up by the client')
  const after = await scrapeUntil((samples) => sampleValue(samples, 'chat_sockets_open') === 0)
  t.equal(sampleValue(after, 'chat_sockets_open'), 0)
  t.equal(sampleValue(after, 'chat_online_users'), 0)
  t.equal(sampleValue(after, 'chat_sockets_closed_total', { code: '1000' }) - sampleValue(before, 'chat_sockets_closed_total', { code: '1000' }), 1)
  t.equal(sampleValue(after, 'chat_sockets_closed_total', { code: 'other' }) - sampleValue(before, 'chat_sockets_closed_total', { code: 'other' }), 1,
    'a code the protocol does not use is labelled other')

  const refused = await TestClient.connect(node.wsUrl, { token: 'not.a.jwt' })
  t.equal((await refused.closed).code, 4401)
  const closed = await scrapeUntil((samples) => sampleValue(samples, 'chat_sockets_closed_total', { code: '4401' }) > sampleValue(before, 'chat_sockets_closed_total', { code: '4401' }))
  t.equal(sampleValue(closed, 'chat_sockets_closed_total', { code: '4401' }) - sampleValue(before, 'chat_sockets_closed_total', { code: '4401' }), 1)
})

t.test('frames move the frame and error counters, with bounded labels', async (t) => {
  const { client } = await TestClient.session(node.wsUrl, node.token('bob'))
  const before = await metrics()
  client.send({ event: 'ping', id: 'p1' })
  await client.next((frame) => frame.event === 'pong')
  t.equal((await client.request('test.metrics', { text: 'hi' })).event, 'ack')
  for (let index = 0; index < 20; index += 1) client.send({ event: `made.up.${index}` })
  client.send('{not json')
  await client.collect(200)
  const after = await metrics()
  const delta = (name: string, labels: Record<string, string>): number => sampleValue(after, name, labels) - sampleValue(before, name, labels)
  t.equal(delta('chat_frames_in_total', { event: 'ping' }), 1)
  t.equal(delta('chat_frames_in_total', { event: 'test.metrics' }), 1)
  t.equal(delta('chat_frames_in_total', { event: 'unknown' }), 21, 'unknown events and bad frames share one label')
  t.equal(delta('chat_frames_out_total', { event: 'pong' }), 1)
  t.equal(delta('chat_frames_out_total', { event: 'ack' }), 1)
  t.equal(delta('chat_frames_out_total', { event: 'error' }), 21)
  t.equal(delta('chat_errors_total', { code: 'UNKNOWN_EVENT', transport: 'ws' }), 20)
  t.equal(delta('chat_errors_total', { code: 'BAD_FRAME', transport: 'ws' }), 1)
  t.notOk(labelValues(after, 'chat_frames_in_total', 'event').some((event) => event.startsWith('made.up')), 'no label per made-up event')
  client.close()
})

t.test('pushes are counted by declared event; anything else is other', async (t) => {
  const { client } = await TestClient.session(node.wsUrl, node.token('carol'))
  const hub = scope.chatHub
  const before = await metrics()
  const connection = [...hub.connectionsOf('carol')][0]
  if (connection === undefined) throw new Error('carol has no connection')
  await hub.subscribe(connection, 'metrics-room')
  await hub.publishRoom('metrics-room', JSON.stringify({ event: 'test.pushed', data: { n: 1 } }))
  await hub.publishUser('carol', JSON.stringify({ event: 'undeclared.thing', data: {} }))
  await client.next((frame) => frame.event === 'test.pushed')
  await client.next((frame) => frame.event === 'undeclared.thing')
  const after = await metrics()
  const delta = (name: string, labels: Record<string, string> = {}): number => sampleValue(after, name, labels) - sampleValue(before, name, labels)
  t.equal(delta('chat_frames_out_total', { event: 'test.pushed' }), 1)
  t.equal(delta('chat_frames_out_total', { event: 'other' }), 1)
  t.equal(delta('chat_broker_publishes_total', { kind: 'room' }), 1)
  t.equal(delta('chat_broker_publishes_total', { kind: 'user' }), 1)
  t.equal(delta('chat_delivery_seconds_count'), 1, 'a room frame with a local socket is timed')
  await hub.publishRoom('a-room-without-local-sockets', JSON.stringify({ event: 'test.pushed', data: { n: 2 } }))
  t.equal(sampleValue(await metrics(), 'chat_delivery_seconds_count') - sampleValue(after, 'chat_delivery_seconds_count'), 0,
    'an empty fan-out is not a delivery')
  client.close()
})

t.test('rate-limited frames are counted', async (t) => {
  const { client } = await TestClient.session(node.wsUrl, node.token('dave'))
  const before = await metrics()
  const replies = await Promise.all(Array.from({ length: 35 }, () => client.request('test.metrics', {})))
  const refused = replies.filter((reply) => reply.error?.code === 'RATE_LIMITED').length
  t.ok(refused >= 1, 'the bucket (burst 30) refuses')
  const after = await metrics()
  t.equal(sampleValue(after, 'chat_rate_limited_frames_total') - sampleValue(before, 'chat_rate_limited_frames_total'), refused)
  t.equal(sampleValue(after, 'chat_errors_total', { code: 'RATE_LIMITED', transport: 'ws' }) -
    sampleValue(before, 'chat_errors_total', { code: 'RATE_LIMITED', transport: 'ws' }), refused)
  client.close()
})

t.test('a slow consumer cut is counted and closes with 1013', async (t) => {
  const { client } = await TestClient.session(node.wsUrl, node.token('erin'))
  const before = await metrics()
  const tcp = (client.socket as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  tcp.pause()
  const connection = [...scope.chatHub.connectionsOf('erin')][0]
  const big = JSON.stringify({ event: 'test.pushed', data: { n: 1, pad: 'x'.repeat(60000) } })
  let writes = 0
  while (connection?.send(big) === true && writes < 2000) writes += 1
  t.ok(writes < 2000, `cut after ${writes} writes`)
  const after = await metrics()
  t.equal(sampleValue(after, 'chat_slow_consumers_cut_total') - sampleValue(before, 'chat_slow_consumers_cut_total'), 1)
  tcp.resume()
  t.equal((await client.closed).code, 1013)
  const closed = await scrapeUntil((samples) => sampleValue(samples, 'chat_sockets_closed_total', { code: '1013' }) > 0)
  t.equal(sampleValue(closed, 'chat_sockets_closed_total', { code: '1013' }), 1)
})

t.test('REST errors are counted by code', async (t) => {
  const before = await metrics()
  const response = await fetch(`${node.httpUrl}${node.app.chat.config.apiPrefix}/rooms`)
  t.equal(response.status, 401)
  const after = await metrics()
  t.equal(sampleValue(after, 'chat_errors_total', { code: 'UNAUTHENTICATED', transport: 'rest' }) -
    sampleValue(before, 'chat_errors_total', { code: 'UNAUTHENTICATED', transport: 'rest' }), 1)
})

t.test('the chatMetrics methods the services call move their metrics', async (t) => {
  const before = await metrics()
  const m = scope.chatMetrics
  m.messagePersisted()
  m.messagePersisted(3)
  m.groupCommitBatch(4, 2)
  m.groupCommitBatch(1)
  m.sendToAck(12)
  m.delivery(0.5)
  const after = await metrics()
  const delta = (name: string, labels: Record<string, string> = {}): number => sampleValue(after, name, labels) - sampleValue(before, name, labels)
  t.equal(delta('chat_messages_persisted_total'), 4)
  t.equal(delta('chat_group_commit_batch_size_count'), 2)
  t.equal(delta('chat_group_commit_batch_size_sum'), 5)
  t.equal(delta('chat_group_commit_batch_size_bucket', { le: '4' }), 2)
  t.equal(delta('chat_group_commit_duration_seconds_count'), 1)
  t.equal(delta('chat_send_to_ack_seconds_count'), 1)
  t.equal(delta('chat_send_to_ack_seconds_bucket', { le: '0.01' }), 0, '12 ms is above 10 ms')
  t.equal(delta('chat_send_to_ack_seconds_bucket', { le: '0.025' }), 1)
  t.equal(delta('chat_delivery_seconds_count'), 1)
})

t.test('a message.send moves frames, send-to-ack and messages persisted', async (t) => {
  const { client } = await TestClient.session(node.wsUrl, node.token('frank'))
  const created = await client.ack('room.create', { name: 'metrics', type: 'GROUP' })
  const roomId = (created.room as { id: string }).id
  const before = await metrics()
  const reply = await client.request('message.send', { roomId, content: 'counted' })
  t.equal(reply.event, 'ack', JSON.stringify(reply.error))
  const after = await metrics()
  const delta = (name: string, labels: Record<string, string> = {}): number => sampleValue(after, name, labels) - sampleValue(before, name, labels)
  t.equal(delta('chat_frames_in_total', { event: 'message.send' }), 1)
  t.equal(delta('chat_send_to_ack_seconds_count'), 1)
  t.equal(delta('chat_messages_persisted_total'), 1, 'messages persisted')
  t.ok(delta('chat_group_commit_batch_size_count') >= 1, 'group commit batch')
  client.close()
})

t.test('GET /metrics.json summarizes the chat metrics for people', async (t) => {
  const response = await fetch(`${node.httpUrl}/metrics.json`)
  t.equal(response.status, 200)
  const body = await response.json() as { metrics: Array<{ name: string, type: string, values?: unknown[], count?: number, mean?: number | null }> }
  t.ok(body.metrics.every((metric) => metric.name.startsWith('chat_')), 'only the suite\'s metrics')
  const opened = body.metrics.find((metric) => metric.name === 'chat_sockets_opened_total')
  t.match(opened, { type: 'counter', values: [{ value: Number }] })
  const batches = body.metrics.find((metric) => metric.name === 'chat_group_commit_batch_size')
  t.match(batches, { type: 'histogram', count: Number, sum: Number })
  t.ok((batches?.count ?? 0) >= 2)
})

t.test('metrics can be turned off: no routes, chatMetrics still callable', async (t) => {
  const off = await startNode(t, { redis: null, options: { metrics: { enabled: false } } })
  t.equal((await fetch(`${off.httpUrl}/metrics`)).status, 404)
  off.app.chat.scope.chatMetrics.messagePersisted(1)
  const { client } = await TestClient.session(off.wsUrl, off.token('quiet'))
  client.send({ event: 'ping' })
  t.equal((await client.next()).event, 'pong')
  client.close()
})
