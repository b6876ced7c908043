import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { openDatabase, type ChatDb, type DatabaseHandle } from '../../db/client.js'
import { migrateDatabase } from '../../db/migrate.js'

export type ChatDatabase = Pick<DatabaseHandle, 'driver' | 'ping'>

declare module 'fastify' {
  interface FastifyInstance {
    chatDb: ChatDb
    chatDatabase: ChatDatabase
  }
}

/**
 * Opens the database the options name (or the host's postgres.js client), brings its schema up to date
 * before any route can query it, and decorates the Drizzle instance every service shares.
 */
export const databasePlugin = fp(async function databasePlugin (app: FastifyInstance) {
  const { databaseClient } = app.chatHooks
  const handle = await openDatabase(
    app.chatConfig.database,
    databaseClient === undefined ? {} : { client: databaseClient },
  )
  try {
    await migrateDatabase(handle)
  } catch (error) {
    // onClose is not registered yet: without this a failed start would leak the pool or the PGlite instance.
    await handle.close().catch(() => {})
    throw error
  }
  app.decorate('chatDb', handle.db)
  app.decorate('chatDatabase', { driver: handle.driver, ping: handle.ping })
  // handle.close leaves a host's client open: the host created it, the host ends it.
  app.addHook('onClose', async () => { await handle.close() })
  app.log.debug({ driver: handle.driver }, 'chat database ready')
}, { name: 'chat-database', dependencies: ['chat-config'], fastify: '5.x' })
