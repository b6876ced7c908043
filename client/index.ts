/**
 * The chat suite's client: `import { ChatClient } from 'fastify-chat-suite/client'`. No dependencies; runs
 * in browsers (global WebSocket) and on Node (pass the `ws` package's WebSocket class).
 */
export { ChatClient } from './client.js'
export { CLIENT_GAVE_UP } from './transport.js'
export { tokenExpiry } from './token.js'
export type { ChatClientEvents, ConnectionState, StateChange } from './events.js'
export type { ChatClientOptions, ReconnectOptions, TokenSource, WebSocketConstructor, WebSocketLike } from './options.js'
export { ChatClientError, type ChatErrorCode } from './errors.js'
export { backoffDelay, type BackoffOptions } from './backoff.js'
export { DURABLE_EVENTS } from './types.js'
export type * from './types.js'
