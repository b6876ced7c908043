import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { createSigner } from 'fast-jwt'
import { databaseUrlProblem } from '../db/client.js'
import { settingsFromEnv } from '../plugins/core/env.js'
import { resolveConfig } from '../plugins/core/config.js'
import { createScratchDatabase } from './fixtures/database.js'
import { ROOT } from './fixtures/process.js'
import { freePort } from './fixtures/redis-server.js'
import { deployNginxConf, nginxSkip, startNginx } from './fixtures/nginx.js'
import { randomPrefix } from './fixtures/server.js'
import { TestClient } from './fixtures/ws-client.js'

// deploy/: the Dockerfile, the compose file and nginx.conf agree with each other and with the server.
// No container runtime runs here, so the compose file's two nodes also run as plain processes
// (`node dist/server.js`, with the compose file's environment) behind deploy/nginx.conf, and two users
// chat through it.

interface ComposeService {
  build?: { context: string, dockerfile: string }
  image?: string
  environment?: Record<string, string>
  volumes?: string[]
  depends_on?: Record<string, { condition: string }>
  ports?: string[]
}

const compose = parse(readFileSync(join(ROOT, 'deploy/compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService> }
const nginxConf = deployNginxConf()
const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8')
const nodeNames = Object.keys(compose.services).filter((name) => name.startsWith('chat-node-'))
const SECRET = 'a-compose-secret-that-is-long-enough'

/** A node's environment as compose would give it, with ${JWT_SECRET:?…} filled in. */
function nodeEnv (name: string): Record<string, string> {
  const env = compose.services[name]?.environment ?? {}
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, String(value).replace(/^\$\{JWT_SECRET:\?[^}]*\}$/, SECRET)]))
}

t.test('deploy/compose.yaml: Postgres, Redis, two nodes of deploy/Dockerfile, nginx with deploy/nginx.conf', async (t) => {
  t.same(Object.keys(compose.services).sort(), ['chat-node-1', 'chat-node-2', 'nginx', 'postgres', 'redis'])
  const upstream = [...nginxConf.matchAll(/^\s*server ([\w.-]+):(\d+)\b/gm)].map((match) => `${match[1]}:${match[2]}`)
  t.same(upstream, nodeNames.map((name) => `${name}:${nodeEnv(name).PORT}`), 'nginx.conf\'s upstream is exactly the compose nodes and their PORT')
  const nginx = compose.services.nginx!
  t.ok(nginx.volumes?.some((volume) => volume.startsWith('./nginx.conf:/etc/nginx/conf.d/')), 'nginx runs deploy/nginx.conf itself')
  t.same(Object.keys(nginx.depends_on ?? {}).sort(), nodeNames, 'nginx waits for both nodes')
  const nodeIds = new Set<string>()
  for (const name of nodeNames) {
    const service = compose.services[name]!
    t.same(service.build, { context: '..', dockerfile: 'deploy/Dockerfile' }, `${name} is built from deploy/Dockerfile`)
    t.match(service.depends_on, { postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } })
    const env = nodeEnv(name)
    t.equal(databaseUrlProblem(env.DATABASE_URL ?? ''), undefined, `${name}: DATABASE_URL is accepted`)
    t.equal(new URL(env.DATABASE_URL!).hostname, 'postgres')
    t.equal(new URL(env.REDIS_URL!).hostname, 'redis')
    // The environment the server would read: settings and suite options validate as at start.
    const settings = settingsFromEnv(env)
    t.equal(settings.production, true)
    t.equal(settings.host, '0.0.0.0', `${name} listens on every interface`)
    resolveConfig(settings.options)
    nodeIds.add(String((settings.options as { nodeId?: string }).nodeId))
  }
  t.equal(nodeIds.size, nodeNames.length, 'each node has its own nodeId')
  const postgres = compose.services.postgres!.environment ?? {}
  const url = new URL(nodeEnv('chat-node-1').DATABASE_URL!)
  t.same([url.username, url.password, url.pathname.slice(1)], [postgres.POSTGRES_USER, postgres.POSTGRES_PASSWORD, postgres.POSTGRES_DB], 'the nodes use the database compose creates')
})

t.test('deploy/Dockerfile: multi-stage, non-root, node dist/server.js, a health check on /ready', async (t) => {
  const lines = dockerfile.split('\n').filter((line) => !line.trimStart().startsWith('#'))
  const stages = lines.filter((line) => /^FROM /.test(line))
  t.ok(stages.length >= 2, 'a build stage and a runtime stage')
  const runtime = lines.slice(lines.lastIndexOf(stages.at(-1)!)).join('\n')
  t.match(runtime, /^USER node$/m, 'the runtime stage runs as the image\'s unprivileged user')
  t.match(runtime, /^CMD \["node", "dist\/server\.js"\]$/m, 'node on the built server, no npm or tsx in between')
  t.match(runtime, /^HEALTHCHECK [^\n]*\\\n[^\n]*\/ready/m, 'a health check on /ready')
  t.match(runtime, /--omit=dev/, 'production dependencies only')
  t.notMatch(runtime, /tsx|typescript/, 'no TypeScript at run time')
  const ignored = readFileSync(join(ROOT, 'deploy/Dockerfile.dockerignore'), 'utf8')
  t.match(ignored, /^node_modules$/m, 'the context leaves the host\'s node_modules out')
})

/** dist/ is built when missing or older than a source file of the build. */
function ensureBuilt (): void {
  const built = join(ROOT, 'dist/server.js')
  const newest = (dir: string): number => {
    let latest = 0
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })) {
      if (entry.isFile() && entry.name.endsWith('.ts')) latest = Math.max(latest, statSync(join(entry.parentPath, entry.name)).mtimeMs)
    }
    return latest
  }
  const sources = Math.max(...['plugins', 'lib', 'routes', 'schemas', 'db', 'bin'].map(newest), statSync(join(ROOT, 'index.ts')).mtimeMs, statSync(join(ROOT, 'server.ts')).mtimeMs)
  if (existsSync(built) && statSync(built).mtimeMs >= sources && existsSync(join(ROOT, 'public/client/index.js'))) return
  const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: ROOT, encoding: 'utf8' })
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`)
}

const services = process.env.DATABASE_URL && process.env.REDIS_URL ? false : 'needs DATABASE_URL and REDIS_URL (real Postgres and Redis)'

t.test('the compose nodes as plain processes (node dist/server.js) behind deploy/nginx.conf serve a chat', { skip: services || nginxSkip, timeout: 240000 }, async (t) => {
  ensureBuilt()
  const databaseUrl = await createScratchDatabase(t, process.env.DATABASE_URL!)
  const redisPrefix = randomPrefix()
  const nodes: Array<{ name: string, port: number, child: ChildProcess, output: () => string }> = []
  for (const name of nodeNames) {
    const port = await freePort()
    // The compose environment, with the service names pointed at this machine's Postgres and Redis.
    const env: Record<string, string> = { ...nodeEnv(name), HOST: '127.0.0.1', PORT: String(port), DATABASE_URL: databaseUrl, REDIS_URL: process.env.REDIS_URL! }
    env.CHAT_OPTIONS = JSON.stringify({ ...JSON.parse(env.CHAT_OPTIONS ?? '{}'), redisPrefix })
    const started = performance.now()
    const child = spawn(process.execPath, ['dist/server.js'], { cwd: ROOT, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not listen within 30 s:\n${output}`)), 30000)
      child.stdout.on('data', () => {
        if (!output.includes('Server listening at')) return
        clearTimeout(timer)
        resolve()
      })
      child.on('exit', () => { clearTimeout(timer); reject(new Error(`${name} exited:\n${output}`)) })
    })
    t.comment(`${name}: node dist/server.js listening after ${Math.round(performance.now() - started)} ms (load average ${(await import('node:os')).loadavg()[0]?.toFixed(1)})`)
    nodes.push({ name, port, child, output: () => output })
  }

  // deploy/nginx.conf with each compose service name resolved to its process: nothing else changes.
  let site = nginxConf
  for (const node of nodes) site = site.replace(`server ${node.name}:3000`, `server 127.0.0.1:${node.port}`)
  t.notMatch(site, /chat-node-/, 'every upstream is a running node')
  const { front, configTest } = await startNginx(t, (port) => site.replace('listen 80;', `listen 127.0.0.1:${port};`), '/ready')
  t.equal(configTest.status, 0, `nginx -t accepts it ${configTest.stderr}`)

  const sign = createSigner({ key: SECRET, algorithm: 'HS256', expiresIn: 600000 })
  const ws = `${front.replace(/^http/, 'ws')}/ws`
  const { client: alice } = await TestClient.session(ws, sign({ sub: 'alice', name: 'Alice' }))
  const { client: bob } = await TestClient.session(ws, sign({ sub: 'bob', name: 'Bob' }))
  const created = await alice.ack('room.create', { name: 'compose', type: 'GROUP', memberIds: ['bob'] })
  const roomId = (created.room as { id: string }).id
  await bob.next((frame) => frame.event === 'room.added', 10000)
  await alice.ack('message.send', { roomId, content: 'through nginx' })
  const received = await bob.next((frame) => frame.event === 'message.new', 10000)
  t.match(received.data, { roomId, message: { content: 'through nginx', sender: { id: 'alice' } } }, 'bob gets alice\'s message through nginx')
  alice.close()
  bob.close()

  for (const node of nodes) {
    node.child.kill('SIGTERM')
    const code = await new Promise<number | null>((resolve) => node.child.once('exit', (exitCode) => resolve(exitCode)))
    t.equal(code, 0, `${node.name} exits 0 on SIGTERM`)
    t.notMatch(node.output(), /already exists/, `${node.name}: no Postgres NOTICE on stdout`)
  }
})
