import createError from '@fastify/error'
import type { FeedEntry, FeedSink } from '../types.js'
import { webhookSinkName, type FeedWebhookConfig } from '../webhook-options.js'
import { SIGNATURE_HEADER, webhookSignature } from './webhook-signature.js'

const WebhookStatusError = createError<'FEED_WEBHOOK_STATUS', [string, number]>(
  'FEED_WEBHOOK_STATUS', '%s answered HTTP %s (only a 2xx confirms; a redirect is not followed)')
const WebhookRequestError = createError<'FEED_WEBHOOK_REQUEST', [string, string]>('FEED_WEBHOOK_REQUEST', '%s: %s')

/** Why a POST got no answer, in words that name no secret (the URL's query stays out). */
function reasonOf (error: unknown, timeoutMs: number): string {
  if (error instanceof Error && error.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`
  const cause = error instanceof Error ? error.cause : undefined
  if (cause instanceof Error) return `${cause.name}: ${cause.message}`
  return error instanceof Error ? error.message : String(error)
}

/**
 * POSTs each batch as `{"entries": [...]}` to one URL, signed with X-Chat-Signature. Only a 2xx answer
 * confirms; anything else (a 3xx included: fetch's `redirect: 'manual'` hands it back instead of going to
 * an address the operator did not configure), a network error or the timeout is a failure the relay
 * retries, and parks after maxAgeSec.
 */
export class WebhookSink implements FeedSink {
  readonly name: string
  readonly parkAfterMs: number
  private readonly events: ReadonlySet<string> | null
  /** Aborted by close(): a shutdown does not wait out a slow receiver's timeout. */
  private readonly closing = new AbortController()

  constructor (private readonly options: FeedWebhookConfig) {
    this.name = webhookSinkName(options.url)
    this.parkAfterMs = options.maxAgeSec * 1000
    this.events = options.events === undefined ? null : new Set(options.events)
  }

  accepts (entry: FeedEntry): boolean {
    return this.events === null || this.events.has(entry.type)
  }

  async deliver (entries: FeedEntry[]): Promise<void> {
    const { url, secret, timeoutMs } = this.options
    const body = JSON.stringify({ entries })
    let response: Response
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: webhookSignature(secret, body, Math.floor(Date.now() / 1000)) },
        body,
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), this.closing.signal]),
      })
    } catch (error) {
      throw new WebhookRequestError(this.name, reasonOf(error, timeoutMs))
    }
    // The answer's body is not read: dropping it frees the connection without waiting for it.
    await response.body?.cancel().catch(() => {})
    if (response.status < 200 || response.status > 299) throw new WebhookStatusError(this.name, response.status)
  }

  async close (): Promise<void> {
    this.closing.abort(new Error('the feed relay is closing'))
  }
}
