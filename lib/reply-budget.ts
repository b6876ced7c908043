/**
 * The bytes one reply frame may still take. A reply that lists things (events, messages, members) asks
 * the budget before it adds each one, with the item's serialized text, so a page is cut before the
 * limit instead of a frame being built past it and refused afterwards.
 */
export class ReplyBudget {
  private used: number

  /** `reserved`: what the frame takes besides the items (the envelope, the fixed fields). */
  constructor (readonly limit: number, reserved = ENVELOPE_RESERVE) {
    this.used = reserved
  }

  get remaining (): number {
    return Math.max(0, this.limit - this.used)
  }

  /** Sets aside bytes that the reply will take whatever happens (a room's fixed fields). */
  reserve (bytes: number): void {
    this.used += bytes
  }

  /**
   * Takes room for one item of a list (its JSON text and the comma before it); false, taking nothing,
   * when it would not fit.
   */
  take (json: string): boolean {
    const bytes = utf8Bytes(json) + 1
    if (this.used + bytes > this.limit) return false
    this.used += bytes
    return true
  }
}

/** The first items of a list that fit in the budget, each taken as its JSON text. */
export function fitList<T> (items: readonly T[], budget: ReplyBudget): T[] {
  let count = 0
  while (count < items.length && budget.take(JSON.stringify(items[count]))) count += 1
  return count === items.length ? [...items] : items.slice(0, count)
}

/**
 * Room for `{"event":"ack","id":…,"data":…}` around a reply's data: an id is at most 64 characters, and
 * JSON may escape each one in 6 bytes.
 */
export const ENVELOPE_RESERVE = 32 + 6 * 64

/** The UTF-8 size of a string (counted, not encoded). */
export function utf8Bytes (text: string): number {
  return Buffer.byteLength(text, 'utf8')
}

/** True when a string's UTF-8 form may be larger than `limit` bytes (a UTF-16 unit is at most 3 bytes). */
export function mayExceed (text: string, limit: number): boolean {
  return text.length * 3 > limit && Buffer.byteLength(text, 'utf8') > limit
}
