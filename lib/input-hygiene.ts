/**
 * Text that cannot be stored as it was sent: a NUL character (PostgreSQL text cannot hold it) or a UTF-16
 * surrogate without its pair (not a Unicode scalar value; PostgreSQL's JSON refuses it, a UTF-8 encoder
 * silently replaces it). Such a string is refused with VALIDATION_FAILED before any query, on WebSocket
 * (the gateway, after the event's schema) and REST (a preHandler of the suite's routes), instead of
 * failing deep in the database, where one bad message would fail every send of its group-commit batch.
 */
export function isStorableText (value: string): boolean {
  // String.prototype.isWellFormed is in Node 20 (ES2024); the project's TypeScript lib is ES2023.
  return (value as unknown as WellFormed).isWellFormed() && !value.includes('\u0000')
}

interface WellFormed { isWellFormed (): boolean }

/** Plain objects' and arrays' nesting this walk follows; deeper input was refused by its schema already. */
const MAX_DEPTH = 64

/**
 * The dotted path of the first string (value or key) in `value` that is not storable text, or null. Walks
 * iteratively (no recursion), so deep input cannot overflow the stack.
 */
export function unstorableField (value: unknown, root = 'data'): string | null {
  const stack: Array<{ value: unknown, path: string, depth: number }> = [{ value, path: '', depth: 0 }]
  while (stack.length > 0) {
    const { value: current, path, depth } = stack.pop() as { value: unknown, path: string, depth: number }
    if (typeof current === 'string') {
      if (!isStorableText(current)) return path === '' ? root : path
      continue
    }
    if (typeof current !== 'object' || current === null || depth >= MAX_DEPTH) continue
    if (Array.isArray(current)) {
      for (let index = current.length - 1; index >= 0; index -= 1) {
        stack.push({ value: current[index], path: path === '' ? String(index) : `${path}.${index}`, depth: depth + 1 })
      }
      continue
    }
    const keys = Object.keys(current)
    for (let index = keys.length - 1; index >= 0; index -= 1) {
      const key = keys[index] as string
      const field = path === '' ? key : `${path}.${key}`
      if (!isStorableText(key)) return path === '' ? root : path
      stack.push({ value: (current as Record<string, unknown>)[key], path: field, depth: depth + 1 })
    }
  }
  return null
}
