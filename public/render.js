// @ts-check
// Rendering: the room list, the open room's header, members, messages, typing line, composer context and
// thread panel, each redrawn whole from `state`. Every text through textContent.
import { el, ui } from './dom.js'
import { deleteMessage, toggleReaction } from './messages.js'
import { openRoom } from './rooms.js'
import { moderateMember, moderatesCurrentRoom, pinMessage, reportMessage } from './moderation.js'
import { mentionsMe, nameOf, state } from './state.js'
import { openThread } from './threads.js'

/** @typedef {import('./client/index.js').Message} Message */
/** @typedef {import('./client/index.js').RoomSummary} RoomSummary */

const QUICK_REACTIONS = ['👍', '❤️', '😂']

export function render () {
  renderRooms()
  renderHeader()
  renderMembers()
  renderMessages({ stickToBottom: true })
  renderTyping()
  renderComposerContext()
  renderThread({ stickToBottom: true })
}

/** @param {RoomSummary} summary */
export function roomLabel (summary) {
  return summary.type === 'DIRECT' ? (summary.peerId ? nameOf(summary.peerId) : summary.name) : summary.name
}

export function renderRooms () {
  const items = [...state.rooms.values()].sort((a, b) => (b.summary.lastMessage?.createdAt ?? b.summary.createdAt).localeCompare(a.summary.lastMessage?.createdAt ?? a.summary.createdAt))
  ui.rooms.replaceChildren(...items.map(({ summary }) => {
    const item = el('li', `room${summary.id === state.current ? ' current' : ''}`)
    item.dataset.roomId = summary.id
    item.dataset.type = summary.type
    const dot = el('span', 'presence-dot')
    if (summary.type === 'DIRECT' && summary.peerId) {
      const status = state.people.get(summary.peerId)?.status ?? 'offline'
      dot.classList.add(status)
      dot.dataset.status = status
      dot.title = status
    } else {
      dot.classList.add('none')
    }
    const name = el('span', 'room-name', roomLabel(summary))
    const kind = el('span', 'room-kind', summary.type === 'DIRECT' ? '' : summary.type.toLowerCase())
    const unread = el('span', 'unread', String(summary.unreadCount))
    unread.hidden = summary.unreadCount === 0
    // Unread messages that mention the user (or everyone) get their own badge.
    const mentions = el('span', 'mention-count', `@${summary.mentionCount}`)
    mentions.hidden = summary.mentionCount === 0
    item.append(dot, name, kind, mentions, unread)
    item.addEventListener('click', () => { void openRoom(summary.id) })
    return item
  }))
}

export function renderHeader () {
  const view = state.current ? state.rooms.get(state.current) : undefined
  ui.roomTitle.textContent = view ? roomLabel(view.summary) : 'No room open'
  ui.roomTitle.title = view ? `room id: ${view.summary.id}` : ''
}

export function renderMembers () {
  const view = state.current ? state.rooms.get(state.current) : undefined
  const ids = view?.memberIds ?? []
  ui.members.replaceChildren(...ids.map((userId) => {
    const person = state.people.get(userId)
    const item = el('li')
    item.dataset.userId = userId
    const status = person?.status ?? 'offline'
    const dot = el('span', `presence-dot ${status}`)
    dot.dataset.status = status
    item.append(dot, el('span', '', person?.name ?? userId))
    // A moderator's menu on everyone else (the server refuses what their role may not do).
    if (moderatesCurrentRoom() && userId !== state.me) {
      for (const action of /** @type {const} */ (['mute', 'ban'])) {
        const button = el('button', `member-action action-${action}`, action)
        button.setAttribute('type', 'button')
        button.addEventListener('click', () => { void moderateMember(action, userId) })
        item.append(button)
      }
    }
    return item
  }))
}

export function nearBottom () {
  return ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 80
}

/** @param {{ stickToBottom: boolean }} options */
export function renderMessages ({ stickToBottom }) {
  const view = state.current ? state.rooms.get(state.current) : undefined
  if (!view) {
    ui.messages.replaceChildren()
    return
  }
  const sorted = [...view.messages.values()].sort((a, b) => a.seq - b.seq)
  const items = sorted.map((message) => messageItem(message))
  if (view.loaded && !view.hasMoreBefore) items.unshift(el('li', 'history-end', 'beginning of the conversation'))
  for (const pending of state.sending.filter((entry) => entry.roomId === state.current && !entry.threadRootId)) items.push(pendingItem(pending.content))
  ui.messages.replaceChildren(...items)
  if (stickToBottom) ui.messages.scrollTop = ui.messages.scrollHeight
}

/** @param {string} content */
function pendingItem (content) {
  const item = el('li', 'message mine pending')
  item.append(el('div', 'meta', 'sending…'), el('div', 'content', content))
  return item
}

/** @param {number} count */
export function repliesLabel (count) {
  return `${count} ${count === 1 ? 'reply' : 'replies'}`
}

/**
 * The thread panel: the root, its replies in seq order, this page's replies on their way.
 * @param {{ stickToBottom: boolean }} options
 */
export function renderThread ({ stickToBottom }) {
  const thread = state.thread
  ui.thread.hidden = thread === null
  if (!thread) {
    delete ui.thread.dataset.rootId
    ui.threadRoot.replaceChildren()
    ui.threadMessages.replaceChildren()
    return
  }
  ui.thread.dataset.rootId = thread.rootId
  const root = state.rooms.get(thread.roomId)?.messages.get(thread.rootId) ?? thread.root
  if (root) thread.root = root
  ui.threadTitle.textContent = `Thread · ${repliesLabel(root?.thread?.replyCount ?? thread.replies.size)}`
  ui.threadRoot.replaceChildren(root ? messageItem(root, { inThread: true }) : el('div', 'thread-root-missing', 'its first message is further back in the room'))
  const items = [...thread.replies.values()].sort((a, b) => a.seq - b.seq).map((reply) => messageItem(reply, { inThread: true }))
  if (!thread.loaded) items.unshift(el('li', 'history-end', 'loading…'))
  else if (!thread.hasMoreBefore) items.unshift(el('li', 'history-end', items.length === 0 ? 'no replies yet' : 'start of the thread'))
  for (const pending of state.sending.filter((entry) => entry.threadRootId === thread.rootId)) items.push(pendingItem(pending.content))
  ui.threadMessages.replaceChildren(...items)
  if (stickToBottom) ui.threadMessages.scrollTop = ui.threadMessages.scrollHeight
}

/**
 * A message, in the room's timeline or (`inThread`) in the thread panel: there no quote reply, no thread
 * actions and no pin.
 * @param {Message} message
 * @param {{ inThread?: boolean }} [options]
 */
function messageItem (message, { inThread = false } = {}) {
  const mine = message.sender.id === state.me
  const deleted = message.deletedAt !== undefined
  const item = el('li', `message${mine ? ' mine' : ''}${deleted ? ' deleted' : ''}${!mine && mentionsMe(message) ? ' mentions-me' : ''}${message.id === state.found ? ' found' : ''}`)
  item.dataset.id = message.id
  item.dataset.seq = String(message.seq)
  const meta = el('div', 'meta')
  meta.append(
    el('span', 'sender', message.sender.name ?? message.sender.id),
    el('time', 'time', new Date(message.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })),
  )
  if (message.editedAt && !deleted) meta.append(el('span', 'edited', 'edited'))
  item.append(meta)
  if (message.replyTo) item.append(el('div', 'reply-quote', `↪ ${nameOf(message.replyTo.senderId)}: ${message.replyTo.excerpt}`))
  item.append(el('div', 'content', deleted ? 'message deleted' : message.content))
  // A root's replies: a link that opens its thread (in the panel, the title says how many).
  const replies = message.thread?.replyCount ?? 0
  if (!inThread && !message.threadRootId && replies > 0) {
    const link = el('button', 'link thread-link', repliesLabel(replies))
    link.setAttribute('type', 'button')
    link.dataset.count = String(replies)
    link.title = `${(message.thread?.participantIds ?? []).map(nameOf).join(', ')}; last ${new Date(message.thread?.lastReplyAt ?? message.createdAt).toLocaleString()}`
    link.addEventListener('click', () => { void openThread(message.roomId, message.id) })
    item.append(link)
  }
  if (deleted) return item
  if (message.reactions.length > 0) {
    const reactions = el('div', 'reactions')
    for (const reaction of message.reactions) {
      const mineReaction = state.me !== null && reaction.userIds.includes(state.me)
      const button = el('button', `reaction${mineReaction ? ' mine' : ''}`, `${reaction.emoji} ${reaction.count}`)
      button.setAttribute('type', 'button')
      button.title = reaction.userIds.map(nameOf).join(', ')
      button.addEventListener('click', () => { void toggleReaction(message, reaction.emoji) })
      reactions.append(button)
    }
    item.append(reactions)
  }
  const actions = el('div', 'actions')
  /**
   * @param {string} label
   * @param {string} action
   * @param {() => void} run
   */
  const action = (label, action, run) => {
    const button = el('button', `action-${action}`, label)
    button.setAttribute('type', 'button')
    button.addEventListener('click', run)
    actions.append(button)
  }
  if (!inThread) {
    action('reply', 'reply', () => {
      state.editing = null
      state.replyTo = message
      renderComposerContext()
      ui.input.focus()
    })
    if (!message.threadRootId) action('reply in thread', 'thread', () => { void openThread(message.roomId, message.id) })
  }
  for (const emoji of QUICK_REACTIONS) action(emoji, 'react', () => { void toggleReaction(message, emoji) })
  if (!mine && !deleted) action('report', 'report', () => { void reportMessage(message) })
  if (!inThread && moderatesCurrentRoom() && !deleted) action('pin', 'pin', () => { void pinMessage(message) })
  if (mine) {
    action('edit', 'edit', () => {
      state.replyTo = null
      state.editing = message
      ui.input.value = message.content
      renderComposerContext()
      ui.input.focus()
    })
    action('delete', 'delete', () => { void deleteMessage(message) })
  }
  item.append(actions)
  return item
}

export function renderTyping () {
  const view = state.current ? state.rooms.get(state.current) : undefined
  const names = view ? [...view.typing.keys()].filter((userId) => userId !== state.me).map(nameOf) : []
  ui.typing.textContent = names.length === 0 ? '' : `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…`
}

export function renderComposerContext () {
  const context = state.editing ? `Editing: ${state.editing.content}` : state.replyTo ? `Replying to ${state.replyTo.sender.name ?? state.replyTo.sender.id}: ${state.replyTo.content}` : ''
  ui.composerContextText.textContent = context.length > 80 ? `${context.slice(0, 80)}…` : context
  ui.composerContext.hidden = context === ''
}
