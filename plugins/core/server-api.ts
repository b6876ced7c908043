import type { FastifyInstance } from 'fastify'
import type { Attachment } from '../../db/schema/index.js'
import { SERVER_USER, type ChatUser } from '../realtime/connection.js'
import { chatError } from './errors.js'
import type { Message } from '../../schemas/message.js'
import type { CreateRoomData, MemberWithStatus, RoomPatchData, RoomSummary } from '../../schemas/room.js'
import { userKeyOf } from '../../lib/user-key.js'

export interface PresenceOfUser {
  status: 'online' | 'away' | 'offline'
  lastSeen: string | null
}

/** A room made for others (a booking service's conversation): the owner and members are named. */
export type ServiceRoomData = Omit<CreateRoomData, 'memberIds'> & { ownerId: string, memberIds?: string[] }

/**
 * What code acting as the server does with the suite, on any node: it is OWNER in every room it may see
 * and is not subject to the authorize hook. Two callers share this one code path: the host's own code
 * (`app.chat`, every tenant: the `tenant` arguments say which one, the default tenant when left out) and
 * a service of the service API (routes/service: the tenant of its token, the `tenant` arguments ignored).
 */
export interface ServerApi {
  /** Posts a SYSTEM message (sender `system`), pushed like any other; idempotent with a clientMsgId. */
  sendSystemMessage (roomId: string, content: string, options?: { clientMsgId?: string, attachments?: Attachment[] }): Promise<Message>
  /** Posts as a named user of the room's tenant, who must be a member allowed to send (protocol 11.5). */
  sendAs (roomId: string, senderId: string, content: string, options?: { clientMsgId?: string }): Promise<Message>
  /** Creates a room with `ownerId` as its OWNER and the members, in `tenant`. */
  createRoom (data: ServiceRoomData, tenant?: string): Promise<RoomSummary>
  updateRoom (roomId: string, patch: RoomPatchData): Promise<RoomSummary>
  addMembers (roomId: string, userIds: string[]): Promise<MemberWithStatus[]>
  removeMember (roomId: string, userId: string): Promise<void>
  history (roomId: string, page?: { before?: number, after?: number, limit?: number }): Promise<{ messages: Message[], hasMore: boolean }>
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

function frameOf (scope: FastifyInstance, event: string, data: Record<string, unknown>): string {
  if (!CUSTOM_EVENT.test(event)) throw chatError('VALIDATION_FAILED', `event name "${event}" must look like "namespace.action"`)
  // A custom event may not pass for one of the protocol's own (a client would trust it as the server's).
  const gateway = scope.chatGateway
  if (gateway.registeredEvents().has(event) || gateway.declaredPushes().has(event)) {
    throw chatError('VALIDATION_FAILED', `event name "${event}" is one of the protocol's own`)
  }
  return JSON.stringify({ event, data })
}

/** A user acting in the server's tenant, as the named sender or owner of the service API. */
function userOf (id: string, tenant: string): ChatUser {
  return { id, tenant, name: null, avatar: null, roles: [], permissions: [], exp: null }
}

export function createServerApi (scope: FastifyInstance, server: ChatUser = SERVER_USER): ServerApi {
  const tenantOf = (tenant: string | undefined): string => server.allTenants === true ? tenant ?? '' : server.tenant
  const actor = { user: server }
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
      return (await scope.chatMessaging.send(server, input, { allowSystem: true })).message
    },
    async sendAs (roomId, senderId, content, options = {}) {
      needs(scope, 'chatMessaging', 'messaging')
      const { room } = await scope.chatRooms.requireMember(roomId, server)
      const input: Parameters<typeof scope.chatMessaging.send>[1] = { roomId, content, type: 'TEXT' }
      if (options.clientMsgId !== undefined) input.clientMsgId = options.clientMsgId
      return (await scope.chatMessaging.send(userOf(senderId, room.tenant), input)).message
    },
    async createRoom (data, tenant) {
      needs(scope, 'chatRooms', 'rooms')
      const { ownerId, ...room } = data
      // Made by the owner, with the server's standing: past the quotas and the authorize hook.
      const owner: ChatUser = { ...userOf(ownerId, tenantOf(tenant)), server: true }
      return await scope.chatRooms.create({ user: owner }, room)
    },
    async updateRoom (roomId, patch) {
      needs(scope, 'chatRooms', 'rooms')
      return await scope.chatRooms.update(actor, roomId, patch)
    },
    async addMembers (roomId, userIds) {
      needs(scope, 'chatRooms', 'rooms')
      return await scope.chatRooms.addMembers(actor, roomId, userIds)
    },
    async removeMember (roomId, userId) {
      needs(scope, 'chatRooms', 'rooms')
      await scope.chatRooms.removeMember(actor, roomId, userId)
    },
    async history (roomId, page = {}) {
      needs(scope, 'chatMessaging', 'messaging')
      return await scope.chatMessaging.history(server, roomId, page)
    },
    async presence (userIds, tenant) {
      needs(scope, 'chatPresence', 'presence')
      return await scope.chatPresence.statusOf(tenantOf(tenant), userIds)
    },
    async publishToRoom (roomId, event, data) {
      const frame = frameOf(scope, event, data)
      // The room must be one the server may see: a service's own tenant.
      await scope.chatRooms.requireMember(roomId, server)
      await scope.chatHub.publishRoom(roomId, frame)
    },
    async publishToUser (userId, event, data, tenant) {
      await scope.chatHub.publishUser(userKeyOf({ id: userId, tenant: tenantOf(tenant) }), frameOf(scope, event, data))
    },
  }
}
