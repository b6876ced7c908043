import { createSigner } from 'fast-jwt'

export interface TokenArgs {
  sub?: string
  name?: string
  avatar?: string
  ttl?: string
  roles?: string
  permissions?: string
  tenant?: string
}

const TTL = /^(\d+)\s*(s|m|h|d)?$/

function ttlMs (ttl: string): number {
  const match = TTL.exec(ttl)
  if (match === null) throw new Error(`--ttl must look like 90s, 30m, 1h or 7d, got "${ttl}"`)
  const unit = { s: 1000, m: 60000, h: 3600000, d: 86400000 }[match[2] as 's' | 'm' | 'h' | 'd' | undefined ?? 's']
  return Number(match[1]) * unit
}

function list (value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(',').map((item) => item.trim()).filter((item) => item.length > 0)
}

/** `chat token`: a development token signed (HS256) with the secret the server verifies with. */
export function mintToken (secret: string | undefined, args: TokenArgs): string {
  if (secret === undefined || secret === '') throw new Error('set JWT_SECRET to the secret the server uses (JWT_SECRET=... npm run token -- --sub alice)')
  if (args.sub === undefined || args.sub === '') throw new Error('--sub is required')
  const claims: Record<string, unknown> = { sub: args.sub }
  if (args.name !== undefined) claims.name = args.name
  if (args.avatar !== undefined) claims.avatar = args.avatar
  if (args.tenant !== undefined) claims.tenant = args.tenant
  const roles = list(args.roles)
  if (roles !== undefined) claims.roles = roles
  const permissions = list(args.permissions)
  if (permissions !== undefined) claims.permissions = permissions
  const sign = createSigner({ key: secret, algorithm: 'HS256', expiresIn: ttlMs(args.ttl ?? '1h') })
  return sign(claims)
}
