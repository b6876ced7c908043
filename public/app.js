// @ts-check
// The demo chat page: plain DOM code over the suite's client (built to ./client/ by `npm run build:client`).
// Every piece of user text goes into the page through textContent, never innerHTML.
//
// This file wires the page's forms and listeners to the modules beside it:
//   state.js       what the page knows (rooms, people, the open room, the composer's state)
//   dom.js         the page's elements, `el` (text only), notices
//   connection.js  the ChatClient and what each pushed event changes
//   rooms.js       opening a room: history, members, older pages, read marks
//   messages.js    incoming messages, and sending, editing, reacting, deleting
//   threads.js     the thread panel: a root's replies, paged and live, and replying in the thread
//   search.js      the search box (message.search) and opening a result where it is
//   typing.js      typing indicators, both ways
//   render.js      the views, redrawn from `state`
// Actions re-render and rendered items call actions on click, so some of these modules import each other;
// only functions cross those imports, and they are called after every module has loaded.
import { connect } from './connection.js'
import { ui, report } from './dom.js'
import { submitComposer } from './messages.js'
import { renderComposerContext } from './render.js'
import { findRooms, loadOlder, markRead, openRoom } from './rooms.js'
import { search, searchMore } from './search.js'
import { state, upsertRoom } from './state.js'
import { closeThread, loadOlderReplies, submitThreadReply } from './threads.js'
import { onInput } from './typing.js'

/** @typedef {import('./client/index.js').PresenceStatus} PresenceStatus */

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
ui.findRooms.addEventListener('submit', (event) => {
  event.preventDefault()
  void findRooms(ui.findRoomsQuery.value.trim())
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
ui.threadComposer.addEventListener('submit', (event) => {
  event.preventDefault()
  void submitThreadReply()
})
ui.threadClose.addEventListener('click', closeThread)
ui.threadMessages.addEventListener('scroll', () => { if (ui.threadMessages.scrollTop < 60) void loadOlderReplies() })
ui.search.addEventListener('submit', (event) => {
  event.preventDefault()
  void search(ui.searchQuery.value.trim(), ui.searchThisRoom.checked ? state.current : null)
})
ui.searchMore.addEventListener('click', () => { void searchMore() })
ui.myPresence.addEventListener('change', () => {
  state.client?.setPresence(/** @type {PresenceStatus} */ (ui.myPresence.value)).catch(report)
})
document.addEventListener('visibilitychange', () => { if (state.current) markRead(state.current) })

const fromUrl = new URLSearchParams(location.search).get('token')
if (fromUrl) {
  ui.token.value = fromUrl
  void connect(fromUrl)
}
