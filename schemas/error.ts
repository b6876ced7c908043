import { Type } from 'typebox'
import { ERROR_CODES } from '../plugins/core/errors.js'

/**
 * The error reply of every REST route: Fastify's error shape with the protocol's codes, as the suite's
 * error handler (plugins/core/error-handler.ts) sends it. Routes name it for their error statuses and
 * the OpenAPI document adds it where a route does not.
 */
export const ErrorReply = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String({ enum: [...ERROR_CODES], description: 'protocol error code (FORBIDDEN, NOT_MEMBER, NOT_FOUND, ROOM_FULL, ...)' }),
  error: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.Unknown({ description: 'as in the socket\'s error frame, for QUOTA_EXCEEDED ({limit, ...}) and content screening\'s refusals ({reason})' })),
})

/** The client errors a REST route of rooms or favorites documents with their own status. */
export const ClientErrors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply, 409: ErrorReply }
