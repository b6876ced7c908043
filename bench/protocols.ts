/**
 * The load generator's protocol adapters. All three targets are driven through the same raw `ws`
 * client, so that the generator's own cost per frame is the same whichever server it measures: a push
 * is counted without parsing it, and only sampled receivers read the send time out of its content.
 *   chat      this suite's envelope: {"event","id","data"}, acks after the commit
 *   socketio  Engine.IO 4 / Socket.IO 5 wire format on the websocket transport (what socket.io-client
 *             sends; bench/loadgen.ts checks it against socket.io-client before each Socket.IO run)
 *   relay     the raw relay's {"event":"join"|"send","id","data"} frames
 */
import { WebSocket, type RawData } from 'ws'

export type TargetKind = 'chat' | 'socketio' | 'relay'

type Waiter = { resolve: () => void, reject: (error: Error) => void }

/** One client socket of a target. */
export abstract class Peer {
  /** Each message a room member receives (the deliveries counted). */
  onPush: ((raw: Buffer) => void) | null = null
  /** Any other push (presence, membership, …): counted apart. */
  onOther: ((raw: Buffer) => void) | null = null
  /** This suite's session.ready frame, kept for the scenarios that read its rooms (conns); null elsewhere. */
  readyFrame: Buffer | null = null
  protected counter = 0
  protected readonly pending = new Map<number, Waiter>()
  private closedWith: Error | null = null

  constructor (readonly userId: string, readonly socket: WebSocket) {
    socket.on('close', (code) => {
      this.closedWith = new Error(`socket of ${userId} closed with ${code}`)
      for (const waiter of this.pending.values()) waiter.reject(this.closedWith)
      this.pending.clear()
    })
    socket.on('error', () => {})
  }

  get outstanding (): number {
    return this.pending.size
  }

  /** Sends a message to a room; resolves on its ack, rejects on an error reply or a closed socket. */
  abstract send (room: string, content: string, clientMsgId: string): Promise<void>

  protected request (frameOf: (id: number) => string): Promise<void> {
    if (this.closedWith !== null) return Promise.reject(this.closedWith)
    const id = ++this.counter
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.socket.send(frameOf(id))
    })
  }

  protected settle (id: number, error: string | null): void {
    const waiter = this.pending.get(id)
    if (waiter === undefined) return
    this.pending.delete(id)
    if (error === null) waiter.resolve()
    else waiter.reject(new Error(error))
  }

  /** Starts reading the target's frames (after the handshake, which reads its own). */
  attach (): void {
    this.socket.on('message', (data: RawData) => { this.receive(data as Buffer) })
  }

  /** One frame of the target: settles an ack or error reply, or hands a push on. */
  protected abstract receive (raw: Buffer): void

  /** A push: a room message (counted as a delivery) or anything else. */
  protected pushed (raw: Buffer, isMessage: boolean): void {
    if (isMessage) this.onPush?.(raw)
    else this.onOther?.(raw)
  }

  close (): void {
    this.socket.terminate()
  }
}

export interface Protocol {
  readonly kind: TargetKind
  /** Opens an authenticated socket (the relay has no auth) and resolves once it can send. */
  connect (baseUrl: string, userId: string, token: string): Promise<Peer>
  /** Creates a room owned by `owner` with these members; returns what `send` addresses it by. */
  createRoom (owner: Peer, name: string, memberIds: string[]): Promise<string>
  /** Makes a connected member listen to the room (the chat server subscribes members at session start). */
  join (peer: Peer, room: string): Promise<void>
}

const BRACE = 0x7b
const DIGIT_ZERO = 0x30

function opened (socket: WebSocket, timeoutMs: number, ready: (resolve: () => void, reject: (error: Error) => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.terminate()
      reject(new Error('connect timed out'))
    }, timeoutMs)
    const done = (error?: Error): void => {
      clearTimeout(timer)
      socket.off('close', onClose)
      if (error === undefined) resolve()
      else reject(error)
    }
    const onClose = (code: number, reason: Buffer): void => done(new Error(`closed ${code} ${reason.toString()}`))
    socket.once('error', (error) => done(error))
    socket.on('close', onClose)
    ready(() => done(), (error) => done(error))
  })
}

// ---- this server -------------------------------------------------------------------------------

/** Bytes 0..9 of every frame of the suite are `{"event":"`: byte 10 tells an ack or error from a push. */
const EVENT_AT = 10
const ACK_A = 'a'.charCodeAt(0)
const ERROR_E = 'e'.charCodeAt(0)
const MESSAGE_M = 'm'.charCodeAt(0)

class ChatPeer extends Peer {
  protected receive (raw: Buffer): void {
    const first = raw[EVENT_AT]
    if (first === ACK_A || first === ERROR_E) {
      const frame = JSON.parse(raw.toString()) as { event: string, id?: string, error?: { code?: string } }
      if (frame.id !== undefined) this.settle(Number(frame.id), frame.event === 'ack' ? null : frame.error?.code ?? 'error')
      return
    }
    // {"event":"message.new",…}: byte 10 is its "m" (message.updated and .deleted are not sent here).
    this.pushed(raw, first === MESSAGE_M)
  }

  requestData (event: string, data: unknown): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const id = ++this.counter
      const listener = (raw: RawData): void => {
        const frame = JSON.parse((raw as Buffer).toString()) as { event: string, id?: string, data?: Record<string, unknown>, error?: { code?: string, message?: string } }
        if (frame.id !== String(id)) return
        this.socket.off('message', listener)
        if (frame.event === 'ack') resolve(frame.data ?? {})
        else reject(new Error(`${event}: ${frame.error?.code ?? 'error'} ${frame.error?.message ?? ''}`))
      }
      this.socket.on('message', listener)
      this.socket.send(JSON.stringify({ event, id: String(id), data }))
    })
  }

  send (room: string, content: string, clientMsgId: string): Promise<void> {
    return this.request((id) => `{"event":"message.send","id":"${id}","data":{"roomId":"${room}","content":${JSON.stringify(content)},"clientMsgId":"${clientMsgId}"}}`)
  }
}

export const chatProtocol: Protocol = {
  kind: 'chat',
  async connect (baseUrl, userId, token) {
    const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/ws`, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false, skipUTF8Validation: true })
    let ready: Buffer | null = null
    await opened(socket, 30000, (resolve, reject) => {
      const onFirst = (raw: RawData): void => {
        const text = (raw as Buffer).toString()
        if (text.startsWith('{"event":"session.ready"')) {
          socket.off('message', onFirst)
          ready = raw as Buffer
          resolve()
        } else if (text.startsWith('{"event":"error"')) {
          socket.off('message', onFirst)
          reject(new Error(`expected session.ready, got ${text.slice(0, 200)}`))
        }
        // Anything else before session.ready (a presence push of a room member, seen in small rooms)
        // is not this generator's business.
      }
      socket.on('message', onFirst)
    })
    const peer = new ChatPeer(userId, socket)
    peer.readyFrame = ready
    peer.attach()
    return peer
  },
  async createRoom (owner, name, memberIds) {
    const chat = owner as ChatPeer
    const first = memberIds.slice(0, 99)
    const created = await chat.requestData('room.create', { name, type: 'GROUP', memberIds: first })
    const roomId = (created.room as { id: string }).id
    for (let index = first.length; index < memberIds.length; index += 100) {
      await chat.requestData('room.member.add', { roomId, userIds: memberIds.slice(index, index + 100) })
    }
    return roomId
  },
  async join () {},
}

/** A request of this suite's protocol that resolves with its ack's data (the conns scenario's `sync`). */
export async function chatRequest (peer: Peer, event: string, data: unknown): Promise<Record<string, unknown>> {
  if (!(peer instanceof ChatPeer)) throw new Error('chatRequest: not a peer of this suite')
  return await peer.requestData(event, data)
}

// ---- Socket.IO ----------------------------------------------------------------------------------

const EIO_PING = '2'.charCodeAt(0)
const EIO_MESSAGE = '4'.charCodeAt(0)
const SIO_EVENT = '2'.charCodeAt(0)
const SIO_ACK = '3'.charCodeAt(0)

class SocketIoPeer extends Peer {
  protected receive (raw: Buffer): void {
    const type = raw[0]
    if (type === EIO_PING) {
      this.socket.send('3')
      return
    }
    if (type !== EIO_MESSAGE) return
    const packet = raw[1]
    if (packet === SIO_EVENT) {
      // 42["message",…]: the byte after 42[" is the event's first letter.
      this.pushed(raw, raw[4] === MESSAGE_M)
      return
    }
    if (packet !== SIO_ACK) return
    let index = 2
    let id = 0
    for (; index < raw.length; index += 1) {
      const digit = (raw[index] as number) - DIGIT_ZERO
      if (digit < 0 || digit > 9) break
      id = id * 10 + digit
    }
    // 43<id>[{"message":…}], [{"ok":true}] or [{"error":"…"}]
    this.settle(id, raw[index + 3] === ERROR_E ? raw.toString('utf8', index) : null)
  }

  emit (event: string, data: unknown): Promise<void> {
    return this.request((id) => `42${id}${JSON.stringify([event, data])}`)
  }

  send (room: string, content: string, clientMsgId: string): Promise<void> {
    return this.request((id) => `42${id}["send",{"room":"${room}","content":${JSON.stringify(content)},"clientMsgId":"${clientMsgId}"}]`)
  }
}

export const socketIoProtocol: Protocol = {
  kind: 'socketio',
  async connect (baseUrl, userId, token) {
    const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false, skipUTF8Validation: true })
    await opened(socket, 30000, (resolve, reject) => {
      const onFrame = (raw: RawData): void => {
        const text = (raw as Buffer).toString()
        if (text.startsWith('0')) {
          socket.send(`40${JSON.stringify({ token })}`)
        } else if (text.startsWith('40')) {
          socket.off('message', onFrame)
          resolve()
        } else if (text.startsWith('44')) {
          socket.off('message', onFrame)
          reject(new Error(`connect refused: ${text}`))
        }
      }
      socket.on('message', onFrame)
    })
    const peer = new SocketIoPeer(userId, socket)
    peer.attach()
    return peer
  },
  async createRoom (_owner, name) {
    return name
  },
  async join (peer, room) {
    await (peer as SocketIoPeer).emit('join', { room })
  },
}

// ---- raw ws relay --------------------------------------------------------------------------------

class RelayPeer extends Peer {
  protected receive (raw: Buffer): void {
    if (raw[0] === BRACE && raw[EVENT_AT] === ACK_A) {
      // {"event":"ack","id":"<n>"}
      const start = raw.indexOf('"id":"') + 6
      this.settle(Number(raw.toString('latin1', start, raw.indexOf('"', start))), null)
      return
    }
    this.pushed(raw, raw[EVENT_AT] === MESSAGE_M)
  }

  join (room: string): Promise<void> {
    return this.request((id) => `{"event":"join","id":"${id}","data":{"room":"${room}"}}`)
  }

  send (room: string, content: string): Promise<void> {
    return this.request((id) => `{"event":"send","id":"${id}","data":{"room":"${room}","content":${JSON.stringify(content)}}}`)
  }
}

export const relayProtocol: Protocol = {
  kind: 'relay',
  async connect (baseUrl, userId) {
    const socket = new WebSocket(baseUrl.replace(/^http/, 'ws'), { perMessageDeflate: false, skipUTF8Validation: true })
    await opened(socket, 30000, (resolve) => socket.once('open', () => resolve()))
    const peer = new RelayPeer(userId, socket)
    peer.attach()
    return peer
  },
  async createRoom (_owner, name) {
    return name
  },
  async join (peer, room) {
    await (peer as RelayPeer).join(room)
  },
}

export const PROTOCOLS: Record<TargetKind, Protocol> = { chat: chatProtocol, socketio: socketIoProtocol, relay: relayProtocol }

const CONTENT_KEY = Buffer.from('"content":"')

/**
 * Reads the send time a sender wrote at the start of the content (`<performance.now()>|…`) out of a
 * push, without parsing the JSON. NaN when the frame carries none.
 */
export function sentAtOf (raw: Buffer): number {
  const start = raw.indexOf(CONTENT_KEY)
  if (start < 0) return NaN
  const from = start + CONTENT_KEY.length
  const end = raw.indexOf(0x7c, from)
  if (end < 0 || end - from > 24) return NaN
  return Number(raw.toString('latin1', from, end))
}
