import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { Connection } from '../realtime/connection.js'
import { RoomId } from '../../schemas/room.js'

/** Protocol constants (section 5): a start is forwarded at most once per user and room in this window. */
export const TYPING_THROTTLE_MS = 2000
/** A start not renewed within this time ends with `typing {isTyping: false}`. */
export const TYPING_TIMEOUT_MS = 6000
/** Granularity of the expiry: typing ends between 6 and 6.25 s after the last start. */
const SWEEP_MS = 250

interface TypingState {
  roomId: string
  userId: string
  /** The socket of the latest start: its close ends the typing, and it never hears its own typing. */
  connection: Connection
  /** Whether the room was told `isTyping: true` (a start dropped by the throttle tells nobody). */
  announced: boolean
  expiresAt: number
}

export interface TypingService {
  /** Ends a user's typing in a room now (for example when their message is sent); no-op when not typing. */
  stop (roomId: string, userId: string, except?: Connection): Promise<void>
  /** How many user-room pairs are typing on this node. */
  readonly activeCount: number
}

declare module 'fastify' {
  interface FastifyInstance {
    chatTyping: TypingService
  }
}

const RoomRef = Type.Object({ roomId: RoomId }, { additionalProperties: false })
const Empty = Type.Object({}, { additionalProperties: false })

function keyOf (roomId: string, userId: string): string {
  return `${roomId}\u0000${userId}`
}

function frameOf (roomId: string, userId: string, isTyping: boolean): string {
  return JSON.stringify({ event: 'typing', data: { roomId, userId, isTyping } })
}

/**
 * Typing indicators: ephemeral, per node. One sweep timer ends the starts that were not renewed; the
 * 2 s forwarding window is shared by all nodes through a Redis key when the suite has Redis.
 */
export const typingPlugin = fp(async function typingPlugin (app: FastifyInstance) {
  const { chatHub: hub, chatGateway: gateway, chatConfig: config, chatRooms: rooms } = app
  const redis = app.chatRedis
  const log = app.log.child({ concern: 'typing' })
  const states = new Map<string, TypingState>()
  const byConnection = new Map<Connection, Set<string>>()
  /** When a start was last forwarded per user and room on this node; kept past a stop, for the window. */
  const lastForwarded = new Map<string, number>()
  let sweepTimer: NodeJS.Timeout | null = null

  function publish (roomId: string, userId: string, isTyping: boolean, except: Connection | null): void {
    hub.publishRoom(roomId, frameOf(roomId, userId, isTyping), except === null ? {} : { except })
      .catch((error: unknown) => log.warn({ err: error, roomId }, 'typing push failed'))
  }

  function own (key: string, connection: Connection): void {
    let keys = byConnection.get(connection)
    if (keys === undefined) {
      keys = new Set()
      byConnection.set(connection, keys)
    }
    keys.add(key)
  }

  function disown (key: string, connection: Connection): void {
    const keys = byConnection.get(connection)
    if (keys === undefined) return
    keys.delete(key)
    if (keys.size === 0) byConnection.delete(connection)
  }

  function end (key: string, except: Connection | null): void {
    const state = states.get(key)
    if (state === undefined) return
    states.delete(key)
    disown(key, state.connection)
    if (state.announced) publish(state.roomId, state.userId, false, except)
  }

  function sweep (): void {
    const now = Date.now()
    for (const [key, state] of states) {
      if (state.expiresAt <= now) end(key, state.connection)
    }
    for (const [key, at] of lastForwarded) {
      if (now - at >= TYPING_THROTTLE_MS) lastForwarded.delete(key)
    }
    if (states.size === 0 && lastForwarded.size === 0 && sweepTimer !== null) {
      clearInterval(sweepTimer)
      sweepTimer = null
    }
  }

  function armSweep (): void {
    if (sweepTimer !== null) return
    sweepTimer = setInterval(sweep, SWEEP_MS)
    sweepTimer.unref()
  }

  /** True when this start may be forwarded: the window is free on this node and, with Redis, on every node. */
  async function takeWindow (key: string, roomId: string, userId: string, now: number): Promise<boolean> {
    const last = lastForwarded.get(key)
    if (last !== undefined && now - last < TYPING_THROTTLE_MS) return false
    lastForwarded.set(key, now)
    if (redis === null) return true
    try {
      const taken = await redis.set(`${config.redisPrefix}typing:${roomId}:${userId}`, '1', 'PX', TYPING_THROTTLE_MS, 'NX')
      return taken === 'OK'
    } catch (error) {
      // An indicator more is better than none while Redis is away.
      log.debug({ err: error }, 'typing window not shared: Redis unavailable')
      return true
    }
  }

  async function start (connection: Connection, roomId: string, userId: string): Promise<void> {
    const now = Date.now()
    const key = keyOf(roomId, userId)
    let state = states.get(key)
    if (state === undefined) {
      state = { roomId, userId, connection, announced: false, expiresAt: now + TYPING_TIMEOUT_MS }
      states.set(key, state)
    } else {
      if (state.connection !== connection) {
        disown(key, state.connection)
        state.connection = connection
      }
      state.expiresAt = now + TYPING_TIMEOUT_MS
    }
    own(key, connection)
    armSweep()
    // A start inside the window renews the typing above but is not forwarded (dropped, not delayed).
    if (!await takeWindow(key, roomId, userId, now)) return
    // The state may have ended while Redis answered (a stop, a close): then there is nothing to announce.
    if (states.get(key) !== state) return
    state.announced = true
    publish(roomId, userId, true, state.connection)
  }

  gateway.on('typing.start', {
    summary: 'The user types in a room: forwarded to the room (not to this socket) at most once per 2 s; ends after 6 s without a new start.',
    schema: RoomRef,
    ack: Empty,
    rateClass: 'typing',
    async handler (ctx, data) {
      // Muted, or in a CHANNEL or frozen room below ADMIN: no typing (stop stays allowed, to end one).
      await rooms.requireVoice(data.roomId, ctx.user, 'type')
      await start(ctx.connection, data.roomId, ctx.user.id)
    },
  })

  gateway.on('typing.stop', {
    summary: 'The user stopped typing in a room: `typing {isTyping: false}` to the room when it had been told of a start.',
    schema: RoomRef,
    ack: Empty,
    rateClass: 'typing',
    async handler (ctx, data) {
      await rooms.requireMember(data.roomId, ctx.user)
      end(keyOf(data.roomId, ctx.user.id), ctx.connection)
    },
  })

  gateway.declarePush('typing', {
    summary: 'Someone in the room started or stopped typing (ephemeral: no seq, not replayed by sync).',
    schema: Type.Object({ roomId: Type.String(), userId: Type.String(), isTyping: Type.Boolean() }),
  })

  app.chatSessions.onEnd((connection) => {
    const keys = byConnection.get(connection)
    if (keys === undefined) return
    for (const key of [...keys]) end(key, connection)
    byConnection.delete(connection)
  })

  const service: TypingService = {
    async stop (roomId, userId, except) {
      end(keyOf(roomId, userId), except ?? null)
    },
    get activeCount () {
      return states.size
    },
  }
  app.decorate('chatTyping', service)

  app.addHook('onClose', async () => {
    if (sweepTimer !== null) clearInterval(sweepTimer)
    sweepTimer = null
    states.clear()
    byConnection.clear()
    lastForwarded.clear()
  })
}, { name: 'chat-typing', fastify: '5.x', dependencies: ['chat-config', 'chat-broker', 'chat-hub', 'chat-gateway', 'chat-sessions', 'chat-rooms'] })
