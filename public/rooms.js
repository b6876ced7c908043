// @ts-check
// Opening a room: its latest page of history, its members, older pages on scroll, and read marks.
import { el, ui, report } from './dom.js'
import { render, renderMembers, renderMessages, renderRooms } from './render.js'
import { PAGE, state, upsertRoom } from './state.js'

/** @param {string} roomId */
export async function openRoom (roomId) {
  const client = state.client
  const view = state.rooms.get(roomId)
  if (!client || !view) return
  if (state.current !== roomId) state.found = null
  state.current = roomId
  state.replyTo = null
  state.editing = null
  if (state.thread && state.thread.roomId !== roomId) state.thread = null
  ui.input.disabled = false
  ui.send.disabled = false
  render()
  if (!view.loaded) {
    try {
      const page = await client.history(roomId, { limit: PAGE })
      for (const message of page.messages) view.messages.set(message.id, message)
      view.hasMoreBefore = page.hasMore
      view.loaded = true
    } catch (error) {
      report(error)
      return
    }
    if (state.current === roomId) renderMessages({ stickToBottom: true })
  }
  void loadMembers(roomId)
  markRead(roomId)
}

/** @param {string} roomId */
export async function loadMembers (roomId) {
  if (!state.client) return
  try {
    const { members } = await state.client.members(roomId)
    for (const member of members) state.people.set(member.user.id, { name: member.user.name, status: member.status })
    const view = state.rooms.get(roomId)
    if (view) view.memberIds = members.map((member) => member.user.id)
    renderMembers()
    renderRooms()
  } catch {
    // A room just left (kicked, banned) answers NOT_MEMBER here: its own notice says why.
  }
}

export async function loadOlder () {
  const roomId = state.current
  const view = roomId ? state.rooms.get(roomId) : undefined
  if (!state.client || !roomId || !view || !view.loaded || !view.hasMoreBefore || view.loadingOlder) return
  const oldest = Math.min(...[...view.messages.values()].map((message) => message.seq))
  if (!Number.isFinite(oldest)) return
  view.loadingOlder = true
  try {
    const page = await state.client.history(roomId, { before: oldest, limit: PAGE })
    for (const message of page.messages) view.messages.set(message.id, message)
    view.hasMoreBefore = page.hasMore
    if (state.current === roomId) {
      // Keep what the reader was looking at in place while older messages appear above it.
      const fromBottom = ui.messages.scrollHeight - ui.messages.scrollTop
      renderMessages({ stickToBottom: false })
      ui.messages.scrollTop = ui.messages.scrollHeight - fromBottom
    }
  } catch (error) {
    report(error)
  } finally {
    view.loadingOlder = false
  }
}

/** @param {string} roomId */
export function markRead (roomId) {
  const view = state.rooms.get(roomId)
  if (!state.client || !view || document.visibilityState === 'hidden') return
  const lastSeq = view.summary.lastSeq
  if (view.summary.unreadCount === 0 && view.summary.lastReadSeq >= lastSeq) return
  view.summary.unreadCount = 0
  view.summary.mentionCount = 0
  view.summary.lastReadSeq = lastSeq
  renderRooms()
  state.client.markRead(roomId, lastSeq).then(({ unreadCount, mentionCount }) => {
    view.summary.unreadCount = unreadCount
    view.summary.mentionCount = mentionCount
    renderRooms()
  }, () => {})
}

/**
 * The room browser: public rooms of the tenant matching `query` (room.directory), each with a join button.
 * @param {string} query
 */
export async function findRooms (query) {
  if (!state.client) return
  try {
    const { rooms } = await state.client.directory(query === '' ? {} : { query })
    ui.directory.replaceChildren(...rooms.map((room) => {
      const item = el('li', 'room directory-room')
      item.dataset.roomId = room.id
      item.append(el('span', 'room-name', room.name), el('span', 'room-kind', `${room.memberCount} members`))
      const button = el('button', 'directory-join', room.joined ? 'open' : 'join')
      button.setAttribute('type', 'button')
      button.addEventListener('click', () => { void joinFromDirectory(room.id, room.joined) })
      item.append(button)
      return item
    }))
    if (rooms.length === 0) ui.directory.replaceChildren(el('li', 'directory-empty', 'no public room matches'))
  } catch (error) {
    report(error)
  }
}

/**
 * @param {string} roomId
 * @param {boolean} joined
 */
async function joinFromDirectory (roomId, joined) {
  if (!state.client) return
  try {
    if (!joined) upsertRoom((await state.client.joinRoom(roomId)).room)
    ui.directory.replaceChildren()
    await openRoom(roomId)
  } catch (error) {
    report(error)
  }
}
