/**
 * A hand-written SVG line chart: latency (log scale) against delivered messages per second, one colour
 * per target, p99 solid with markers and p50 dashed, points in the order of the steps. No chart library.
 */

export interface ChartSeries {
  label: string
  color: string
  /** x: deliveries/s; p50 and p99 in ms (null: past the chart, the step lost samples). */
  points: Array<{ x: number, p50: number | null, p99: number | null }>
}

export interface ChartOptions {
  title: string
  subtitle: string
  width?: number
  height?: number
  /** Horizontal guide lines, in ms, labelled (the p99 thresholds). */
  guides?: Array<{ ms: number, label: string }>
}

const escapeXml = (text: string): string => text.replace(/[<>&"']/g, (char) => `&#${char.charCodeAt(0)};`)

function niceStep (range: number, ticks: number): number {
  const raw = range / ticks
  const power = 10 ** Math.floor(Math.log10(raw))
  const scaled = raw / power
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * power
}

function formatCount (value: number): string {
  if (value >= 1_000_000) return `${round1(value / 1_000_000)}M`
  if (value >= 1000) return `${round1(value / 1000)}k`
  return String(value)
}

const round1 = (value: number): string => String(Math.round(value * 10) / 10)

export function lineChart (series: ChartSeries[], options: ChartOptions): string {
  const width = options.width ?? 880
  const height = options.height ?? 500
  const margin = { left: 70, right: 210, top: 62, bottom: 58 }
  const plotW = width - margin.left - margin.right
  const plotH = height - margin.top - margin.bottom
  const xs = series.flatMap((line) => line.points.map((point) => point.x)).filter((x) => Number.isFinite(x))
  const maxX = Math.max(1, ...xs)
  const xStep = niceStep(maxX, 6)
  const xMax = Math.ceil(maxX / xStep) * xStep
  const yMin = 0.5
  const yMax = 2000
  const logMin = Math.log10(yMin)
  const logMax = Math.log10(yMax)
  const xOf = (x: number): number => margin.left + (x / xMax) * plotW
  const yOf = (ms: number): number => {
    const clamped = Math.min(yMax, Math.max(yMin, ms))
    return margin.top + plotH - ((Math.log10(clamped) - logMin) / (logMax - logMin)) * plotH
  }
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="${margin.left}" y="24" font-size="16" font-weight="600" fill="#111">${escapeXml(options.title)}</text>`)
  out.push(`<text x="${margin.left}" y="44" fill="#555">${escapeXml(options.subtitle)}</text>`)
  // Grid and axes.
  for (let x = 0; x <= xMax + 1e-9; x += xStep) {
    const px = xOf(x).toFixed(1)
    out.push(`<line x1="${px}" y1="${margin.top}" x2="${px}" y2="${margin.top + plotH}" stroke="#eee"/>`)
    out.push(`<text x="${px}" y="${margin.top + plotH + 18}" text-anchor="middle" fill="#444">${formatCount(x)}</text>`)
  }
  for (const ms of [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]) {
    const py = yOf(ms).toFixed(1)
    out.push(`<line x1="${margin.left}" y1="${py}" x2="${margin.left + plotW}" y2="${py}" stroke="#eee"/>`)
    out.push(`<text x="${margin.left - 8}" y="${py}" dy="4" text-anchor="end" fill="#444">${ms}</text>`)
  }
  for (const guide of options.guides ?? []) {
    const py = yOf(guide.ms).toFixed(1)
    out.push(`<line x1="${margin.left}" y1="${py}" x2="${margin.left + plotW}" y2="${py}" stroke="#c33" stroke-dasharray="2 4"/>`)
    out.push(`<text x="${margin.left + 4}" y="${py}" dy="-4" fill="#c33">${escapeXml(guide.label)}</text>`)
  }
  out.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`)
  out.push(`<text x="${margin.left + plotW / 2}" y="${height - 14}" text-anchor="middle" fill="#222">deliveries per second (fan-out: 1 room of 500, 5 senders)</text>`)
  out.push(`<text transform="translate(18 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#222">send-to-receive latency, ms (log)</text>`)
  // Lines.
  for (const line of series) {
    // In step order (the send rate rising), so that a saturated step that delivered less bends back.
    const points = line.points.filter((point) => Number.isFinite(point.x))
    const path = (pick: (point: ChartSeries['points'][number]) => number | null): string => points
      .map((point) => `${xOf(point.x).toFixed(1)},${yOf(pick(point) ?? yMax).toFixed(1)}`).join(' ')
    if (points.length === 0) continue
    out.push(`<polyline fill="none" stroke="${line.color}" stroke-width="1.5" stroke-dasharray="5 4" opacity="0.8" points="${path((point) => point.p50)}"/>`)
    out.push(`<polyline fill="none" stroke="${line.color}" stroke-width="2.2" points="${path((point) => point.p99)}"/>`)
    for (const point of points) {
      out.push(`<circle cx="${xOf(point.x).toFixed(1)}" cy="${yOf(point.p99 ?? yMax).toFixed(1)}" r="3.2" fill="${line.color}"><title>${escapeXml(`${line.label}: ${Math.round(point.x)}/s, p50 ${point.p50 ?? '—'} ms, p99 ${point.p99 ?? 'lost samples'} ms`)}</title></circle>`)
    }
  }
  // Legend.
  const legendX = margin.left + plotW + 16
  series.forEach((line, index) => {
    const y = margin.top + 10 + index * 22
    out.push(`<line x1="${legendX}" y1="${y}" x2="${legendX + 24}" y2="${y}" stroke="${line.color}" stroke-width="2.2"/>`)
    out.push(`<text x="${legendX + 30}" y="${y}" dy="4" fill="#222">${escapeXml(line.label)}</text>`)
  })
  const noteY = margin.top + 10 + series.length * 22 + 12
  out.push(`<line x1="${legendX}" y1="${noteY}" x2="${legendX + 24}" y2="${noteY}" stroke="#666" stroke-width="2.2"/>`)
  out.push(`<text x="${legendX + 30}" y="${noteY}" dy="4" fill="#555">p99</text>`)
  out.push(`<line x1="${legendX}" y1="${noteY + 18}" x2="${legendX + 24}" y2="${noteY + 18}" stroke="#666" stroke-width="1.5" stroke-dasharray="5 4"/>`)
  out.push(`<text x="${legendX + 30}" y="${noteY + 18}" dy="4" fill="#555">p50</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}
