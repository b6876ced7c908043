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
  // A first query within connectTimeoutMs, so that an unreachable database fails start-up with its
  // address and the driver's cause (not with the host's plugin timeout, nor later in a migration query).
  const { connectTimeoutMs } = app.chatConfig
  const handle = await openDatabase(
    app.chatConfig.database,
    databaseClient === undefined ? { connectTimeoutMs } : { client: databaseClient, connectTimeoutMs },
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
