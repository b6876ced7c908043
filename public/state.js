// @ts-check
// What the page knows: the rooms it shows (one RoomView each), the people it has seen, the open room and
// the composer's state. The other modules read and change `state`, then call the views to redraw.

/** @typedef {import('./client/index.js').Message} Message */
/** @typedef {import('./client/index.js').RoomSummary} RoomSummary */
/** @typedef {import('./client/index.js').ChatClient} ChatClient */
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

/**
 * The thread panel: one root's replies (the main timeline leaves them out).
 * @typedef {object} ThreadView
 * @property {string} roomId
 * @property {string} rootId
 * @property {Message | null} root              the root as last seen (the room's loaded messages win)
 * @property {Map<string, Message>} replies     loaded replies by id
 * @property {boolean} loaded                   the latest page was fetched
 * @property {boolean} hasMoreBefore            older replies exist
 * @property {boolean} loadingOlder
 */

export const PAGE = 30
export const TYPING_EXPIRY_MS = 7000

export const state = {
  /** @type {ChatClient | null} */ client: null,
  /** @type {string | null} */ me: null,
  /** @type {Map<string, RoomView>} */ rooms: new Map(),
  /** @type {Map<string, { name: string | null, status: PresenceStatus }>} */ people: new Map(),
  /** @type {string | null} */ current: null,
  /** @type {Message | null} */ replyTo: null,
  /** @type {Message | null} */ editing: null,
  /** @type {Array<{ key: string, roomId: string, content: string, threadRootId?: string }>} */ sending: [],
  /** @type {ThreadView | null} */ thread: null,
  /** A search result just opened: its message stands out. */
  /** @type {string | null} */ found: null,
  /** The last search: its query and room (null: all rooms), and the cursor of its next page. */
  /** @type {{ query: string, roomId: string | null, nextCursor: string | null } | null} */ search: null,
  lastTypingSent: 0,
  /** @type {ReturnType<typeof setTimeout> | undefined} */ typingIdle: undefined,
}

/** @param {string} userId */
export function nameOf (userId) {
  return state.people.get(userId)?.name ?? userId
}

/** @param {RoomSummary} summary */
export function upsertRoom (summary) {
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

/**
 * Whether a message mentions this user, by id or everyone.
 * @param {import('./client/index.js').Message} message
 */
export function mentionsMe (message) {
  return (message.mentions ?? []).some((id) => id === '*' || id === state.me)
}

/**
 * A message the page holds, wherever it is shown: the room's timeline, or the open thread's panel.
 * @param {string} roomId
 * @param {string} messageId
 * @returns {Message | undefined}
 */
export function findMessage (roomId, messageId) {
  const thread = state.thread?.roomId === roomId ? state.thread : null
  return state.rooms.get(roomId)?.messages.get(messageId) ??
    thread?.replies.get(messageId) ??
    (thread?.root?.id === messageId ? thread.root : undefined)
}
