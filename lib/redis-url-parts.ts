/**
 * The pieces of the suite's own multi-host Redis URL forms (`redis+cluster://`, `redis+sentinel://`):
 * a URL cannot carry several hosts, so these are parsed by hand, and both forms must read the same way.
 */

export interface HostPort { host: string, port: number }

/** `host[:port][,host[:port]...]`; IPv6 hosts in brackets. `what` names an entry in errors. */
export function parseHostList (hosts: string, defaultPort: number, what: string): HostPort[] {
  return hosts.split(',').map((entry) => {
    // The last colon outside brackets separates the port: [::1]:26379, [::1], host:26379, host.
    const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(entry)
    const at = bracketed === null ? entry.lastIndexOf(':') : -1
    const host = bracketed !== null ? bracketed[1] as string : at >= 0 ? entry.slice(0, at) : entry
    const portText = bracketed !== null ? bracketed[2] : at >= 0 ? entry.slice(at + 1) : undefined
    const port = portText === undefined ? defaultPort : /^\d+$/.test(portText) ? Number(portText) : NaN
    if (host === '' || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`${what} "${entry}" is not host:port`)
    return { host, port }
  })
}

export interface Credentials { username?: string, password?: string }

/** `user:password`, `:password` or `user`, percent-decoded; empty parts are left out. */
export function parseUserInfo (auth: string | undefined): Credentials {
  if (auth === undefined || auth === '') return {}
  const colon = auth.indexOf(':')
  const username = decodeURIComponent(colon >= 0 ? auth.slice(0, colon) : auth)
  const password = colon >= 0 ? decodeURIComponent(auth.slice(colon + 1)) : undefined
  return { ...(username !== '' ? { username } : {}), ...(password !== undefined ? { password } : {}) }
}

/** `user:***@`, `user@` or nothing: credentials as a log line may show them. */
export function redactedUserInfo (credentials: Credentials): string {
  if (credentials.password !== undefined) return `${credentials.username ?? ''}:***@`
  return credentials.username !== undefined ? `${credentials.username}@` : ''
}
