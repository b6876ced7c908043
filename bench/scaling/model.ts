/**
 * The figures docs/scaling.md plans with, and what they predict for one simulated shape. Kept here as
 * numbers (not parsed out of the markdown) so that a change of the model is a change of this file too,
 * reviewed side by side with the doc.
 */
export const MODEL = {
  /** Server CPU per delivery (one frame written to one socket), µs. */
  cpuPerDelivery: 10,
  /** Server CPU per durable send, frame to ack, µs. */
  cpuPerAck: 40,
  /** PostgreSQL CPU per acked send, µs. */
  postgresPerSend: 38,
  /** Resident memory per idle socket, bytes: the median the model quotes (it plans with 20 KB). */
  rssPerSocket: 10_000,
  rssPerSocketPlan: 20_000,
  /** Redis PUBLISH commands per message on one Redis (inside the batch's one EVAL). */
  publishesPerMessage: 1,
} as const

/** Subscribing nodes of a room's channel when its R members sit at random on N nodes. */
export function subscribingNodes (nodes: number, members: number): number {
  return nodes * (1 - (1 - 1 / nodes) ** members)
}

/** Server CPU per message: its send plus its deliveries (wherever the sockets are), µs. */
export function cpuPerMessage (deliveriesPerMessage: number): number {
  return MODEL.cpuPerAck + deliveriesPerMessage * MODEL.cpuPerDelivery
}
