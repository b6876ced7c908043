import type { FastifyInstance } from 'fastify'
import type { Attachment } from '../../db/schema/index.js'
import { SERVER_USER } from '../realtime/connection.js'
import { chatError } from './errors.js'
import { userKeyOf } from '../../lib/user-key.js'
import type { Message } from '../../schemas/message.js'
import type { MemberWithStatus } from '../../schemas/room.js'

export interface PresenceOfUser {
  status: 'online' | 'away' | 'offline'
  lastSeen: string | null
}

/**
 * What the host's own code (a route, a job) does with the suite, on any node: it acts as the server,
 * which is OWNER in every room and is not subject to the authorize hook.
 */
export interface ServerApi {
  /** Posts a SYSTEM message (sender `system`), pushed like any other; idempotent with a clientMsgId. */
  sendSystemMessage (roomId: string, content: string, options?: { clientMsgId?: string, attachments?: Attachment[] }): Promise<Message>
  addMembers (roomId: string, userIds: string[]): Promise<MemberWithStatus[]>
  removeMember (roomId: string, userId: string): Promise<void>
  /** Presence of users of `tenant` (default: the default tenant ""); the server sees every user. */
  presence (userIds: string[], tenant?: string): Promise<Map<string, PresenceOfUser>>
  /** Pushes `{event, data}` to every socket of a room on every node (ephemeral: no seq, not replayed). */
  publishToRoom (roomId: string, event: string, data: Record<string, unknown>): Promise<void>
  /** Pushes `{event, data}` to every socket of a user of `tenant` (default "") on every node. */
  publishToUser (userId: string, event: string, data: Record<string, unknown>, tenant?: string): Promise<void>
}

// Custom events are namespaced like the protocol's, so clients can tell them apart from bad input.
const CUSTOM_EVENT = /^[a-z][a-z0-9_-]{0,31}\.[a-z0-9_.-]{1,64}$/i

function needs (scope: FastifyInstance, decorator: string, plugin: string): void {
  if (!scope.hasDecorator(decorator)) throw new Error(`chat: this needs the ${plugin} plugin, which is not registered`)
}

function frameOf (event: string, data: Record<string, unknown>): string {
  if (!CUSTOM_EVENT.test(event)) throw chatError('VALIDATION_FAILED', `event name "${event}" must look like "namespace.action"`)
  return JSON.stringify({ event, data })
}

export function createServerApi (scope: FastifyInstance): ServerApi {
  // One shared promise, so that concurrent first sends resume in call order (and keep that order).
  let serverKnown: Promise<void> | null = null
  return {
    async sendSystemMessage (roomId, content, options = {}) {
      needs(scope, 'chatMessaging', 'messaging')
      serverKnown ??= scope.chatUsers.remember(SERVER_USER).then(() => undefined, (error: unknown) => {
        serverKnown = null
        throw error
      })
      await serverKnown
      const input: Parameters<typeof scope.chatMessaging.send>[1] = { roomId, content, type: 'SYSTEM' }
      if (options.clientMsgId !== undefined) input.clientMsgId = options.clientMsgId
      if (options.attachments !== undefined) input.attachments = options.attachments
      return (await scope.chatMessaging.send(SERVER_USER, input, { allowSystem: true })).message
    },
    async addMembers (roomId, userIds) {
      needs(scope, 'chatRooms', 'rooms')
      return await scope.chatRooms.addMembers({ user: SERVER_USER }, roomId, userIds)
    },
    async removeMember (roomId, userId) {
      needs(scope, 'chatRooms', 'rooms')
      await scope.chatRooms.removeMember({ user: SERVER_USER }, roomId, userId)
    },
    async presence (userIds, tenant = '') {
      needs(scope, 'chatPresence', 'presence')
      return await scope.chatPresence.statusOf(tenant, userIds)
    },
    async publishToRoom (roomId, event, data) {
      await scope.chatHub.publishRoom(roomId, frameOf(event, data))
    },
    async publishToUser (userId, event, data, tenant = '') {
      await scope.chatHub.publishUser(userKeyOf({ id: userId, tenant }), frameOf(event, data))
    },
  }
}
