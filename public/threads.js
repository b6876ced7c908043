// @ts-check
// Threads (docs/messaging.md#threads): the side panel that shows one top-level message (the root) and its
// replies, pages them (history.fetch with threadRootId), takes the replies that arrive, and sends replies
// with threadRootId. The main timeline never shows a reply: the server leaves them out of its history, and
// the page keeps pushed ones out of it. A root's "N replies" is the server's count as of the read; the
// server does not push a root's summary per reply, so the page moves it on with each reply that arrives.
import { ui, report } from './dom.js'
import { ownSendDone, mentionsIn } from './messages.js'
import { renderMessages, renderRooms, renderThread } from './render.js'
import { PAGE, state } from './state.js'

/** @typedef {import('./client/index.js').Message} Message */
/** @typedef {import('./state.js').ThreadView} ThreadView */

/**
 * Opens the panel on a root's thread (the latest page of replies); resolves when that page is in.
 * @param {string} roomId
 * @param {string} rootId
 */
export async function openThread (roomId, rootId) {
  const client = state.client
  const view = state.rooms.get(roomId)
  if (!client || !view) return
  if (state.thread?.roomId === roomId && state.thread.rootId === rootId && state.thread.loaded) {
    ui.threadInput.focus()
    return
  }
  /** @type {ThreadView} */
  const thread = { roomId, rootId, root: view.messages.get(rootId) ?? null, replies: new Map(), loaded: false, hasMoreBefore: false, loadingOlder: false }
  state.thread = thread
  renderThread({ stickToBottom: true })
  try {
    const page = await client.history(roomId, { threadRootId: rootId, limit: PAGE })
    if (state.thread !== thread) return
    for (const reply of page.messages) thread.replies.set(reply.id, reply)
    thread.hasMoreBefore = page.hasMore
    thread.loaded = true
  } catch (error) {
    report(error)
    return
  }
  renderThread({ stickToBottom: true })
  ui.threadInput.focus()
}

export function closeThread () {
  state.thread = null
  renderThread({ stickToBottom: false })
}

/** The next older page of the open thread, when the panel is scrolled to its top. */
export async function loadOlderReplies () {
  const thread = state.thread
  if (!state.client || !thread || !thread.loaded || !thread.hasMoreBefore || thread.loadingOlder) return
  const oldest = Math.min(...[...thread.replies.values()].map((reply) => reply.seq))
  if (!Number.isFinite(oldest)) return
  thread.loadingOlder = true
  try {
    const page = await state.client.history(thread.roomId, { threadRootId: thread.rootId, before: oldest, limit: PAGE })
    for (const reply of page.messages) thread.replies.set(reply.id, reply)
    thread.hasMoreBefore = page.hasMore
    if (state.thread === thread) {
      const fromBottom = ui.threadMessages.scrollHeight - ui.threadMessages.scrollTop
      renderThread({ stickToBottom: false })
      ui.threadMessages.scrollTop = ui.threadMessages.scrollHeight - fromBottom
    }
  } catch (error) {
    report(error)
  } finally {
    thread.loadingOlder = false
  }
}

/**
 * A thread reply that arrived (pushed, or the ack of this page's own send): it counts on its root, and joins
 * the panel when that thread is open. A reply no later than the root's last reply as read is in its
 * count already (the read and the push crossed).
 * @param {string} roomId
 * @param {Message} reply
 */
export function onThreadReply (roomId, reply) {
  const rootId = reply.threadRootId
  const view = state.rooms.get(roomId)
  if (!rootId || !view) return
  const thread = state.thread?.roomId === roomId && state.thread.rootId === rootId ? state.thread : null
  const root = view.messages.get(rootId) ?? thread?.root ?? null
  const summary = root?.thread
  if (root && (!summary || Date.parse(reply.createdAt) > Date.parse(summary.lastReplyAt))) {
    const participantIds = summary?.participantIds ?? []
    const counted = {
      ...root,
      thread: {
        replyCount: (summary?.replyCount ?? 0) + 1,
        lastReplyAt: reply.createdAt,
        participantIds: participantIds.includes(reply.sender.id) ? participantIds : [...participantIds, reply.sender.id],
      },
    }
    if (view.messages.has(rootId)) view.messages.set(rootId, counted)
    if (thread) thread.root = counted
  }
  if (thread) thread.replies.set(reply.id, reply)
}

/** Sends the thread composer's text as a reply in the open thread. */
export async function submitThreadReply () {
  const client = state.client
  const thread = state.thread
  const content = ui.threadInput.value.trim()
  if (!client || !thread || content === '') return
  ui.threadInput.value = ''
  const pending = { key: Math.random().toString(36).slice(2), roomId: thread.roomId, content, threadRootId: thread.rootId }
  state.sending.push(pending)
  renderThread({ stickToBottom: true })
  try {
    const mentions = mentionsIn(content)
    const { message } = await client.sendMessage(thread.roomId, content, { threadRootId: thread.rootId, ...(mentions.length > 0 ? { mentions } : {}) })
    ownSendDone(message)
  } catch (error) {
    report(error)
  } finally {
    state.sending = state.sending.filter((entry) => entry !== pending)
    renderThread({ stickToBottom: true })
    if (state.current === thread.roomId) renderMessages({ stickToBottom: false })
    renderRooms()
  }
}
