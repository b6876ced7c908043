import { createHash } from 'node:crypto'

/** The routing-key word of the default tenant (''): an empty first word would make keys like `.message.created`. */
const DEFAULT_TENANT_WORD = '_default'

/**
 * AMQP routing keys are short strings (at most 255 bytes). A tenant word longer than this is replaced by
 * a digest: a key the broker refuses would stop the sink at that entry for good.
 */
const MAX_TENANT_WORD_BYTES = 200

/**
 * A tenant as one word of a topic routing key. Dots separate words, so a tenant's own dots are escaped
 * (`%2E`, and `%` itself as `%25`); a tenant spelled `_...` gets `%5F` so that none reads as the default
 * tenant's `_default`. Usual tenant names (`acme`, `tenant-42`) stay as they are.
 */
export function tenantWord (tenant: string): string {
  if (tenant === '') return DEFAULT_TENANT_WORD
  const escaped = tenant.replaceAll('%', '%25').replaceAll('.', '%2E').replace(/^_/, '%5F')
  if (Buffer.byteLength(escaped) <= MAX_TENANT_WORD_BYTES) return escaped
  return `_sha256-${createHash('sha256').update(tenant).digest('hex')}`
}

/** `<tenant>.<type>`, for example `acme.message.created` or `_default.room.updated`. */
export function routingKeyOf (entry: { tenant: string, type: string }): string {
  return `${tenantWord(entry.tenant)}.${entry.type}`
}
