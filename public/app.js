// @ts-check
// The demo chat page: plain DOM code over the suite's client (built to ./client/ by `npm run build:client`).
// Every piece of user text goes into the page through textContent, never innerHTML.
import { ChatClient } from './client/index.js'

/** @typedef {import('./client/index.js').Message} Message */
/** @typedef {import('./client/index.js').RoomSummary} RoomSummary */
/** @typedef {import('./client/index.js').SessionReady} SessionReady */
/** @typedef {import('./client/index.js').PresenceStatus} PresenceStatus */

/**
 * @typedef {object} RoomView
 * @property {RoomSummary} summary
 * @property {Map<string, Message>} messages  loaded messages by id
 * @property {boolean} loaded                 the latest page was fetched
 * @property {boolean} hasMoreBefore          older history exists
 * @property {boolean} loadingOlder
 * @property {Map<string, ReturnType<typeof setTimeout>>} typing  who types, with the timer that ends it
 * @property {string[]} [memberIds]           members, once listed
 */

const QUICK_REACTIONS = ['👍', '❤️', '😂']
const PAGE = 30
const TYPING_EXPIRY_MS = 7000

const state = {
  /** @type {ChatClient | null} */ client: null,
  /** @type {string | null} */ me: null,
  /** @type {Map<string, RoomView>} */ rooms: new Map(),
  /** @type {Map<string, { name: string | null, status: PresenceStatus }>} */ people: new Map(),
  /** @type {string | null} */ current: null,
  /** @type {Message | null} */ replyTo: null,
  /** @type {Message | null} */ editing: null,
  /** @type {Array<{ key: string, roomId: string, content: string }>} */ sending: [],
  lastTypingSent: 0,
  /** @type {ReturnType<typeof setTimeout> | undefined} */ typingIdle: undefined,
}

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
function byId (id) {
  const element = document.getElementById(id)
  if (element === null) throw new Error(`#${id} is missing`)
  return /** @type {T} */ (element)
}

/**
 * An element with classes and text (always as text).
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 */
function el (tag, className, text) {
  const element = document.createElement(tag)
  if (className) element.className = className
  if (text !== undefined) element.textContent = text
  return element
}

const ui = {
  tokenForm: /** @type {HTMLFormElement} */ (byId('token-form')),
  token: /** @type {HTMLInputElement} */ (byId('token')),
  me: byId('me'),
  myPresence: /** @type {HTMLSelectElement} */ (byId('my-presence')),
  status: byId('status'),
  rooms: byId('rooms'),
  createRoom: /** @type {HTMLFormElement} */ (byId('create-room')),
  newRoomName: /** @type {HTMLInputElement} */ (byId('new-room-name')),
  newRoomMembers: /** @type {HTMLInputElement} */ (byId('new-room-members')),
  openDirect: /** @type {HTMLFormElement} */ (byId('open-direct')),
  directUser: /** @type {HTMLInputElement} */ (byId('direct-user')),
  joinRoom: /** @type {HTMLFormElement} */ (byId('join-room')),
  joinRoomId: /** @type {HTMLInputElement} */ (byId('join-room-id')),
  roomTitle: byId('room-title'),
  members: byId('members'),
  messages: byId('messages'),
  typing: byId('typing'),
  composer: /** @type {HTMLFormElement} */ (byId('composer')),
  composerContext: byId('composer-context'),
  composerContextText: byId('composer-context-text'),
  composerCancel: byId('composer-cancel'),
  input: /** @type {HTMLInputElement} */ (byId('message-input')),
  send: /** @type {HTMLButtonElement} */ (byId('send')),
  notice: byId('notice'),
}

/** @param {string} text */
function notify (text) {
  ui.notice.textContent = text
  setTimeout(() => { if (ui.notice.textContent === text) ui.notice.textContent = '' }, 4000)
}

/** @param {unknown} error */
function report (error) {
  const e = /** @type {{ code?: string, message?: string }} */ (error)
  notify(e.code ? `${e.code}: ${e.message}` : String(e.message ?? error))
}

/** @param {string} userId */
function nameOf (userId) {
  return state.people.get(userId)?.name ?? userId
}

// Connection

async function wsUrl () {
  let wsPath = '/ws'
  try {
    const response = await fetch('demo-config.json')
    if (response.ok) wsPath = (await response.json()).wsPath ?? wsPath
  } catch {}
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${wsPath}`
}

/** @param {string} token */
async function connect (token) {
  if (state.client) await state.client.close()
  state.rooms.clear()
  state.current = null
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
  client.on('room.removed', ({ roomId }) => {
    state.rooms.delete(roomId)
    if (state.current === roomId) state.current = null
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
    const message = state.rooms.get(roomId)?.messages.get(messageId)
    if (message) replaceMessage({ ...message, content: '', attachments: [], reactions: [], deletedAt: new Date().toISOString() })
  })
  client.on('reaction.updated', ({ roomId, messageId, reactions }) => {
    const message = state.rooms.get(roomId)?.messages.get(messageId)
    if (message) replaceMessage({ ...message, reactions })
  })
  client.on('unread.updated', ({ roomId, unreadCount }) => {
    const view = state.rooms.get(roomId)
    if (view) view.summary.unreadCount = unreadCount
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
      if (roomId === state.current) void openRoom(roomId)
    }
  })
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
  ui.input.disabled = state.current === null
  ui.send.disabled = state.current === null
  render()
}

/** @param {RoomSummary} summary */
function upsertRoom (summary) {
  const view = state.rooms.get(summary.id)
  if (view) {
    view.summary = { ...view.summary, ...summary }
    return view
  }
  if (summary.peerId) state.people.set(summary.peerId, { name: summary.name, status: state.people.get(summary.peerId)?.status ?? 'offline' })
  /** @type {RoomView} */
  const created = { summary, messages: new Map(), loaded: false, hasMoreBefore: false, loadingOlder: false, typing: new Map() }
  state.rooms.set(summary.id, created)
  return created
}

// Rooms

/** @param {string} roomId */
async function openRoom (roomId) {
  const client = state.client
  const view = state.rooms.get(roomId)
  if (!client || !view) return
  state.current = roomId
  state.replyTo = null
  state.editing = null
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
async function loadMembers (roomId) {
  if (!state.client) return
  try {
    const { members } = await state.client.members(roomId)
    for (const member of members) state.people.set(member.user.id, { name: member.user.name, status: member.status })
    const view = state.rooms.get(roomId)
    if (view) view.memberIds = members.map((member) => member.user.id)
    renderMembers()
    renderRooms()
  } catch {}
}

async function loadOlder () {
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
function markRead (roomId) {
  const view = state.rooms.get(roomId)
  if (!state.client || !view || document.visibilityState === 'hidden') return
  const lastSeq = view.summary.lastSeq
  if (view.summary.unreadCount === 0 && view.summary.lastReadSeq >= lastSeq) return
  view.summary.unreadCount = 0
  view.summary.lastReadSeq = lastSeq
  renderRooms()
  state.client.markRead(roomId, lastSeq).then(({ unreadCount }) => {
    view.summary.unreadCount = unreadCount
    renderRooms()
  }, () => {})
}

// Messages

/**
 * @param {string} roomId
 * @param {number} seq
 * @param {Message} message
 */
function onMessage (roomId, seq, message) {
  const view = state.rooms.get(roomId)
  if (!view) return
  // session.ready already counted what came before its lastSeq; only newer messages change the counts.
  if (seq > view.summary.lastSeq) {
    view.summary.lastSeq = seq
    view.summary.lastMessage = message
    if (message.sender.id !== state.me && roomId !== state.current) view.summary.unreadCount += 1
  }
  setTyping(roomId, message.sender.id, false)
  if (view.loaded) {
    view.messages.set(message.id, message)
    if (roomId === state.current) renderMessages({ stickToBottom: nearBottom() })
  }
  if (roomId === state.current) markRead(roomId)
  renderRooms()
}

/** @param {Message} message */
function replaceMessage (message) {
  const view = state.rooms.get(message.roomId)
  if (!view || !view.messages.has(message.id)) return
  view.messages.set(message.id, message)
  if (message.roomId === state.current) renderMessages({ stickToBottom: false })
}

/** @param {Message} message */
function ownSendDone (message) {
  const view = state.rooms.get(message.roomId)
  if (!view) return
  if (message.seq > view.summary.lastSeq) {
    view.summary.lastSeq = message.seq
    view.summary.lastMessage = message
    view.summary.lastReadSeq = message.seq
  }
  if (view.loaded) view.messages.set(message.id, message)
}

async function submitComposer () {
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
    const { message } = await client.sendMessage(roomId, content, replyTo ? { replyToId: replyTo.id } : {})
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
async function toggleReaction (message, emoji) {
  if (!state.client || !state.me) return
  const mine = message.reactions.some((reaction) => reaction.emoji === emoji && reaction.userIds.includes(/** @type {string} */ (state.me)))
  try {
    const { reactions } = mine ? await state.client.unreact(message.id, emoji) : await state.client.react(message.id, emoji)
    const current = state.rooms.get(message.roomId)?.messages.get(message.id)
    if (current) replaceMessage({ ...current, reactions })
  } catch (error) {
    report(error)
  }
}

/** @param {Message} message */
async function deleteMessage (message) {
  if (!state.client) return
  try {
    await state.client.deleteMessage(message.id)
    replaceMessage({ ...message, content: '', attachments: [], reactions: [], deletedAt: new Date().toISOString() })
  } catch (error) {
    report(error)
  }
}

// Typing

/**
 * @param {string} roomId
 * @param {string} userId
 * @param {boolean} isTyping
 */
function setTyping (roomId, userId, isTyping) {
  const view = state.rooms.get(roomId)
  if (!view) return
  const timer = view.typing.get(userId)
  if (timer !== undefined) clearTimeout(timer)
  view.typing.delete(userId)
  if (isTyping) view.typing.set(userId, setTimeout(() => setTyping(roomId, userId, false), TYPING_EXPIRY_MS))
  if (roomId === state.current) renderTyping()
}

function onInput () {
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

function stopTyping () {
  clearTimeout(state.typingIdle)
  if (state.lastTypingSent === 0 || !state.client || !state.current) return
  state.lastTypingSent = 0
  state.client.typingStop(state.current).catch(() => {})
}

// Rendering: every text through textContent.

function render () {
  renderRooms()
  renderHeader()
  renderMembers()
  renderMessages({ stickToBottom: true })
  renderTyping()
  renderComposerContext()
}

/** @param {RoomSummary} summary */
function roomLabel (summary) {
  return summary.type === 'DIRECT' ? (summary.peerId ? nameOf(summary.peerId) : summary.name) : summary.name
}

function renderRooms () {
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
    item.append(dot, name, kind, unread)
    item.addEventListener('click', () => { void openRoom(summary.id) })
    return item
  }))
}

function renderHeader () {
  const view = state.current ? state.rooms.get(state.current) : undefined
  ui.roomTitle.textContent = view ? roomLabel(view.summary) : 'No room open'
  ui.roomTitle.title = view ? `room id: ${view.summary.id}` : ''
}

function renderMembers () {
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
    return item
  }))
}

function nearBottom () {
  return ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 80
}

/** @param {{ stickToBottom: boolean }} options */
function renderMessages ({ stickToBottom }) {
  const view = state.current ? state.rooms.get(state.current) : undefined
  if (!view) {
    ui.messages.replaceChildren()
    return
  }
  const sorted = [...view.messages.values()].sort((a, b) => a.seq - b.seq)
  const items = sorted.map(messageItem)
  if (view.loaded && !view.hasMoreBefore) items.unshift(el('li', 'history-end', 'beginning of the conversation'))
  for (const pending of state.sending.filter((entry) => entry.roomId === state.current)) {
    const item = el('li', 'message mine pending')
    item.append(el('div', 'meta', 'sending…'), el('div', 'content', pending.content))
    items.push(item)
  }
  ui.messages.replaceChildren(...items)
  if (stickToBottom) ui.messages.scrollTop = ui.messages.scrollHeight
}

/** @param {Message} message */
function messageItem (message) {
  const mine = message.sender.id === state.me
  const deleted = message.deletedAt !== undefined
  const item = el('li', `message${mine ? ' mine' : ''}${deleted ? ' deleted' : ''}`)
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
  action('reply', 'reply', () => {
    state.editing = null
    state.replyTo = message
    renderComposerContext()
    ui.input.focus()
  })
  for (const emoji of QUICK_REACTIONS) action(emoji, 'react', () => { void toggleReaction(message, emoji) })
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

function renderTyping () {
  const view = state.current ? state.rooms.get(state.current) : undefined
  const names = view ? [...view.typing.keys()].filter((userId) => userId !== state.me).map(nameOf) : []
  ui.typing.textContent = names.length === 0 ? '' : `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…`
}

function renderComposerContext () {
  const context = state.editing ? `Editing: ${state.editing.content}` : state.replyTo ? `Replying to ${state.replyTo.sender.name ?? state.replyTo.sender.id}: ${state.replyTo.content}` : ''
  ui.composerContextText.textContent = context.length > 80 ? `${context.slice(0, 80)}…` : context
  ui.composerContext.hidden = context === ''
}

// Wiring

ui.tokenForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const token = ui.token.value.trim()
  if (token) void connect(token)
})
ui.composer.addEventListener('submit', (event) => {
  event.preventDefault()
  void submitComposer()
})
ui.composerCancel.addEventListener('click', () => {
  if (state.editing) ui.input.value = ''
  state.editing = null
  state.replyTo = null
  renderComposerContext()
})
ui.input.addEventListener('input', onInput)
ui.messages.addEventListener('scroll', () => { if (ui.messages.scrollTop < 60) void loadOlder() })
ui.createRoom.addEventListener('submit', async (event) => {
  event.preventDefault()
  if (!state.client) return
  const memberIds = ui.newRoomMembers.value.split(',').map((id) => id.trim()).filter((id) => id !== '')
  try {
    const { room } = await state.client.createRoom({ name: ui.newRoomName.value.trim(), type: 'GROUP', memberIds })
    upsertRoom(room)
    ui.newRoomName.value = ''
    ui.newRoomMembers.value = ''
    await openRoom(room.id)
  } catch (error) {
    report(error)
  }
})
ui.openDirect.addEventListener('submit', async (event) => {
  event.preventDefault()
  if (!state.client) return
  try {
    const { room } = await state.client.openDirect(ui.directUser.value.trim())
    upsertRoom(room)
    ui.directUser.value = ''
    if (room.peerId) {
      const { users } = await state.client.getPresence([room.peerId])
      for (const user of users) state.people.set(user.userId, { name: state.people.get(user.userId)?.name ?? room.name, status: user.status })
    }
    await openRoom(room.id)
  } catch (error) {
    report(error)
  }
})
ui.joinRoom.addEventListener('submit', async (event) => {
  event.preventDefault()
  if (!state.client) return
  try {
    const { room } = await state.client.joinRoom(ui.joinRoomId.value.trim())
    upsertRoom(room)
    ui.joinRoomId.value = ''
    await openRoom(room.id)
  } catch (error) {
    report(error)
  }
})
ui.myPresence.addEventListener('change', () => {
  state.client?.setPresence(/** @type {PresenceStatus} */ (ui.myPresence.value)).catch(report)
})
document.addEventListener('visibilitychange', () => { if (state.current) markRead(state.current) })

const fromUrl = new URLSearchParams(location.search).get('token')
if (fromUrl) {
  ui.token.value = fromUrl
  void connect(fromUrl)
}
