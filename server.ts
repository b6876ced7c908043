import { pathToFileURL } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import chatSuite from './index.js'
import demoRoutes from './routes/demo/index.js'
import { settingsFromEnv, type ServerSettings } from './plugins/core/env.js'
import { chatLoggerOptions } from './plugins/core/logging.js'

/** Where the log lines go instead of stdout (tests). */
export interface LogStream { write (line: string): void }

/**
 * The standalone server: the same suite a host registers, on a Fastify instance of its own, plus the
 * demo page at `/` (not part of the suite: a host app does not want it).
 */
export async function buildServer (settings: ServerSettings, { demo = true, logStream }: { demo?: boolean, logStream?: LogStream } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: settings.logLevel,
      ...(logStream !== undefined ? { stream: logStream } : {}),
      // Tokens travel in ?token= for browsers: never let them reach a log line, whichever route (or none)
      // the URL names.
      ...chatLoggerOptions,
    },
    forceCloseConnections: true,
    return503OnClosing: true,
    // Start-up waits up to connectTimeoutMs for Postgres and again for Redis, each failing with its own
    // cause: avvio's plugin timeout must not fire first with a message that names neither.
    pluginTimeout: Math.max(10000, 3 * (settings.options.connectTimeoutMs ?? 5000)),
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

/** How long a close may take before the process exits anyway (with 1). */
const CLOSE_TIMEOUT_MS = 15000
/** A repeated signal within this time of the first is ignored; after it, one forces the exit (with 1). */
const REPEAT_IGNORED_MS = 5000

/**
 * One SIGTERM or SIGINT closes the server and exits 0 once closed: the sends in flight are written and
 * acked, sockets hear 1001, pools and Redis close. Supervisors and wrappers often signal twice in a row
 * (tsx relays a signal again when its child has not exited within 30 ms, a shell's Ctrl-C reaches a
 * process group twice): a repeated signal during the first seconds of the close is ignored rather than
 * cutting the drain short. One after that is an operator who means it: exit 1 at once. A crash (an
 * uncaught exception or rejection) closes the same way and exits 1.
 */
function closeOnSignals (app: FastifyInstance): void {
  let closingSince: number | null = null
  async function close (exitCode: number): Promise<void> {
    closingSince = Date.now()
    setTimeout(() => {
      app.log.error({ timeoutMs: CLOSE_TIMEOUT_MS }, 'close did not finish in time: exiting')
      process.exit(1)
    }, CLOSE_TIMEOUT_MS).unref()
    try {
      await app.close()
    } catch (error) {
      app.log.error({ err: error }, 'close failed')
      exitCode = 1
    }
    process.exit(exitCode)
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closingSince === null) {
      app.log.info({ signal }, 'closing')
      void close(0)
    } else if (Date.now() - closingSince < REPEAT_IGNORED_MS) {
      app.log.info({ signal }, 'already closing: a repeated signal is ignored')
    } else {
      app.log.warn({ signal }, 'signal during a long close: exiting now')
      process.exit(1)
    }
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  const onCrash = (error: unknown): void => {
    app.log.fatal({ err: error }, 'closing after an error')
    if (closingSince === null) void close(1)
  }
  process.on('uncaughtException', onCrash)
  process.on('unhandledRejection', onCrash)
}

export async function start (env: NodeJS.ProcessEnv = process.env): Promise<FastifyInstance> {
  const settings = settingsFromEnv(env)
  const app = await buildServer(settings)
  closeOnSignals(app)
  const address = await app.listen({ port: settings.port, host: settings.host })
  if (settings.generatedSecret) printDevHelp(app, settings, address)
  return app
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  start().catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error)
    process.stderr.write(`chat: failed to start: ${message.replace(/^chat: /, '')}\n`)
    process.exit(1)
  })
}
