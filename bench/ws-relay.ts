/**
 * The ceiling: a raw `ws` relay with no auth, no database and no broker. A socket joins rooms by name;
 * a send is parsed once, serialized once, written to every other socket of the room and acked.
 *   PORT=0 node --import tsx bench/ws-relay.ts
 * Frames: {"event":"join","id","data":{"room"}} -> ack; {"event":"send","id","data":{"room","content"}}
 * -> ack to the sender, {"event":"message","data":{"room","from","content","ts"}} to the others.
 */
import { createServer } from 'node:http'
import { WebSocketServer, type WebSocket } from 'ws'

interface Envelope { event?: unknown, id?: unknown, data?: { room?: unknown, content?: unknown } }

const rooms = new Map<string, Set<WebSocket>>()
const http = createServer((_request, response) => { response.writeHead(404).end() })
const wss = new WebSocketServer({ server: http, maxPayload: 65536 })
let connections = 0

wss.on('connection', (socket: WebSocket) => {
  const id = `c${++connections}`
  const joined = new Set<string>()
  socket.on('message', (raw, isBinary) => {
    if (isBinary) return
    let frame: Envelope
    try {
      frame = JSON.parse(raw.toString()) as Envelope
    } catch {
      return
    }
    const room = frame.data?.room
    if (typeof room !== 'string') return
    const ackId = typeof frame.id === 'string' ? frame.id : null
    if (frame.event === 'join') {
      let set = rooms.get(room)
      if (set === undefined) {
        set = new Set()
        rooms.set(room, set)
      }
      set.add(socket)
      joined.add(room)
    } else if (frame.event === 'send') {
      const set = rooms.get(room)
      if (set !== undefined && set.has(socket)) {
        const out = JSON.stringify({ event: 'message', data: { room, from: id, content: frame.data?.content, ts: Date.now() } })
        for (const peer of set) if (peer !== socket) peer.send(out)
      }
    } else {
      return
    }
    if (ackId !== null) socket.send(`{"event":"ack","id":${JSON.stringify(ackId)}}`)
  })
  socket.on('close', () => {
    for (const room of joined) {
      const set = rooms.get(room)
      set?.delete(socket)
      if (set?.size === 0) rooms.delete(room)
    }
  })
  socket.on('error', () => {})
})

http.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const address = http.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  process.stdout.write(`ws relay listening at http://127.0.0.1:${port}\n`)
})

function shutdown (): void {
  for (const socket of wss.clients) socket.terminate()
  wss.close()
  http.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
