/**
 * The Socket.IO stack of typical chat services, as the comparison point: Socket.IO 4 on the websocket
 * transport only, @socket.io/redis-adapter, a JWT middleware (fast-jwt), one `INSERT … RETURNING` per
 * message through postgres.js, then `socket.to(room).emit` and the ack callback.
 *   PORT=0 DATABASE_URL=postgres://… REDIS_URL=redis://… JWT_SECRET=… node --import tsx bench/socketio-server.ts
 * Events: `join` {room} -> ack {ok}; `send` {room, content, clientMsgId?} -> ack {message}, and
 * `message` {message} to the room's other sockets on every node.
 */
import { createServer } from 'node:http'
import { Server, type Socket } from 'socket.io'
import { createAdapter } from '@socket.io/redis-adapter'
import { Redis } from 'ioredis'
import postgres from 'postgres'
import { createVerifier } from 'fast-jwt'

const env = process.env
const secret = env.JWT_SECRET
if (secret === undefined || secret === '') throw new Error('socketio-server: JWT_SECRET is required')
const verify = createVerifier({ key: secret, algorithms: ['HS256'] })
const sql = postgres(env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test', { max: 10, onnotice: () => {} })
await sql`create table if not exists sio_messages (
  id uuid primary key default gen_random_uuid(),
  room text not null,
  sender text not null,
  content text not null,
  client_msg_id text,
  created_at timestamptz not null default now()
)`
await sql`create index if not exists sio_messages_room_created on sio_messages (room, created_at)`

const http = createServer((_request, response) => { response.writeHead(404).end() })
const io = new Server(http, { transports: ['websocket'], serveClient: false, maxHttpBufferSize: 65536 })
const pub = new Redis(env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: false })
const sub = pub.duplicate()
io.adapter(createAdapter(pub, sub, { key: env.REDIS_PREFIX ?? 'socket.io' }))

interface SocketData { userId: string }

io.use((socket: Socket, next) => {
  try {
    const token = (socket.handshake.auth as { token?: unknown }).token
    if (typeof token !== 'string') throw new Error('missing token')
    const claims = verify(token) as { sub?: unknown }
    if (typeof claims.sub !== 'string') throw new Error('no sub')
    ;(socket.data as SocketData).userId = claims.sub
    next()
  } catch (error) {
    next(error instanceof Error ? error : new Error('unauthorized'))
  }
})

io.on('connection', (socket: Socket) => {
  const userId = (socket.data as SocketData).userId
  void socket.join(`user:${userId}`)
  socket.on('join', (data: { room?: unknown }, ack?: (reply: unknown) => void) => {
    if (typeof data?.room !== 'string') return ack?.({ error: 'VALIDATION_FAILED' })
    void socket.join(data.room)
    ack?.({ ok: true })
  })
  socket.on('send', async (data: { room?: unknown, content?: unknown, clientMsgId?: unknown }, ack?: (reply: unknown) => void) => {
    const room = data?.room
    const content = typeof data?.content === 'string' ? data.content.trim() : ''
    if (typeof room !== 'string' || content.length === 0 || content.length > 4000) return ack?.({ error: 'VALIDATION_FAILED' })
    if (!socket.rooms.has(room)) return ack?.({ error: 'NOT_MEMBER' })
    try {
      const clientMsgId = typeof data.clientMsgId === 'string' ? data.clientMsgId : null
      const [row] = await sql<Array<{ id: string, created_at: Date }>>`
        insert into sio_messages (room, sender, content, client_msg_id) values (${room}, ${userId}, ${content}, ${clientMsgId})
        returning id, created_at`
      const message = { id: row?.id, room, sender: userId, content, clientMsgId, createdAt: row?.created_at }
      socket.to(room).emit('message', message)
      ack?.({ message })
    } catch {
      ack?.({ error: 'UNAVAILABLE' })
    }
  })
})

http.listen(Number(env.PORT ?? 0), env.HOST ?? '127.0.0.1', () => {
  const address = http.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  process.stdout.write(`socket.io stack listening at http://127.0.0.1:${port}\n`)
})

let closing = false
async function shutdown (): Promise<void> {
  if (closing) return
  closing = true
  setTimeout(() => process.exit(0), 3000).unref()
  io.close()
  await sql.end({ timeout: 1 })
  pub.disconnect()
  sub.disconnect()
  process.exit(0)
}
process.on('SIGTERM', () => { void shutdown() })
process.on('SIGINT', () => { void shutdown() })
