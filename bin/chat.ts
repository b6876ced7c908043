#!/usr/bin/env node
// The `chat-suite` command. Compiled to dist/bin/chat.js by `npm run build` (the published bin); in the
// repository `npm run chat -- …` runs this file through tsx.
import { parseArgs, type ParseArgsConfig } from 'node:util'

const SERVER_ENV = 'PORT, HOST, DATABASE_URL, REDIS_URL, JWT_SECRET or JWT_PUBLIC_KEY, LOG_LEVEL, NODE_ENV, CHAT_OPTIONS'

interface Command {
  summary: string
  usage: string
  options: NonNullable<ParseArgsConfig['options']>
  run (values: Record<string, string | boolean | undefined>): Promise<void>
}

const COMMANDS: Record<string, Command> = {
  start: {
    summary: 'start the standalone server',
    usage: `usage: chat-suite start

Starts the standalone server (the suite and the demo page) and runs until SIGTERM or SIGINT.
Configured by the environment: ${SERVER_ENV}.
Migrations are applied at start. See the README's Configuration section for every variable.
`,
    options: {},
    async run () {
      const { start } = await import('../server.js')
      await start()
    },
  },
  migrate: {
    summary: 'apply the database migrations',
    usage: `usage: chat-suite migrate [--database URL]

Brings the database up to date and prints one line; several nodes may run it at once (advisory lock).
  --database URL   postgres://…, memory:// or file:<dir>; default: DATABASE_URL, else file:./data/pglite
`,
    options: { database: { type: 'string' } },
    async run (values) {
      const { runMigrate } = await import('./migrate.js')
      const database = typeof values.database === 'string' ? values.database : undefined
      await runMigrate(database ?? (process.env.DATABASE_URL || 'file:./data/pglite'))
    },
  },
  token: {
    summary: 'mint a development token signed with JWT_SECRET',
    usage: `usage: chat-suite token --sub ID [--name N] [--avatar URL] [--ttl 1h] [--roles a,b] [--permissions p,q] [--tenant T]

Prints an HS256 token signed with JWT_SECRET (the secret the server verifies with).
  --sub ID             the user id (required)
  --name, --avatar     profile claims
  --ttl                lifetime: 90s, 30m, 1h (default) or 7d
  --roles, --permissions   comma-separated claims
  --tenant             tenant claim
`,
    options: {
      sub: { type: 'string' },
      name: { type: 'string' },
      avatar: { type: 'string' },
      ttl: { type: 'string', default: '1h' },
      roles: { type: 'string' },
      permissions: { type: 'string' },
      tenant: { type: 'string' },
    },
    async run (values) {
      const { mintToken } = await import('./token.js')
      process.stdout.write(mintToken(process.env.JWT_SECRET, values as Record<string, string | undefined>) + '\n')
    },
  },
}

const USAGE = `usage: chat-suite <command> [options]

${Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(10)} ${command.summary}`).join('\n')}

\`chat-suite <command> --help\` describes one command.
`

const HELP = new Set(['--help', '-h', 'help'])

async function main (argv: string[]): Promise<void> {
  const [name, ...rest] = argv
  if (name === undefined || HELP.has(name)) {
    // `chat-suite help migrate` is `chat-suite migrate --help`.
    const topic = name === 'help' && rest[0] !== undefined ? COMMANDS[rest[0]] : undefined
    process.stdout.write(topic?.usage ?? USAGE)
    return
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    process.stderr.write(`chat-suite: unknown command "${name}"\n\n${USAGE}`)
    process.exitCode = 2
    return
  }
  let values: Record<string, string | boolean | undefined>
  try {
    // strict: an unknown option or a missing value is an error, never silently ignored.
    values = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, strict: true }).values
  } catch (error) {
    process.stderr.write(`chat-suite ${name}: ${error instanceof Error ? error.message : String(error)}\n\n${command.usage}`)
    process.exitCode = 2
    return
  }
  if (values.help === true) {
    process.stdout.write(command.usage)
    return
  }
  await command.run(values)
}

/**
 * One line per error, with the causes underneath (a driver's reason under "Failed query: …"). The
 * suite's own messages already start with "chat:", so the prefix is not repeated.
 */
function describeError (error: unknown): string {
  const lines: string[] = []
  let current: unknown = error
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const message = current instanceof Error ? current.message : String(current)
    if (!lines.some((line) => line.includes(message))) lines.push(depth === 0 ? message : `  cause: ${message}`)
    current = current instanceof Error ? current.cause : undefined
  }
  const first = lines[0] ?? 'failed'
  lines[0] = /^chat[:\s-]/.test(first) ? first : `chat-suite: ${first}`
  return lines.join('\n')
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(describeError(error) + '\n')
  process.exit(1)
})
