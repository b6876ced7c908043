import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { ChatOptions } from './config.js'
import { databaseUrlProblem } from '../../db/client.js'
import { redisUrlProblem } from '../../lib/redis-connection.js'

export interface ServerSettings {
  port: number
  host: string
  logLevel: string
  production: boolean
  /** True when no JWT_SECRET was given and one was generated for this run (dev only). */
  generatedSecret: boolean
  options: ChatOptions
}

function portOf (value: string | undefined): number {
  if (value === undefined || value === '') return 3000
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be an integer from 0 to 65535, got "${value}"`)
  return port
}

/** A PEM in the variable itself, or a path to a file that holds it. */
function pemOf (value: string): string {
  return value.includes('-----BEGIN') ? value.replaceAll('\\n', '\n') : readFileSync(value, 'utf8')
}

/** A comma-separated list of origins, or undefined when the variable is unset or blank. */
function listOf (value: string | undefined): string[] | undefined {
  const items = (value ?? '').split(',').map((item) => item.trim()).filter((item) => item.length > 0)
  return items.length > 0 ? items : undefined
}

/** CORS_ORIGINS (comma-separated, "*" any) and CORS_CREDENTIALS=true become the `cors` option. */
function corsOf (env: NodeJS.ProcessEnv, given: ChatOptions['cors']): ChatOptions['cors'] {
  const origins = listOf(env.CORS_ORIGINS)
  const credentials = env.CORS_CREDENTIALS
  if (credentials !== undefined && credentials !== '' && credentials !== 'true' && credentials !== 'false') {
    throw new Error(`CORS_CREDENTIALS must be true or false, got "${credentials}"`)
  }
  if (origins === undefined) {
    if (credentials === 'true') throw new Error('CORS_CREDENTIALS=true needs CORS_ORIGINS (the origins allowed to send credentials)')
    return given
  }
  return credentials === 'true' ? { origins, credentials: true } : { origins }
}

/**
 * The standalone server's environment: PORT, HOST, DATABASE_URL, REDIS_URL, JWT_SECRET or
 * JWT_PUBLIC_KEY (JWT_ALGORITHMS, JWT_ISSUER, JWT_AUDIENCE), CORS_ORIGINS (CORS_CREDENTIALS),
 * ALLOWED_ORIGINS, LOG_LEVEL, NODE_ENV, and CHAT_OPTIONS (JSON, any other suite option). Production refuses to run without a key.
 */
export function settingsFromEnv (env: NodeJS.ProcessEnv): ServerSettings {
  const production = env.NODE_ENV === 'production'
  let extra: ChatOptions = {}
  if (env.CHAT_OPTIONS !== undefined && env.CHAT_OPTIONS !== '') {
    try {
      extra = JSON.parse(env.CHAT_OPTIONS) as ChatOptions
    } catch {
      throw new Error('CHAT_OPTIONS must be a JSON object of suite options')
    }
  }
  const jwt: NonNullable<ChatOptions['jwt']> = { ...extra.jwt }
  let generatedSecret = false
  if (env.JWT_SECRET !== undefined && env.JWT_SECRET !== '') jwt.secret = env.JWT_SECRET
  if (env.JWT_PUBLIC_KEY !== undefined && env.JWT_PUBLIC_KEY !== '') jwt.publicKey = pemOf(env.JWT_PUBLIC_KEY)
  if (env.JWT_ALGORITHMS !== undefined && env.JWT_ALGORITHMS !== '') {
    jwt.algorithms = env.JWT_ALGORITHMS.split(',').map((name) => name.trim()) as NonNullable<typeof jwt.algorithms>
  }
  if (env.JWT_ISSUER !== undefined && env.JWT_ISSUER !== '') jwt.issuer = env.JWT_ISSUER
  if (env.JWT_AUDIENCE !== undefined && env.JWT_AUDIENCE !== '') jwt.audience = env.JWT_AUDIENCE
  if (jwt.secret === undefined && jwt.publicKey === undefined) {
    if (production) throw new Error('NODE_ENV=production needs JWT_SECRET or JWT_PUBLIC_KEY: the server never makes up a key in production')
    jwt.secret = randomBytes(32).toString('base64url')
    generatedSecret = true
  }
  const options: ChatOptions = { ...extra, jwt }
  if (env.DATABASE_URL !== undefined && env.DATABASE_URL !== '') {
    // Named as the variable the operator set, not as the option it becomes.
    const problem = databaseUrlProblem(env.DATABASE_URL)
    if (problem !== undefined) throw new Error(`DATABASE_URL: ${problem}`)
    options.database = env.DATABASE_URL
  }
  if (env.REDIS_URL !== undefined && env.REDIS_URL !== '') {
    const problem = redisUrlProblem(env.REDIS_URL)
    if (problem !== undefined) throw new Error(`REDIS_URL: ${problem}`)
    options.redis = env.REDIS_URL
  }
  const cors = corsOf(env, options.cors)
  if (cors !== undefined) options.cors = cors
  const allowedOrigins = listOf(env.ALLOWED_ORIGINS)
  if (allowedOrigins !== undefined) options.allowedOrigins = allowedOrigins
  return {
    port: portOf(env.PORT),
    host: env.HOST !== undefined && env.HOST !== '' ? env.HOST : '127.0.0.1',
    logLevel: env.LOG_LEVEL !== undefined && env.LOG_LEVEL !== '' ? env.LOG_LEVEL : 'info',
    production,
    generatedSecret,
    options,
  }
}
