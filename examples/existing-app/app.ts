/**
 * An existing Fastify app — its own routes, error handler, @fastify/jwt, postgres.js client and Redis
 * connection — that embeds the chat suite under /chat and reuses all of them.
 *
 *   DATABASE_URL=postgres://… REDIS_URL=redis://… APP_JWT_SECRET=… npx tsx examples/existing-app/app.ts
 */
import { pathToFileURL } from 'node:url'
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import postgres, { type Sql } from 'postgres'
import { Redis } from 'ioredis'
import chat from '../../index.js'

export interface ExampleOptions {
  databaseUrl: string
  redisUrl?: string
  jwtSecret: string
  /** Bookings that are confirmed: only their guest and host may open a direct chat (the authorize hook). */
  confirmedBookings?: Array<{ guest: string, host: string }>
  redisPrefix?: string
  /** Clients the caller owns (and closes); by default the app opens and closes its own. */
  sql?: Sql
  redis?: Redis
}

export interface ExampleApp {
  app: FastifyInstance
  sql: Sql
  redis: Redis | null
}

export async function buildExampleApp (options: ExampleOptions): Promise<ExampleApp> {
  const app = Fastify({ logger: false })
  const sql = options.sql ?? postgres(options.databaseUrl, { max: 5, onnotice: () => {} })
  const redis = options.redis ?? (options.redisUrl === undefined ? null : new Redis(options.redisUrl))
  const ownsClients = options.sql === undefined
  const bookings = options.confirmedBookings ?? []

  // The host's own pieces, as they were before the chat arrived.
  await app.register(fastifyJwt, { secret: options.jwtSecret })
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    void reply.code(error.statusCode ?? 500).send({ ok: false, problem: error.message })
  })
  app.get('/hello', async () => ({ hello: 'world' }))
  app.get('/boom', async () => { throw new Error('host failure') })
  app.get('/me', { onRequest: async (request) => { await request.jwtVerify() } }, async (request) => ({ me: request.user }))
  app.post('/login', async (request) => {
    const { user } = request.body as { user: string }
    return { token: app.jwt.sign({ sub: user, name: user.toUpperCase() }) }
  })

  await app.register(chat, {
    prefix: '/chat',
    // The host's @fastify/jwt verifies chat tokens too: one login for the app and its chat.
    verifyToken: (token) => app.jwt.verify(token),
    databaseClient: sql,
    ...(redis === null ? {} : { redisClient: redis }),
    redisPrefix: options.redisPrefix ?? 'example-chat:',
    authorize: ({ action, userId, data }) => {
      if (action !== 'dm.open') return true
      const other = (data as { userId: string }).userId
      return bookings.some((booking) => (booking.guest === userId && booking.host === other) || (booking.host === userId && booking.guest === other))
    },
  })

  // A host route that talks into the chat: confirming a booking posts a SYSTEM message to its room.
  app.post('/bookings/:roomId/confirm', { onRequest: async (request) => { await request.jwtVerify() } }, async (request) => {
    const { roomId } = request.params as { roomId: string }
    const message = await app.chat.sendSystemMessage(roomId, 'Booking confirmed 🎉')
    return { notified: message.seq }
  })

  app.addHook('onClose', async () => {
    // The host closes what the host opened; the suite never closes these.
    if (!ownsClients) return
    await sql.end()
    redis?.disconnect()
  })
  return { app, sql, redis }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { app } = await buildExampleApp({
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    ...(process.env.REDIS_URL !== undefined ? { redisUrl: process.env.REDIS_URL } : {}),
    jwtSecret: process.env.APP_JWT_SECRET ?? 'an-example-secret-for-the-host-app',
  })
  console.log(`example app at ${await app.listen({ port: Number(process.env.PORT ?? 3001) })}; chat at /chat/ws`)
}
