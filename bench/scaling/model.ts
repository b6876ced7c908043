/**
 * The figures docs/scaling.md plans with, and what they predict for one simulated shape. Kept here as
 * numbers (not parsed out of the markdown) so that a change of the model is a change of this file too,
 * reviewed side by side with the doc.
 */
export const MODEL = {
  /** Server CPU per delivery (one frame written to one socket), µs, at saturation (the floor). */
  cpuPerDelivery: 10,
  /** Server CPU per durable send, frame to ack, µs, at saturation (the floor). */
  cpuPerAck: 40,
  /** PostgreSQL CPU per acked send, µs, at saturation (the floor). */
  postgresPerSend: 38,
  /** Resident memory per idle socket, bytes: the median the model quotes (it plans with 20 KB). */
  rssPerSocket: 10_000,
  rssPerSocketPlan: 20_000,
  /** Redis PUBLISH commands per message on one Redis (inside the batch's one EVAL). */
  publishesPerMessage: 1,
} as const

/**
 * The two measured points each rate-dependent cost is drawn through. A send pays a part of its own and a
 * share of its group-commit batch (one statement, one commit, one publish): cost = own + batchPart /
 * batch. A delivery pays its socket write and a share of the frame's arrival (one Redis message, parsed
 * once, written to the node's k sockets of the room): cost = write + framePart / k. The saturated point is
 * `npm run bench` (durable: ~120 sends per batch; fan-out: 499 local sockets per frame). The moderate
 * point is the mean of the simulation's runs A and B of 2026-12-06 (373 and 255 sends/s per sending node,
 * 1.005 and 1.18 sends per batch, ~5 sockets per frame): B alone had put a send at twice what A paid, and
 * a later run (2026-12-07) paid what A did, so one run is not a point to draw a line through.
 */
export const ANCHORS = {
  serverPerSend: { saturated: { batch: 120, us: 40 }, moderate: { batch: 1.09, us: (166 + 432) / 2 } },
  postgresPerSend: { saturated: { batch: 120, us: 38 }, moderate: { batch: 1.09, us: (363 + 680) / 2 } },
  perDelivery: { saturated: { perFrame: 499, us: 10 }, moderate: { perFrame: 5.01, us: (36.8 + 35.9) / 2 } },
  /**
   * How long a batch holds the group commit (its statement and commit), ms: sends that arrive meanwhile
   * make the next batch, so a node sending λ/s batches 1 + λ·hold. The mean of runs A (0.005 extra sends
   * per batch at 373/s) and B (0.18 at 255/s): at a few hundred sends/s per node batches stay near one.
   */
  commitHoldMs: (0.005 / 373 + 0.18 / 255) / 2 * 1000,
} as const

/** y = fixed + perUnit / x through two points: the fixed part and the part shared by x units. */
function through (a: { x: number, y: number }, b: { x: number, y: number }): { fixed: number, shared: number } {
  const shared = (a.y - b.y) / (1 / a.x - 1 / b.x)
  return { fixed: a.y - shared / a.x, shared }
}

const send = through({ x: ANCHORS.serverPerSend.saturated.batch, y: ANCHORS.serverPerSend.saturated.us }, { x: ANCHORS.serverPerSend.moderate.batch, y: ANCHORS.serverPerSend.moderate.us })
const postgres = through({ x: ANCHORS.postgresPerSend.saturated.batch, y: ANCHORS.postgresPerSend.saturated.us }, { x: ANCHORS.postgresPerSend.moderate.batch, y: ANCHORS.postgresPerSend.moderate.us })
const delivery = through({ x: ANCHORS.perDelivery.saturated.perFrame, y: ANCHORS.perDelivery.saturated.us }, { x: ANCHORS.perDelivery.moderate.perFrame, y: ANCHORS.perDelivery.moderate.us })

/** The fitted parts, for the doc and the report. */
export const PARTS = { send, postgres, delivery }

/** Sends per group-commit batch on a node that sends `perSecond` (open loop, the database not the bottleneck). */
export function batchSize (perSecond: number): number {
  return 1 + perSecond * ANCHORS.commitHoldMs / 1000
}

/** Server CPU per send at a batch size, µs. */
export function serverPerSend (batch: number): number {
  return send.fixed + send.shared / batch
}

/** PostgreSQL CPU per send at a batch size, µs. */
export function postgresPerSend (batch: number): number {
  return postgres.fixed + postgres.shared / batch
}

/** Server CPU per delivery when a frame reaches `perFrame` sockets of a node, µs. */
export function perDelivery (perFrame: number): number {
  return delivery.fixed + delivery.shared / perFrame
}

/** Subscribing nodes of a room's channel when its R members sit at random on N nodes. */
export function subscribingNodes (nodes: number, members: number): number {
  return nodes * (1 - (1 - 1 / nodes) ** members)
}

/** Server CPU per message at saturation: its send plus its deliveries (wherever the sockets are), µs. */
export function cpuPerMessage (deliveriesPerMessage: number): number {
  return MODEL.cpuPerAck + deliveriesPerMessage * MODEL.cpuPerDelivery
}

/** Server CPU per message at a node send rate, with rooms of R members over N nodes, µs. */
export function cpuPerMessageAt (perSecond: number, deliveriesPerMessage: number, nodes: number, members: number): number {
  return serverPerSend(batchSize(perSecond)) + deliveriesPerMessage * perDelivery(members / subscribingNodes(nodes, members))
}
