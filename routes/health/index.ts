import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { withTimeout } from '../../lib/deadline.js'

const Health = Type.Object({ status: Type.Literal('ok'), uptime: Type.Number({ description: 'seconds' }) })
const Ready = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  down: Type.Array(Type.String(), { description: 'what does not answer: database, broker, shutdown' }),
})

const PING_TIMEOUT_MS = 2000

async function answers (check: () => Promise<void>): Promise<boolean> {
  try {
    await withTimeout(check(), PING_TIMEOUT_MS, () => new Error('timeout'))
    return true
  } catch {
    return false
  }
}

/** Liveness needs nothing; readiness asks the database and the broker, and says no while shutting down. */
export default async function healthRoutes (app: FastifyInstance): Promise<void> {
  let closing = false
  app.addHook('preClose', async () => { closing = true })

  app.get('/health', {
    schema: { tags: ['health'], summary: 'Liveness: the process answers', response: { 200: Health } },
  }, async () => ({ status: 'ok' as const, uptime: process.uptime() }))

  app.get('/ready', {
    schema: { tags: ['health'], summary: 'Readiness: database and broker answer', response: { 200: Ready, 503: Ready } },
  }, async (_request, reply) => {
    const down: string[] = []
    if (closing) down.push('shutdown')
    const [database, broker] = await Promise.all([answers(() => app.chatDatabase.ping()), answers(() => app.chatBroker.ping())])
    if (!database) down.push('database')
    if (!broker) down.push('broker')
    if (down.length > 0) return reply.code(503).send({ status: 'unavailable' as const, down })
    return { status: 'ok' as const, down }
  })
}
