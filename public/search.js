// @ts-check
// Search (message.search): the sidebar's box lists the messages that match, best match first, from every
// room of the user or the open one only, a page at a time. Clicking a result opens its room and, for a
// thread reply, its thread, and makes the message stand out there.
import { el, notify, report, ui } from './dom.js'
import { renderMessages, renderThread, roomLabel } from './render.js'
import { loadOlder, openRoom } from './rooms.js'
import { nameOf, state } from './state.js'
import { loadOlderReplies, openThread } from './threads.js'

/** @typedef {import('./client/index.js').Message} Message */

const SEARCH_PAGE = 20
/** How many older pages a result may load to reach its message (or its thread's root). */
const MAX_PAGES = 20

/**
 * A new search; an empty query clears the results.
 * @param {string} query
 * @param {string | null} roomId
 */
export async function search (query, roomId) {
  if (!state.client) return
  if (query === '') {
    state.search = null
    ui.searchResults.replaceChildren()
    ui.searchMore.hidden = true
    return
  }
  try {
    const page = await state.client.searchMessages({ query, limit: SEARCH_PAGE, ...(roomId ? { roomId } : {}) })
    state.search = { query, roomId, nextCursor: page.nextCursor }
    ui.searchResults.replaceChildren(...page.messages.map(resultItem))
    if (page.messages.length === 0) ui.searchResults.replaceChildren(el('li', 'search-empty', 'no message matches'))
    ui.searchMore.hidden = page.nextCursor === null
  } catch (error) {
    report(error)
  }
}

/** The next page of the last search, under the results already shown. */
export async function searchMore () {
  const last = state.search
  if (!state.client || !last || last.nextCursor === null) return
  try {
    const page = await state.client.searchMessages({ query: last.query, cursor: last.nextCursor, limit: SEARCH_PAGE, ...(last.roomId ? { roomId: last.roomId } : {}) })
    if (state.search !== last) return
    last.nextCursor = page.nextCursor
    ui.searchResults.append(...page.messages.map(resultItem))
    ui.searchMore.hidden = page.nextCursor === null
  } catch (error) {
    report(error)
  }
}

/** @param {Message} message */
function resultItem (message) {
  const item = el('li', 'search-result')
  item.dataset.messageId = message.id
  item.dataset.roomId = message.roomId
  item.tabIndex = 0
  const room = state.rooms.get(message.roomId)
  const meta = el('div', 'meta')
  meta.append(
    el('span', 'search-room', room ? roomLabel(room.summary) : 'a room'),
    el('span', 'sender', message.sender.name ?? nameOf(message.sender.id)),
    el('time', 'time', new Date(message.createdAt).toLocaleDateString([], { month: 'short', day: 'numeric' })),
  )
  if (message.threadRootId) meta.append(el('span', 'search-in-thread', 'in a thread'))
  const content = message.content.length > 160 ? `${message.content.slice(0, 160)}…` : message.content
  item.append(meta, el('div', 'content', content))
  item.addEventListener('click', () => { void openResult(message) })
  item.addEventListener('keydown', (event) => { if (event.key === 'Enter') void openResult(message) })
  return item
}

/**
 * Opens a result where it is: its room, scrolled to it; a thread reply in its thread's panel.
 * @param {Message} message
 */
export async function openResult (message) {
  const view = state.rooms.get(message.roomId)
  if (!view) {
    notify('that room is no longer in your list')
    return
  }
  await openRoom(message.roomId)
  if (state.current !== message.roomId) return
  state.found = message.id
  const rootId = message.threadRootId
  if (rootId) {
    // The root is older than its reply: page back to it, to show it at the top of the panel.
    await loadUntil(() => view.messages.has(rootId))
    await openThread(message.roomId, rootId)
    for (let pages = 0; state.thread?.rootId === rootId && !state.thread.replies.has(message.id) && state.thread.hasMoreBefore && pages < MAX_PAGES; pages += 1) await loadOlderReplies()
    renderMessages({ stickToBottom: false })
    renderThread({ stickToBottom: false })
    ui.threadMessages.querySelector(`[data-id="${message.id}"]`)?.scrollIntoView({ block: 'center' })
  } else {
    await loadUntil(() => view.messages.has(message.id))
    renderMessages({ stickToBottom: false })
    renderThread({ stickToBottom: false })
    ui.messages.querySelector(`[data-id="${message.id}"]`)?.scrollIntoView({ block: 'center' })
  }
}

/**
 * Loads older pages of the open room until `found` holds, the room's beginning, or MAX_PAGES.
 * @param {() => boolean} found
 */
async function loadUntil (found) {
  const roomId = state.current
  for (let pages = 0; pages < MAX_PAGES && !found(); pages += 1) {
    const view = roomId ? state.rooms.get(roomId) : undefined
    if (!view || state.current !== roomId || !view.hasMoreBefore) return
    if (view.loadingOlder) await new Promise((resolve) => setTimeout(resolve, 100))
    else await loadOlder()
  }
}
