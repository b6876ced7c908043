/** What the simulation's coordinator and its client processes say to each other over IPC. */
export type Command =
  | { seq: number, type: 'createRooms', rooms: Array<{ index: number, members: string[] }> }
  | { seq: number, type: 'connect', users: Array<{ id: string, roomId: string | null }>, concurrency: number }
  /** Sends per second from this process's sockets (0 stops sending); replies with the counters. */
  | { seq: number, type: 'rate', perSecond: number }
  | { seq: number, type: 'mark' }
  | { seq: number, type: 'close' }

export interface Counters {
  sent: number
  acks: number
  /** message.new frames received by this process's sockets. */
  deliveries: number
  /** Other pushes (presence, membership): not deliveries. */
  other: number
  errors: number
  /** Sends skipped because too many were waiting for their ack (the rate was not held). */
  skipped: number
  inFlight: number
  /** Ack latency since the previous mark, ms (null when nothing was acked). */
  p50: number | null
  p99: number | null
}

export type Reply =
  | { seq: number, type: 'created', rooms: Array<{ index: number, id: string }> }
  | { seq: number, type: 'connected', connected: number, failed: number, seconds: number }
  | { seq: number, type: 'mark', counters: Counters }
  | { seq: number, type: 'closed' }
  | { seq: number, type: 'failed', error: string }

export interface ClientInit {
  url: string
  secret: string
  contentLength: number
}
