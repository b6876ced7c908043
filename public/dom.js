// @ts-check
// The page's elements, looked up once, and the two helpers every view uses: `el` builds an element whose
// text is always set through textContent (never innerHTML), `report` shows an error in the notice line.

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
export function el (tag, className, text) {
  const element = document.createElement(tag)
  if (className) element.className = className
  if (text !== undefined) element.textContent = text
  return element
}

export const ui = {
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
  findRooms: /** @type {HTMLFormElement} */ (byId('find-rooms')),
  findRoomsQuery: /** @type {HTMLInputElement} */ (byId('find-rooms-query')),
  directory: byId('directory'),
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
  search: /** @type {HTMLFormElement} */ (byId('search')),
  searchQuery: /** @type {HTMLInputElement} */ (byId('search-query')),
  searchThisRoom: /** @type {HTMLInputElement} */ (byId('search-this-room')),
  searchResults: byId('search-results'),
  searchMore: /** @type {HTMLButtonElement} */ (byId('search-more')),
  thread: byId('thread'),
  threadTitle: byId('thread-title'),
  threadClose: byId('thread-close'),
  threadRoot: byId('thread-root'),
  threadMessages: byId('thread-messages'),
  threadComposer: /** @type {HTMLFormElement} */ (byId('thread-composer')),
  threadInput: /** @type {HTMLInputElement} */ (byId('thread-input')),
}

/** @param {string} text */
export function notify (text) {
  ui.notice.textContent = text
  setTimeout(() => { if (ui.notice.textContent === text) ui.notice.textContent = '' }, 4000)
}

/** @param {unknown} error */
export function report (error) {
  const e = /** @type {{ code?: string, message?: string }} */ (error)
  notify(e.code ? `${e.code}: ${e.message}` : String(e.message ?? error))
}
