// @ts-check
// Messages: those that arrive (new, edited, reacted to) and what the user does with them (send from the
// composer, edit, react, delete). A thread reply goes to its thread (threads.js), never to the timeline.
import { ui, report } from './dom.js'
import { nearBottom, renderComposerContext, renderMessages, renderRooms, renderThread } from './render.js'
import { markRead } from './rooms.js'
import { findMessage, mentionsMe, state } from './state.js'
import { onThreadReply } from './threads.js'
import { setTyping, stopTyping } from './typing.js'

/** @typedef {import('./client/index.js').Message} Message */

/**
 * @param {string} roomId
 * @param {number} seq
 * @param {Message} message
 */
export function onMessage (roomId, seq, message) {
  const view = state.rooms.get(roomId)
  if (!view) return
  // session.ready already counted what came before its lastSeq; only newer messages change the counts.
  if (seq > view.summary.lastSeq) {
    view.summary.lastSeq = seq
    view.summary.lastMessage = message
    if (message.sender.id !== state.me && roomId !== state.current) {
      view.summary.unreadCount += 1
      if (mentionsMe(message)) view.summary.mentionCount += 1
    }
  }
  setTyping(roomId, message.sender.id, false)
  if (message.threadRootId) {
    onThreadReply(roomId, message)
    if (roomId === state.current) {
      renderMessages({ stickToBottom: false })
      renderThread({ stickToBottom: true })
    }
  } else if (view.loaded) {
    view.messages.set(message.id, message)
    if (roomId === state.current) renderMessages({ stickToBottom: nearBottom() })
  }
  if (roomId === state.current) markRead(roomId)
  renderRooms()
}

/**
 * A new version of a message the page shows, in the timeline or the thread panel. An edit's message
 * carries no thread summary: a root keeps the one the page has.
 * @param {Message} message
 */
export function replaceMessage (message) {
  const view = state.rooms.get(message.roomId)
  const old = findMessage(message.roomId, message.id)
  if (!view || !old) return
  const next = message.thread === undefined && old.thread !== undefined ? { ...message, thread: old.thread } : message
  if (view.messages.has(message.id)) view.messages.set(message.id, next)
  const thread = state.thread?.roomId === message.roomId ? state.thread : null
  if (thread?.replies.has(message.id)) thread.replies.set(message.id, next)
  if (thread?.rootId === message.id) thread.root = next
  if (message.roomId === state.current) renderMessages({ stickToBottom: false })
  if (thread) renderThread({ stickToBottom: false })
}

/**
 * Shows a message as deleted, in its place and emptied: after a message.deleted push or the user's own delete.
 * @param {Message} message
 */
export function showDeleted (message) {
  replaceMessage({ ...message, content: '', attachments: [], reactions: [], deletedAt: new Date().toISOString() })
}

/**
 * The ack of this page's own send (its socket gets no push of it): a timeline message or a thread reply.
 * @param {Message} message
 */
export function ownSendDone (message) {
  const view = state.rooms.get(message.roomId)
  if (!view) return
  if (message.seq > view.summary.lastSeq) {
    view.summary.lastSeq = message.seq
    view.summary.lastMessage = message
    view.summary.lastReadSeq = message.seq
  }
  if (message.threadRootId) onThreadReply(message.roomId, message)
  else if (view.loaded) view.messages.set(message.id, message)
}

export async function submitComposer () {
  const client = state.client
  const roomId = state.current
  const content = ui.input.value.trim()
  if (!client || !roomId || content === '') return
  ui.input.value = ''
  stopTyping()
  if (state.editing) {
    const editing = state.editing
    state.editing = null
    renderComposerContext()
    try {
      replaceMessage((await client.editMessage(editing.id, content)).message)
    } catch (error) {
      report(error)
    }
    return
  }
  const replyTo = state.replyTo
  state.replyTo = null
  renderComposerContext()
  const pending = { key: Math.random().toString(36).slice(2), roomId, content }
  state.sending.push(pending)
  renderMessages({ stickToBottom: true })
  try {
    const mentions = mentionsIn(content)
    const { message } = await client.sendMessage(roomId, content, { ...(replyTo ? { replyToId: replyTo.id } : {}), ...(mentions.length > 0 ? { mentions } : {}) })
    ownSendDone(message)
  } catch (error) {
    report(error)
  } finally {
    state.sending = state.sending.filter((entry) => entry !== pending)
    if (state.current === roomId) renderMessages({ stickToBottom: true })
    renderRooms()
  }
}

/**
 * @param {Message} message
 * @param {string} emoji
 */
export async function toggleReaction (message, emoji) {
  if (!state.client || !state.me) return
  const mine = message.reactions.some((reaction) => reaction.emoji === emoji && reaction.userIds.includes(/** @type {string} */ (state.me)))
  try {
    const { reactions } = mine ? await state.client.unreact(message.id, emoji) : await state.client.react(message.id, emoji)
    const current = findMessage(message.roomId, message.id)
    if (current) replaceMessage({ ...current, reactions })
  } catch (error) {
    report(error)
  }
}

/** @param {Message} message */
export async function deleteMessage (message) {
  if (!state.client) return
  try {
    await state.client.deleteMessage(message.id)
    showDeleted(message)
  } catch (error) {
    report(error)
  }
}

/**
 * The ids named `@id` in a message (`@everyone` is "*", which the server allows MODERATOR and above). The
 * server keeps those who are members, so the page need not know the members yet.
 * @param {string} content
 * @returns {string[]}
 */
export function mentionsIn (content) {
  const named = [...content.matchAll(/@([^\s@,;:!?]+)/g)].map((match) => match[1] === 'everyone' ? '*' : match[1] ?? '')
  return [...new Set(named)].filter((id) => id !== '').slice(0, 50)
}
