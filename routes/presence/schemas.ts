import { Type } from 'typebox'

/** presence.get and GET /api/presence take at most this many user ids. */
export const MAX_PRESENCE_IDS = 200

export const Status = Type.Union([Type.Literal('online'), Type.Literal('away'), Type.Literal('offline')])

export const UserPresence = Type.Object({
  userId: Type.String(),
  status: Status,
  lastSeen: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'when the user went offline (ISO 8601); null while online or away, or when never seen',
  }),
})

export const PresenceList = Type.Object({ users: Type.Array(UserPresence) })

export const UserId = Type.String({ minLength: 1, maxLength: 128 })
