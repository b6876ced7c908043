/**
 * From the windows to per-unit costs. The two load windows separate a send's cost from a delivery's:
 * in each, only half the nodes send, while every node's sockets keep receiving. A node's delivery cost
 * comes from its receive-only window (no sends there), its send cost from its sending window minus the
 * deliveries it also made there at that cost. Each node's idle CPU rate (the quiet window: pings,
 * presence heartbeats and sweeps, timers) is taken out of both.
 */
import { median } from '../lib.js'
import { MODEL } from './model.js'
import { total, type CommandCalls } from './redis-stats.js'
import type { Window } from './windows.js'

export interface NodeFigures {
  node: number
  sockets: number
  idleCoreShare: number
  cpuPerDelivery: number
  cpuPerAck: number
  rssPerSocket: number
  rssPerSocketAfterGc: number
  rssPerSocketFromFresh: number
  /** The node's CPU in its sending window as a share of one core (idle included). */
  sendingCoreShare: number
}

export interface Figures {
  nodes: NodeFigures[]
  messages: number
  messagesPerSecond: number
  deliveriesPerMessage: number
  cpuPerMessage: number
  postgresPerSend: number
  /** The scratch database's backends only (no WAL writer or checkpointer, no other agent's load). */
  databasePerSend: number
  publishesPerMessage: number
  evalsPerMessage: number
  redisCallsPerMessage: number
  /** Redis calls per second in the quiet window (the background taken out). */
  redisIdleCallsPerSecond: number
  errors: number
  skipped: number
}

export interface Inputs {
  quiet: Window
  /** The windows in order, and which nodes sent in each. */
  windows: Array<{ window: Window, senders: number[] }>
  sockets: number[]
  rssBefore: number[]
  rssAfter: number[]
  rssBeforeGc: number[]
  rssAfterGc: number[]
  rssFresh: number[]
}

/** Calls of a command in `window` beyond the quiet window's rate. */
function beyondIdle (name: string | null, window: Window, quiet: Window): number {
  const pick = (calls: CommandCalls): number => name === null ? total(calls) : calls.get(name) ?? 0
  return pick(window.calls) - pick(quiet.calls) / quiet.seconds * window.seconds
}

export function analyse ({ quiet, windows, sockets, rssBefore, rssAfter, rssBeforeGc, rssAfterGc, rssFresh }: Inputs): Figures {
  const idleRate = quiet.cpu.map((cpu) => cpu / quiet.seconds)
  const nodes = sockets.map((count, node): NodeFigures => {
    const sending = windows.find(({ senders }) => senders.includes(node))?.window as Window
    const receiving = windows.find(({ senders }) => !senders.includes(node))?.window as Window
    const busy = (window: Window): number => (window.cpu[node] as number) - (idleRate[node] as number) * window.seconds
    const cpuPerDelivery = busy(receiving) / (receiving.deliveries[node] as number)
    const cpuPerAck = (busy(sending) - cpuPerDelivery * (sending.deliveries[node] as number)) / (sending.acks[node] as number)
    return {
      node,
      sockets: count,
      idleCoreShare: (idleRate[node] as number) / 1e6,
      cpuPerDelivery,
      cpuPerAck,
      rssPerSocket: ((rssAfter[node] as number) - (rssBefore[node] as number)) / count,
      rssPerSocketAfterGc: ((rssAfterGc[node] as number) - (rssBeforeGc[node] as number)) / count,
      rssPerSocketFromFresh: ((rssAfter[node] as number) - (rssFresh[node] as number)) / count,
      sendingCoreShare: (sending.cpu[node] as number) / sending.seconds / 1e6,
    }
  })
  const all = windows.map(({ window }) => window)
  const sum = (pick: (window: Window) => number): number => all.reduce((added, window) => added + pick(window), 0)
  const messages = sum((window) => window.acks.reduce((a, b) => a + b, 0))
  const deliveries = sum((window) => window.deliveries.reduce((a, b) => a + b, 0))
  const seconds = sum((window) => window.seconds)
  const idleTotal = idleRate.reduce((a, b) => a + b, 0)
  const serverCpu = sum((window) => window.cpu.reduce((a, b) => a + b, 0)) - idleTotal * seconds
  const postgres = sum((window) => window.postgres) - quiet.postgres / quiet.seconds * seconds
  const perMessage = (name: string | null): number => sum((window) => beyondIdle(name, window, quiet)) / messages
  return {
    nodes,
    messages,
    messagesPerSecond: messages / seconds,
    deliveriesPerMessage: deliveries / messages,
    cpuPerMessage: serverCpu / messages,
    postgresPerSend: postgres / messages,
    databasePerSend: (sum((window) => window.database) - quiet.database / quiet.seconds * seconds) / messages,
    publishesPerMessage: perMessage('publish'),
    evalsPerMessage: perMessage('eval'),
    redisCallsPerMessage: perMessage(null),
    redisIdleCallsPerSecond: total(quiet.calls) / quiet.seconds,
    errors: sum((window) => window.errors),
    skipped: sum((window) => window.skipped),
  }
}

export interface Row { cost: string, model: number, measured: number, spread: string, unit: string }

const range = (values: number[], digits: number): string => `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`

/** The comparison: per node figures as the median of the nodes, with their range. */
export function rows (figures: Figures, modelSubscribers: number, measuredSubscribers: number, cpuPerMessageModel: number): Row[] {
  const of = (pick: (node: NodeFigures) => number): number[] => figures.nodes.map(pick)
  return [
    { cost: 'server CPU per delivery', unit: 'µs', model: MODEL.cpuPerDelivery, measured: median(of((n) => n.cpuPerDelivery)), spread: range(of((n) => n.cpuPerDelivery), 1) },
    { cost: 'server CPU per ack (send)', unit: 'µs', model: MODEL.cpuPerAck, measured: median(of((n) => n.cpuPerAck)), spread: range(of((n) => n.cpuPerAck), 1) },
    { cost: `server CPU per message (send + ${figures.deliveriesPerMessage.toFixed(1)} deliveries), all nodes`, unit: 'µs', model: cpuPerMessageModel, measured: figures.cpuPerMessage, spread: '' },
    { cost: 'PostgreSQL CPU per send (all postgres processes)', unit: 'µs', model: MODEL.postgresPerSend, measured: figures.postgresPerSend, spread: '' },
    { cost: 'PostgreSQL CPU per send (the scratch database\'s backends)', unit: 'µs', model: MODEL.postgresPerSend, measured: figures.databasePerSend, spread: '' },
    { cost: 'RSS per socket, no forced GC', unit: 'KB', model: MODEL.rssPerSocket / 1000, measured: median(of((n) => n.rssPerSocket)) / 1000, spread: range(of((n) => n.rssPerSocket / 1000), 1) },
    { cost: 'RSS per socket, after a full GC before and after', unit: 'KB', model: MODEL.rssPerSocket / 1000, measured: median(of((n) => n.rssPerSocketAfterGc)) / 1000, spread: range(of((n) => n.rssPerSocketAfterGc / 1000), 1) },
    { cost: 'RSS per socket from the fresh node (upper bound: rooms created too)', unit: 'KB', model: MODEL.rssPerSocket / 1000, measured: median(of((n) => n.rssPerSocketFromFresh)) / 1000, spread: range(of((n) => n.rssPerSocketFromFresh / 1000), 1) },
    { cost: 'Redis PUBLISH per message', unit: '', model: MODEL.publishesPerMessage, measured: figures.publishesPerMessage, spread: '' },
    { cost: 'Redis subscribing nodes per room channel (PUBSUB NUMSUB)', unit: '', model: modelSubscribers, measured: measuredSubscribers, spread: '' },
    { cost: 'Redis operations per message (1 + s)', unit: '', model: 1 + modelSubscribers, measured: figures.publishesPerMessage + measuredSubscribers, spread: '' },
  ]
}
