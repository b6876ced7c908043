/**
 * The chat suite's client: `import { ChatClient } from 'fastify-chat-suite/client'`. No dependencies; runs
 * in browsers (global WebSocket) and on Node (pass the `ws` package's WebSocket class).
 */
export { ChatClient, CLIENT_GAVE_UP, tokenExpiry } from './client.js'
export type {
  ChatClientEvents, ChatClientOptions, ConnectionState, ReconnectOptions, StateChange, TokenSource, WebSocketConstructor, WebSocketLike,
} from './client.js'
export { ChatClientError, type ChatErrorCode } from './errors.js'
export { backoffDelay, type BackoffOptions } from './backoff.js'
export { DURABLE_EVENTS } from './types.js'
export type * from './types.js'
