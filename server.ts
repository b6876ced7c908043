import { pathToFileURL } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import closeWithGrace from 'close-with-grace'
import chatSuite from './index.js'
import demoRoutes from './routes/demo/index.js'
import { settingsFromEnv, type ServerSettings } from './plugins/core/env.js'
import { redactUrl } from './plugins/core/logging.js'

/**
 * The standalone server: the same suite a host registers, on a Fastify instance of its own, plus the
 * demo page at `/` (not part of the suite: a host app does not want it).
 */
export async function buildServer (settings: ServerSettings, { demo = true }: { demo?: boolean } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: settings.logLevel,
      // Tokens travel in ?token= for browsers: never let them reach a log line.
      serializers: {
        req (request: { method: string, url: string, ip?: string }) {
          return { method: request.method, url: redactUrl(request.url), ip: request.ip }
        },
      },
    },
    forceCloseConnections: true,
    return503OnClosing: true,
  })
  await app.register(chatSuite, settings.options)
  if (demo) await app.register(demoRoutes, { wsPath: app.chat.config.wsPath })
  return app
}

function printDevHelp (app: FastifyInstance, settings: ServerSettings, address: string): void {
  const token = app.chat.signToken({ sub: 'alice', name: 'Alice' }, '24h')
  const wsUrl = `${address.replace(/^http/, 'ws')}${app.chat.config.wsPath}`
  process.stdout.write([
    '',
    'Development mode: no JWT_SECRET was set, so a secret was generated for this run.',
    `A token for user "alice", valid 24 h:\n\n  ${token}\n`,
    `Try it:\n\n  npx wscat -c "${wsUrl}" -H "Authorization: Bearer ${token}"\n`,
    `or open the demo page:\n\n  ${address}/?token=${token}\n`,
    'Set JWT_SECRET to keep tokens valid across restarts; `npm run token -- --sub bob` mints more with it.',
    '',
  ].join('\n') + '\n')
}

export async function start (env: NodeJS.ProcessEnv = process.env): Promise<FastifyInstance> {
  const settings = settingsFromEnv(env)
  const app = await buildServer(settings)
  closeWithGrace({ delay: 10000 }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'closing after an error')
    else app.log.info({ signal }, 'closing')
    await app.close()
  })
  const address = await app.listen({ port: settings.port, host: settings.host })
  if (settings.generatedSecret) printDevHelp(app, settings, address)
  return app
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  start().catch((error: unknown) => {
    process.stderr.write(`chat: failed to start: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  })
}
