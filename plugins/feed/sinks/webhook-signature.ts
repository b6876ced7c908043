import { createHmac } from 'node:crypto'

/** The header a webhook receiver checks (protocol 11.4). */
export const SIGNATURE_HEADER = 'X-Chat-Signature'

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. The time is signed with the body, so a receiver
 * that refuses an old `t` (say, over five minutes) is not open to a replay of a captured request.
 */
export function webhookSignature (secret: string, body: string, unixSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')
  return `t=${unixSeconds},v1=${v1}`
}
