/**
 * The agreement check docs/scaling.md states: each figure of the model, at the simulation's own rate and
 * shape, against what the run measured, within the stated margin: ±35% for the CPU figures (the model's
 * inputs spread that far between rounds on this machine), ±10% for the Redis counts (counted, not timed).
 */
import { median } from '../lib.js'
import type { Figures } from './analysis.js'
import { batchSize, cpuPerMessageAt, MODEL, perDelivery, postgresPerSend, serverPerSend, subscribingNodes } from './model.js'

export const MARGINS = { cpu: 0.35, redis: 0.10 } as const

export interface Shape {
  nodes: number
  roomSize: number
  /** Nodes sending at once (each window has half of them sending). */
  sendersPerWindow: number
}

export interface Agreement {
  figure: string
  unit: string
  model: number
  measured: number
  margin: number
  pass: boolean
}

export function agreement (figures: Figures, shape: Shape, measuredSubscribers: number): Agreement[] {
  const perNode = figures.messagesPerSecond / shape.sendersPerWindow
  const batch = batchSize(perNode)
  const subscribers = subscribingNodes(shape.nodes, shape.roomSize)
  // Each multi-send batch is one EVAL, a lone send one PUBLISH: batches = sends − EVALs when the multi
  // ones hold two sends each (the usual case at these rates; more per batch makes this an underestimate).
  const measuredBatch = 1 / Math.max(1e-9, 1 - figures.evalsPerMessage)
  const row = (figure: string, unit: string, model: number, measured: number, margin: number): Agreement =>
    ({ figure, unit, model, measured, margin, pass: Math.abs(measured / model - 1) <= margin })
  const nodesMedian = (pick: (node: Figures['nodes'][number]) => number): number => median(figures.nodes.map(pick))
  return [
    row(`sends per group-commit batch at ${perNode.toFixed(0)}/s per sending node (from EVALs per send)`, '', batch, measuredBatch, MARGINS.cpu),
    row('server CPU per delivery (median of nodes)', 'µs', perDelivery(shape.roomSize / subscribers), nodesMedian((node) => node.cpuPerDelivery), MARGINS.cpu),
    row('server CPU per ack (median of nodes)', 'µs', serverPerSend(batch), nodesMedian((node) => node.cpuPerAck), MARGINS.cpu),
    row(`server CPU per message (send + ${figures.deliveriesPerMessage.toFixed(1)} deliveries)`, 'µs', cpuPerMessageAt(perNode, figures.deliveriesPerMessage, shape.nodes, shape.roomSize), figures.cpuPerMessage, MARGINS.cpu),
    row('PostgreSQL CPU per send (the scratch database\'s backends)', 'µs', postgresPerSend(batch), figures.databasePerSend, MARGINS.cpu),
    row('PostgreSQL CPU per send (every postgres process)', 'µs', postgresPerSend(batch), figures.postgresPerSend, MARGINS.cpu),
    row('Redis PUBLISH per message', '', MODEL.publishesPerMessage, figures.publishesPerMessage, MARGINS.redis),
    row('Redis subscribing nodes per room channel', '', subscribers, measuredSubscribers, MARGINS.redis),
    row('Redis operations per message (1 + s)', '', 1 + subscribers, figures.publishesPerMessage + measuredSubscribers, MARGINS.redis),
  ]
}

/** The check as markdown: one row per figure, then the verdict. */
export function agreementReport (checks: Agreement[]): string {
  const lines = ['| figure | model at this rate | measured | measured ÷ model | margin | check |', '| --- | --- | --- | --- | --- | --- |']
  for (const check of checks) {
    const digits = check.unit === 'µs' ? 0 : 2
    lines.push(`| ${check.figure} | ${check.model.toFixed(digits)} ${check.unit} | ${check.measured.toFixed(digits)} ${check.unit} | ${(check.measured / check.model).toFixed(2)} | ±${Math.round(check.margin * 100)}% | ${check.pass ? 'PASS' : 'FAIL'} |`)
  }
  const failed = checks.filter((check) => !check.pass).length
  lines.push('', failed === 0 ? `agreement: PASS, all ${checks.length} figures within their margin` : `agreement: FAIL, ${failed} of ${checks.length} figures outside their margin`)
  return lines.join('\n')
}
