import { ChatClientError } from './errors.js'
import { MAX_TIMER_MS, type ChatClientOptions } from './options.js'

/** The `exp` claim of a JWT (seconds), or null; the signature is the server's business. */
export function tokenExpiry (token: string): number | null {
  const part = token.split('.')[1]
  const decode = (globalThis as { atob?: (data: string) => string }).atob
  if (part === undefined || decode === undefined) return null
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=')
    const claims = JSON.parse(decode(base64)) as { exp?: unknown }
    return typeof claims.exp === 'number' ? claims.exp : null
  } catch {
    return null
  }
}

/**
 * The client's token: taken from the source before every (re)connect, remembered as the one the socket
 * authenticated with, and, from a token function, refreshed on the open socket before its `exp`.
 */
export class SessionToken {
  /** The token the current (or last) socket authenticated with. */
  last: string | null = null
  private readonly options: Pick<ChatClientOptions, 'token' | 'refreshToken'>
  /** Sends `auth` with the new token on the current session. */
  private readonly reauthenticate: (token: string) => Promise<unknown>
  private readonly failed: (error: ChatClientError) => void
  private timer: ReturnType<typeof setTimeout> | null = null

  constructor (options: Pick<ChatClientOptions, 'token' | 'refreshToken'>, reauthenticate: (token: string) => Promise<unknown>, failed: (error: ChatClientError) => void) {
    this.options = options
    this.reauthenticate = reauthenticate
    this.failed = failed
  }

  /** Whether another token can come: a token function, not a fixed token. */
  get renewable (): boolean {
    return typeof this.options.token === 'function'
  }

  /** The token now: the fixed one, or what the function gives. */
  async fetch (): Promise<string> {
    const source = this.options.token
    return typeof source === 'function' ? await source() : source
  }

  /** Refreshes at 80% of the token's life, while `current()` says the socket it was scheduled on is. */
  scheduleRefresh (current: () => boolean): void {
    if (!this.renewable || this.options.refreshToken === false || this.last === null) return
    const exp = tokenExpiry(this.last)
    if (exp === null) return
    const remaining = exp * 1000 - Date.now()
    const delay = Math.min(MAX_TIMER_MS, Math.max(1000, Math.floor(remaining * 0.8)))
    this.timer = setTimeout(() => { void this.refresh(current) }, delay)
  }

  cancelRefresh (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }

  private async refresh (current: () => boolean): Promise<void> {
    try {
      const token = await this.fetch()
      if (!current() || token === this.last) return
      await this.reauthenticate(token)
      if (!current()) return
      this.last = token
      this.scheduleRefresh(current)
    } catch (error) {
      // The socket carries on until its token expires; then 4401 and a reconnect with the provider.
      if (current()) this.failed(error instanceof ChatClientError ? error : new ChatClientError('UNAUTHENTICATED', `token refresh failed: ${String(error)}`))
    }
  }
}
