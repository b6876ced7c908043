import type { FastifyInstance, FastifySchemaValidationError, RouteOptions } from 'fastify'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { Type, type TSchema } from 'typebox'

/** A route without query fields takes none: `?page=2` is refused like an unknown body field. */
const NoQuery = Type.Object({}, { additionalProperties: false })

/**
 * Every REST route of the API validates the way the gateway validates frames: the routes' TypeBox
 * schemas compiled by TypeBox (Fastify's default Ajv would strip unknown fields silently, and coerce
 * body types), with unknown fields refused in the body and in the query string alike (400
 * `VALIDATION_FAILED` naming the field). Query strings, parameters and headers are converted from
 * text to the schema's types first; bodies are taken as sent.
 */
export function strictValidation (app: FastifyInstance): void {
  app.setValidatorCompiler(TypeBoxValidatorCompiler)
  app.setSchemaErrorFormatter(validationError)
  app.addHook('onRoute', closeQuerystring)
}

function closeQuerystring (route: RouteOptions): void {
  const schema = route.schema ?? {}
  route.schema = schema
  const query = schema.querystring as TSchema & { additionalProperties?: unknown } | undefined
  if (query === undefined) {
    schema.querystring = NoQuery
    return
  }
  // One rule for every route, checked once at startup rather than remembered in each route file.
  if (query.additionalProperties !== false) throw new Error(`chat: the query schema of ${String(route.method)} ${route.url} must refuse unknown fields (additionalProperties: false)`)
}

/** `querystring.page: unknown field`, `body.content: must be string`: the field first, as frames name it. */
function validationError (errors: FastifySchemaValidationError[], part: string): Error {
  const unknown = errors.find((error) => error.keyword === 'additionalProperties')
  const named = (unknown?.params as { additionalProperties?: string[] } | undefined)?.additionalProperties?.[0]
  if (unknown !== undefined && named !== undefined) return new Error(`${fieldOf(part, unknown.instancePath, named)}: unknown field`)
  const [first] = errors
  const missing = (first?.params as { requiredProperties?: string[] } | undefined)?.requiredProperties?.[0]
  return new Error(`${fieldOf(part, first?.instancePath ?? '', missing)}: ${first?.message ?? 'invalid'}`)
}

function fieldOf (part: string, instancePath: string, property?: string): string {
  const path = [part, ...instancePath.split('/').filter((step) => step !== '')]
  if (property !== undefined) path.push(property)
  return path.join('.')
}
