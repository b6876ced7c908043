import { Type, type Static } from 'typebox'

/** presence.get and GET /api/presence take at most this many user ids. */
export const MAX_PRESENCE_IDS = 200

export const StatusSchema = Type.Union([Type.Literal('online'), Type.Literal('away'), Type.Literal('offline')])
export type PresenceStatus = Static<typeof StatusSchema>

export const UserPresence = Type.Object({
  userId: Type.String(),
  status: StatusSchema,
  lastSeen: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'when the user went offline (ISO 8601); null while online or away, or when never seen',
  }),
})

export const PresenceList = Type.Object({ users: Type.Array(UserPresence) })
export type UserPresence = Static<typeof UserPresence>
