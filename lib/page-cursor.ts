import { chatError } from '../plugins/core/errors.js'

/**
 * Opaque keyset cursors: the sort key of a page's last item, as base64url JSON. The client hands it back
 * unread; the server takes only what it could have handed out, so a forged or stale-format cursor is
 * VALIDATION_FAILED rather than a query with odd values.
 */
export type CursorKey = readonly string[]

export function encodeCursor (key: CursorKey): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url')
}

/** The key of `text`, when it is `patterns.length` strings each matching its pattern; else VALIDATION_FAILED naming `request`. */
export function decodeCursor (text: string, patterns: readonly RegExp[], request: string): string[] {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
  } catch {
    value = null
  }
  const fits = Array.isArray(value) && value.length === patterns.length &&
    value.every((part, index) => typeof part === 'string' && (patterns[index] as RegExp).test(part))
  if (!fits) throw chatError('VALIDATION_FAILED', `cursor: not a cursor of ${request}`, [{ field: 'cursor', message: 'invalid cursor' }])
  return value as string[]
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const ANY_TEXT = /^/su
