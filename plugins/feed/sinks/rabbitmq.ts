import type { ChannelModel, ConfirmChannel, Options } from 'amqplib'
import { withTimeout } from '../../../lib/deadline.js'
import type { FeedEntry, FeedSink } from '../types.js'
import { routingKeyOf } from './rabbitmq-routing.js'

type Amqplib = typeof import('amqplib')

export interface RabbitMqSinkOptions {
  /** amqp:// or amqps:// */
  url: string
  /** The durable topic exchange. */
  exchange: string
}

const AMQPLIB_PACKAGE = 'amqplib'
/** A broker that does not answer the TCP and AMQP handshakes within this is a failed delivery (retried). */
const CONNECT_TIMEOUT_MS = 5000
/**
 * A batch whose confirms do not come back within this is a failed delivery: without it a silently dead
 * link (no FIN; AMQP heartbeats notice only after two missed 60 s beats) would hold the relay step.
 */
const CONFIRM_TIMEOUT_MS = 15_000
/** close() waits this long for the broker's close-ok, so a dead broker does not hold the node's shutdown. */
const CLOSE_TIMEOUT_MS = 2000

/** One connection and its confirm channel; dropped whole when either breaks. */
interface AmqpLink {
  connection: ChannelModel
  channel: ConfirmChannel
}

/** amqplib, an optional peer: loaded only when the sink is configured, with an error that says what to do. */
async function loadAmqplib (): Promise<Amqplib> {
  try {
    return await import('amqplib')
  } catch (error) {
    const { code, message } = error as { code?: string, message?: string }
    if (code === 'ERR_MODULE_NOT_FOUND' && message?.includes(AMQPLIB_PACKAGE) === true) {
      throw new Error(`chat: feed.rabbitmq needs the optional package ${AMQPLIB_PACKAGE}: \`npm install ${AMQPLIB_PACKAGE}\``, { cause: error })
    }
    throw error
  }
}

/** The AMQP properties of one entry: persistent JSON, its id as messageId and header, its type and tenant. */
function propertiesOf (entry: FeedEntry): Options.Publish {
  return {
    persistent: true,
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    messageId: String(entry.id),
    type: entry.type,
    timestamp: Math.floor(Date.parse(entry.occurredAt) / 1000),
    appId: 'chat-feed',
    headers: { 'x-feed-id': entry.id, 'x-tenant': entry.tenant },
  }
}

async function closeQuietly (what: { close (): Promise<void> }): Promise<void> {
  try {
    await withTimeout(what.close(), CLOSE_TIMEOUT_MS, () => new Error('rabbitmq sink: close timed out'))
  } catch {
    // Already closed by the broker, or the broker is gone: either way nothing is left to release.
  }
}

/**
 * Publishes each feed entry to a durable topic exchange with routing key `<tenant>.<type>` on a confirm
 * channel; `deliver` resolves once the broker confirmed the whole batch. The link is opened lazily by
 * the first delivery after start or after a failure, so a broker that is down only delays the feed: any
 * error rejects the delivery (the relay keeps its position and retries with backoff) and drops the link.
 */
export class RabbitMqSink implements FeedSink {
  readonly name = 'rabbitmq'
  private link: Promise<AmqpLink> | null = null
  private closed = false

  private constructor (private readonly amqp: Amqplib, private readonly options: RabbitMqSinkOptions) {}

  /** Loads amqplib (a clear error when it is not installed); connects on the first delivery. */
  static async create (options: RabbitMqSinkOptions): Promise<RabbitMqSink> {
    return new RabbitMqSink(await loadAmqplib(), options)
  }

  async deliver (entries: FeedEntry[]): Promise<void> {
    if (this.closed) throw new Error('rabbitmq sink: closed')
    const link = this.link ?? this.open()
    try {
      const { channel } = await link
      // publish() buffers past the socket's high-water mark (it returns false then): a batch is bounded
      // by feed.batchSize, so the buffer is too, and the confirms below pace the next batch.
      for (const entry of entries) {
        channel.publish(this.options.exchange, routingKeyOf(entry), Buffer.from(JSON.stringify(entry)), propertiesOf(entry))
      }
      await withTimeout(channel.waitForConfirms(), CONFIRM_TIMEOUT_MS, () => new Error(`rabbitmq sink: no confirms within ${CONFIRM_TIMEOUT_MS} ms`))
    } catch (error) {
      this.drop(link)
      throw error
    }
  }

  async close (): Promise<void> {
    this.closed = true
    const link = this.link
    this.link = null
    const open = await link?.catch(() => null)
    if (open === null || open === undefined) return
    await closeQuietly(open.channel)
    await closeQuietly(open.connection)
  }

  /** Starts a link and makes it the current one; it forgets itself when the broker closes either part. */
  private open (): Promise<AmqpLink> {
    const opening: Promise<AmqpLink> = this.connect(() => { if (this.link === opening) this.link = null })
    this.link = opening
    return opening
  }

  private async connect (broken: () => void): Promise<AmqpLink> {
    const connection = await this.amqp.connect(this.options.url, {
      timeout: CONNECT_TIMEOUT_MS,
      clientProperties: { connection_name: 'chat feed relay' },
    })
    // A broker-side close emits 'error' then 'close' on the connection and its channels: without a
    // listener an 'error' event would crash the process. The delivery in flight, if any, rejects on its
    // own (its confirms fail); the next one opens a new link.
    connection.on('error', () => {})
    connection.on('close', broken)
    try {
      const channel = await connection.createConfirmChannel()
      channel.on('error', () => {})
      channel.on('close', () => {
        broken()
        void closeQuietly(connection)
      })
      await channel.assertExchange(this.options.exchange, 'topic', { durable: true })
      return { connection, channel }
    } catch (error) {
      await closeQuietly(connection)
      throw error
    }
  }

  /** Forgets a failed link (if still current) and closes what is left of it. */
  private drop (link: Promise<AmqpLink>): void {
    if (this.link === link) this.link = null
    void link.then(async ({ connection }) => closeQuietly(connection), () => {})
  }
}
