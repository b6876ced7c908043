/**
 * A user is the pair (tenant, sub) (protocol 11.1): the same `sub` in two tenants is two users. Whatever
 * is kept per user outside the database — the hub's user channel and its local sockets, the connection cap,
 * rate-limit buckets, the membership cache, presence keys — is keyed by this one string.
 *
 * The default tenant's key is the `sub` itself, so keys written before tenants (Redis presence, logs) stay
 * valid. Other tenants join tenant and sub with a NUL, which neither claim may contain (claims are
 * refused with it, lib/input-hygiene.ts), so no `sub` of the default tenant can spell another tenant's key.
 */
export interface TenantUser {
  readonly id: string
  readonly tenant: string
}

const SEPARATOR = '\u0000'

/**
 * The id the server-side API acts and posts SYSTEM messages as; tokens may not claim it. It is one user
 * across tenants: its users row is the default tenant's, whatever room it posts in.
 */
export const SERVER_USER_ID = 'system'

export function userKeyOf (user: TenantUser): string {
  return user.tenant === '' ? user.id : `${user.tenant}${SEPARATOR}${user.id}`
}

/** The pair back from a key (the membership cache fills a key's rooms with one query per tenant). */
export function userOfKey (key: string): TenantUser {
  const at = key.indexOf(SEPARATOR)
  return at < 0 ? { id: key, tenant: '' } : { id: key.slice(at + 1), tenant: key.slice(0, at) }
}

/** The keys of users of one tenant (the members of a room are users of the room's tenant). */
export function userKeysOf (tenant: string, ids: Iterable<string>): string[] {
  return Array.from(ids, (id) => userKeyOf({ id, tenant }))
}
