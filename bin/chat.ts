import { parseArgs } from 'node:util'
import { runMigrate } from './migrate.js'
import { mintToken } from './token.js'

const USAGE = `usage: chat <command>
  start                                  start the standalone server (env: PORT, HOST, DATABASE_URL, REDIS_URL, JWT_SECRET, ...)
  migrate [--database URL]               apply the migrations (default: DATABASE_URL, else the embedded PGlite in ./data/pglite)
  token --sub ID [--name N] [--avatar URL] [--ttl 1h] [--roles a,b] [--permissions p,q] [--tenant T]
                                         mint a development token signed with JWT_SECRET
`

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'start': {
      const { start } = await import('../server.js')
      await start()
      return
    }
    case 'migrate': {
      const { values } = parseArgs({ args: rest, options: { database: { type: 'string' } } })
      await runMigrate(values.database ?? process.env.DATABASE_URL ?? 'file:./data/pglite')
      return
    }
    case 'token': {
      const { values } = parseArgs({
        args: rest,
        options: {
          sub: { type: 'string' },
          name: { type: 'string' },
          avatar: { type: 'string' },
          ttl: { type: 'string', default: '1h' },
          roles: { type: 'string' },
          permissions: { type: 'string' },
          tenant: { type: 'string' },
        },
      })
      process.stdout.write(mintToken(process.env.JWT_SECRET, values) + '\n')
      return
    }
    default:
      process.stderr.write(USAGE)
      process.exitCode = command === undefined || command === 'help' || command === '--help' ? 0 : 2
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`chat: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
