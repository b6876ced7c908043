import type { FastifyInstance } from 'fastify'
import type { MetricObjectWithValues, MetricValue } from 'prom-client'

const PROMETHEUS_TEXT = {
  200: {
    description: 'Prometheus text exposition format',
    content: { 'text/plain': { schema: { type: 'string' } } },
  },
}

interface SummaryValue {
  labels: Record<string, string | number | undefined>
  value: number
}

interface SummaryMetric {
  name: string
  help: string
  type: string
  values?: SummaryValue[]
  /** Histograms: observations, their sum, and the mean. */
  count?: number
  sum?: number
  mean?: number | null
}

function summarize (metric: MetricObjectWithValues<MetricValue<string>>): SummaryMetric {
  const base = { name: metric.name, help: metric.help, type: String(metric.type) }
  if (base.type !== 'histogram') {
    return { ...base, values: metric.values.map((entry) => ({ labels: { ...entry.labels }, value: entry.value })) }
  }
  let count = 0
  let sum = 0
  for (const entry of metric.values as Array<MetricValue<string> & { metricName?: string }>) {
    if (entry.metricName === `${metric.name}_count`) count += entry.value
    else if (entry.metricName === `${metric.name}_sum`) sum += entry.value
  }
  return { ...base, count, sum, mean: count === 0 ? null : sum / count }
}

/**
 * GET /metrics: the suite's registry in Prometheus text format (no token: keep it behind the proxy).
 * GET /metrics.json: the suite's own metrics (chat_*) for people: counters and gauges by label,
 * histograms as count, sum and mean.
 */
export default async function metricsRoutes (app: FastifyInstance): Promise<void> {
  if (!app.chatConfig.metrics.enabled) return
  const registry = app.chatMetrics.registry

  app.get('/metrics', {
    schema: { tags: ['observability'], summary: 'Prometheus metrics of this node', response: PROMETHEUS_TEXT },
  }, async (_request, reply) => {
    const text = await registry.metrics()
    return reply.type(registry.contentType).send(text)
  })

  app.get('/metrics.json', {
    schema: {
      tags: ['observability'],
      summary: 'The chat_* metrics of this node as JSON, for people',
      response: { 200: { type: 'object', additionalProperties: true, properties: { metrics: { type: 'array', items: { type: 'object', additionalProperties: true } } } } },
    },
  }, async (_request, reply) => {
    const all = await registry.getMetricsAsJSON()
    const metrics = all.filter((metric) => metric.name.startsWith('chat_')).map(summarize)
    return reply.type('application/json; charset=utf-8').send(JSON.stringify({ metrics }))
  })
}
