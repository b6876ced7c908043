import type { FastifyInstance } from 'fastify'

/**
 * Closes the TCP socket of an upgrade request that was answered over HTTP instead of being upgraded (a 404
 * for `/WS` or `/ws/`, a host route that is not a WebSocket route). Node hands an upgrade's socket over to
 * its 'upgrade' listener and stops managing it: nothing closes it after the answer, so it lived as long as
 * the client kept it, and the HTTP server's close waited for it (app.close() never returned while such a
 * client stayed). @fastify/websocket destroys these sockets only for routes of its own context.
 *
 * A hook of the host's context (the suite's only one there), because a request to a path with no route is
 * answered by the host's 404 handler, outside the suite's context. A successful upgrade is hijacked and
 * never reaches onResponse.
 */
export function closeStrayUpgrades (host: FastifyInstance): void {
  host.addHook('onResponse', async function closeStrayUpgrade (request) {
    // Node's parser sets `upgrade` on the requests it handed to the 'upgrade' event (not in @types/node).
    if ((request.raw as { upgrade?: boolean }).upgrade === true) request.raw.socket.destroy()
  })
}
