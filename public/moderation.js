// @ts-check
// Moderation from the page (docs/moderation.md): a moderator's menu on a member (mute, ban) and on a
// message (pin), a report on anyone else's message, and what moderators and the moderated are told.
import { notify, report } from './dom.js'
import { loadMembers } from './rooms.js'
import { state } from './state.js'

/** @typedef {import('./client/index.js').Message} Message */
/** @typedef {import('./client/index.js').Report} Report */

const MODERATOR_ROLES = new Set(['MODERATOR', 'ADMIN', 'OWNER'])

/** Whether the user moderates the open room (the server decides again: this only shapes the menu). */
export function moderatesCurrentRoom () {
  const view = state.current ? state.rooms.get(state.current) : undefined
  return view !== undefined && MODERATOR_ROLES.has(view.summary.myRole)
}

/**
 * @param {'mute' | 'ban'} action
 * @param {string} userId
 */
export async function moderateMember (action, userId) {
  const client = state.client
  const roomId = state.current
  if (!client || !roomId) return
  try {
    if (action === 'ban') await client.ban(roomId, userId, { reason: 'banned from the demo page' })
    else await client.mute(roomId, userId, { durationSec: 600, reason: 'muted from the demo page' })
    notify(action === 'ban' ? `${userId} is banned` : `${userId} is muted for 10 minutes`)
    await loadMembers(roomId)
  } catch (error) {
    report(error)
  }
}

/** @param {Message} message */
export async function reportMessage (message) {
  if (!state.client) return
  try {
    await state.client.report(message.id, 'reported from the demo page')
    notify('reported to the moderators')
  } catch (error) {
    report(error)
  }
}

/** @param {Message} message */
export async function pinMessage (message) {
  if (!state.client) return
  try {
    await state.client.pin(message.id)
    notify('pinned')
  } catch (error) {
    report(error)
  }
}

/**
 * A moderator's notice of a report (the push goes to MODERATOR and above only).
 * @param {Report} report
 */
export function onReported (report) {
  notify(`report: "${report.excerpt}" (${report.reason})`)
}
