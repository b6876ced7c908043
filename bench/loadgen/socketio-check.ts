/** The Socket.IO target's wire check: the raw adapter of protocols.ts against socket.io-client. */
import { io } from 'socket.io-client'
import { sleep } from '../lib.js'
import { PROTOCOLS, sentAtOf } from '../protocols.js'

/** Checks the raw Socket.IO adapter against the real socket.io-client, both ways, before measuring. */
export async function checkSocketIoWire (url: string, token: (userId: string) => string, tag: string): Promise<void> {
  const protocol = PROTOCOLS.socketio
  const room = `conformance-${tag}`
  const client = io(url, { transports: ['websocket'], auth: { token: token(`${tag}-sio-client`) }, reconnection: false })
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve())
      client.once('connect_error', reject)
    })
    const raw = await protocol.connect(url, `${tag}-sio-raw`, token(`${tag}-sio-raw`))
    await protocol.join(raw, room)
    await client.timeout(5000).emitWithAck('join', { room })
    const rawGot = new Promise<Buffer>((resolve) => { raw.onPush = resolve })
    const clientGot = new Promise<unknown>((resolve) => client.once('message', resolve))
    const ack = await client.timeout(5000).emitWithAck('send', { room, content: '1|from socket.io-client' }) as { message?: unknown }
    if (ack.message === undefined) throw new Error(`socket.io-client send was refused: ${JSON.stringify(ack)}`)
    const pushed = await Promise.race([rawGot, sleep(5000).then(() => null)])
    if (pushed === null || Number.isNaN(sentAtOf(pushed))) throw new Error('the raw adapter did not read the push of a socket.io-client send')
    await raw.send(room, '2|from the raw adapter', `${tag}-c1`)
    const received = await Promise.race([clientGot, sleep(5000).then(() => null)]) as { content?: string } | null
    if (received?.content !== '2|from the raw adapter') throw new Error('socket.io-client did not receive the raw adapter\'s send')
    raw.close()
  } finally {
    client.disconnect()
  }
}
