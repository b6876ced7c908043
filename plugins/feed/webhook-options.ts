import { Type, type Static } from 'typebox'
import { FEED_TYPES } from './types.js'

/** One `feed.webhooks` item (protocol 11.4, docs/feed.md "Webhooks"), with its defaults. */
export const FeedWebhookSchema = Type.Object({
  url: Type.String({ pattern: '^https?://', maxLength: 2048, description: 'where the batches are POSTed (http or https); redirects are not followed' }),
  secret: Type.String({ minLength: 16, maxLength: 1024, description: 'the HMAC-SHA256 key of the X-Chat-Signature header' }),
  events: Type.Optional(Type.Array(Type.Enum(FEED_TYPES), {
    minItems: 1, uniqueItems: true, description: 'the feed types this webhook gets; all when absent',
  })),
  timeoutMs: Type.Integer({ minimum: 100, maximum: 60000, default: 5000, description: 'one POST, from sending to the answer\'s status' }),
  maxAgeSec: Type.Integer({
    minimum: 1, default: 86400,
    description: 'a batch refused for this long (counted from its first failure) is parked in chat.feed_parked and skipped',
  }),
}, { additionalProperties: false })

export type FeedWebhookConfig = Static<typeof FeedWebhookSchema>

/**
 * The sink's name (its chat.feed_positions row and metrics label): the URL without its query, so a token
 * in the query stays out of the database and the metrics.
 */
export function webhookSinkName (url: string): string {
  const parsed = new URL(url)
  return `webhook:${parsed.origin}${parsed.pathname}`
}

/**
 * What the schema cannot say: the URL parses, carries no credentials (fetch refuses them: put them in
 * the query or rely on the signature), and no two webhooks share a position (the same name).
 */
export function checkWebhooks (webhooks: FeedWebhookConfig[]): void {
  const names = new Set<string>()
  for (const [index, { url }] of webhooks.entries()) {
    const option = `feed.webhooks.${index}.url`
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new Error(`chat: invalid option "${option}": not a URL`)
    }
    if (parsed.username !== '' || parsed.password !== '') throw new Error(`chat: invalid option "${option}": fetch refuses a URL with credentials`)
    const name = webhookSinkName(url)
    if (names.has(name)) throw new Error(`chat: invalid option "${option}": another webhook has the same address (${name})`)
    names.add(name)
  }
}
