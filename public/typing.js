// @ts-check
// Typing indicators: who types in each room (each entry ends by itself after TYPING_EXPIRY_MS), and
// this user's own typing.start/typing.stop, sent sparingly while the composer's input changes.
import { renderTyping } from './render.js'
import { state, TYPING_EXPIRY_MS } from './state.js'

/**
 * @param {string} roomId
 * @param {string} userId
 * @param {boolean} isTyping
 */
export function setTyping (roomId, userId, isTyping) {
  const view = state.rooms.get(roomId)
  if (!view) return
  const timer = view.typing.get(userId)
  if (timer !== undefined) clearTimeout(timer)
  view.typing.delete(userId)
  if (isTyping) view.typing.set(userId, setTimeout(() => setTyping(roomId, userId, false), TYPING_EXPIRY_MS))
  if (roomId === state.current) renderTyping()
}

export function onInput () {
  const roomId = state.current
  if (!state.client || !roomId || state.editing) return
  const now = Date.now()
  // The server forwards one start per 2 s and ends typing 6 s after the last: one start every 3 s is enough.
  if (now - state.lastTypingSent > 3000) {
    state.lastTypingSent = now
    state.client.typingStart(roomId).catch(() => {})
  }
  clearTimeout(state.typingIdle)
  state.typingIdle = setTimeout(stopTyping, 4000)
}

export function stopTyping () {
  clearTimeout(state.typingIdle)
  if (state.lastTypingSent === 0 || !state.client || !state.current) return
  state.lastTypingSent = 0
  state.client.typingStop(state.current).catch(() => {})
}
