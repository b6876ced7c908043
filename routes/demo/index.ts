import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import fastifyStatic from '@fastify/static'

export interface DemoOptions {
  /** The WebSocket path the page connects to (the suite's wsPath, under its prefix). */
  wsPath: string
}

/** public/: two levels up from this file in the source tree, three when compiled to dist/routes/demo/. */
export function demoDirectory (): string {
  for (const candidate of ['../../public/', '../../../public/']) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url))
    if (existsSync(join(dir, 'index.html'))) return dir
  }
  throw new Error('demo: public/index.html not found')
}

/**
 * The demo chat page at `/`: public/ (index.html, app.js, style.css) and the built client under
 * /client/ (`npm run build:client`). Registered by the standalone server only, never by the suite.
 * Files are routed one by one (no wildcard), so every other URL still reaches the suite's routes and
 * its 404; `/demo-config.json` tells the page where the WebSocket is.
 */
export default async function demoRoutes (app: FastifyInstance, options: DemoOptions): Promise<void> {
  const root = demoDirectory()
  if (!existsSync(join(root, 'client', 'index.js'))) {
    app.log.warn('demo: public/client/ is not built; run `npm run build:client` for the demo page at /')
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    wildcard: false,
    index: 'index.html',
    decorateReply: false,
    globIgnore: ['**/*.d.ts'],
  })
  app.get('/demo-config.json', { schema: { hide: true } }, async () => ({ wsPath: options.wsPath }))
}
