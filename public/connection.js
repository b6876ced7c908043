// @ts-check
// The connection: one ChatClient per token, and what each of its events changes on the page.
import { ChatClient } from './client/index.js'
import { ui, notify, report } from './dom.js'
import { onMessage, replaceMessage, showDeleted } from './messages.js'
import { render, renderHeader, renderMembers, renderRooms } from './render.js'
import { loadMembers, openRoom } from './rooms.js'
import { findMessage, state, upsertRoom } from './state.js'
import { openThread } from './threads.js'
import { setTyping } from './typing.js'
import { onReported } from './moderation.js'

/** @typedef {import('./client/index.js').SessionReady} SessionReady */

async function wsUrl () {
  let wsPath = '/ws'
  try {
    const response = await fetch('demo-config.json')
    if (response.ok) wsPath = (await response.json()).wsPath ?? wsPath
  } catch {}
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${wsPath}`
}

/** @param {string} token */
export async function connect (token) {
  if (state.client) await state.client.close()
  state.rooms.clear()
  state.current = null
  state.thread = null
  render()
  const client = new ChatClient({ url: await wsUrl(), token, reconnect: { initialDelayMs: 300, maxDelayMs: 10000 } })
  state.client = client
  client.on('state', (change) => {
    ui.status.textContent = change.state === 'closed' && change.willReconnect ? 'reconnecting…' : change.state
    ui.status.className = `status status-${change.state}`
    const online = change.state === 'open'
    ui.myPresence.disabled = !online
  })
  client.on('session.ready', onSessionReady)
  client.on('room.added', ({ room }) => { upsertRoom(room); renderRooms() })
  client.on('room.removed', ({ roomId, reason }) => {
    const view = state.rooms.get(roomId)
    if (reason === 'banned') notify(`you were banned from ${view?.summary.name ?? 'a room'}`)
    state.rooms.delete(roomId)
    if (state.current === roomId) state.current = null
    if (state.thread?.roomId === roomId) state.thread = null
    render()
  })
  client.on('room.updated', ({ roomId, room }) => {
    const view = state.rooms.get(roomId)
    if (view && view.summary.type !== 'DIRECT') Object.assign(view.summary, { name: room.name, memberCount: room.memberCount })
    renderRooms()
    if (roomId === state.current) renderHeader()
  })
  client.on('room.member_joined', ({ roomId, user }) => {
    state.people.set(user.id, { name: user.name, status: state.people.get(user.id)?.status ?? 'offline' })
    if (roomId === state.current) void loadMembers(roomId)
  })
  client.on('room.member_left', ({ roomId }) => { if (roomId === state.current) void loadMembers(roomId) })
  client.on('message.new', ({ roomId, seq, message }) => onMessage(roomId, seq, message))
  client.on('message.updated', ({ message }) => { replaceMessage(message) })
  client.on('message.deleted', ({ roomId, messageId }) => {
    const message = findMessage(roomId, messageId)
    if (message) showDeleted(message)
  })
  client.on('reaction.updated', ({ roomId, messageId, reactions }) => {
    const message = findMessage(roomId, messageId)
    if (message) replaceMessage({ ...message, reactions })
  })
  client.on('unread.updated', ({ roomId, unreadCount, mentionCount }) => {
    const view = state.rooms.get(roomId)
    if (view) Object.assign(view.summary, { unreadCount, mentionCount })
    renderRooms()
  })
  client.on('typing', ({ roomId, userId, isTyping }) => setTyping(roomId, userId, isTyping))
  client.on('presence', ({ userId, status }) => {
    const person = state.people.get(userId)
    state.people.set(userId, { name: person?.name ?? null, status })
    renderRooms()
    renderMembers()
  })
  client.on('resync', ({ roomId }) => {
    const view = state.rooms.get(roomId)
    if (view) {
      view.loaded = false
      view.messages.clear()
      // The open thread is read again too (its root with a fresh summary).
      const thread = state.thread?.roomId === roomId ? state.thread : null
      if (thread) state.thread = null
      if (roomId === state.current) void openRoom(roomId).then(() => thread && openThread(roomId, thread.rootId))
    }
  })
  client.on('message.reported', ({ report: reported }) => onReported(reported))
  client.on('error', (error) => report(error))
  try {
    await client.connect()
  } catch (error) {
    report(error)
  }
}

/** @param {SessionReady} ready */
function onSessionReady (ready) {
  state.me = ready.user.id
  ui.me.textContent = ready.user.name ?? ready.user.id
  for (const person of ready.people) state.people.set(person.id, { name: person.name, status: person.status })
  const seen = new Set()
  for (const room of ready.rooms) {
    upsertRoom(room)
    seen.add(room.id)
  }
  for (const roomId of [...state.rooms.keys()]) if (!seen.has(roomId)) state.rooms.delete(roomId)
  if (state.current !== null && !seen.has(state.current)) state.current = null
  if (state.thread !== null && !seen.has(state.thread.roomId)) state.thread = null
  ui.input.disabled = state.current === null
  ui.send.disabled = state.current === null
  render()
}
