/**
 * The event feed's lag under load (`npm run bench -- --feed`): while a scenario runs against a chat
 * target with the feed on, samples its database every 200 ms for how far the Redis Stream sink is
 * behind the sends, and after the load how long it takes to catch up.
 */
import postgres from 'postgres'
import { percentile, round } from './lib.js'

export interface FeedLag {
  samples: number
  /** Age of the oldest event not yet confirmed by the sink (staged or moved), over the samples. */
  ageP50Ms: number
  ageP99Ms: number
  ageMaxMs: number
  /** Entries not yet confirmed by the sink (staged plus moved), at most. */
  behindMax: number
  /** From the end of the load until the sink had every entry. */
  drainMs: number
  /** Entries the sink confirmed in all. */
  delivered: number
}

const SAMPLE_MS = 200
const SINK = 'redis-stream'

export class FeedLagSampler {
  private readonly sql: postgres.Sql
  private readonly ages: number[] = []
  private behindMax = 0
  private timer: NodeJS.Timeout | undefined
  private pending: Promise<void> = Promise.resolve()

  constructor (databaseUrl: string) {
    this.sql = postgres(databaseUrl, { max: 1, onnotice: () => {} })
  }

  start (): void {
    this.timer = setInterval(() => { this.pending = this.sample().catch(() => {}) }, SAMPLE_MS)
  }

  /** Stops sampling, waits until the sink holds every entry (up to `timeoutMs`), and reports. */
  async finish (timeoutMs = 30_000): Promise<FeedLag> {
    clearInterval(this.timer)
    await this.pending
    const ended = performance.now()
    let state = await this.read()
    while (state.behind > 0 && performance.now() - ended < timeoutMs) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      state = await this.read()
    }
    const drainMs = state.behind > 0 ? Number.NaN : performance.now() - ended
    await this.sql.end({ timeout: 5 })
    const sorted = [...this.ages].sort((a, b) => a - b)
    return {
      samples: sorted.length,
      ageP50Ms: round(percentile(sorted, 50), 0),
      ageP99Ms: round(percentile(sorted, 99), 0),
      ageMaxMs: round(sorted[sorted.length - 1] ?? 0, 0),
      behindMax: this.behindMax,
      drainMs: round(drainMs, 0),
      delivered: state.position,
    }
  }

  private async sample (): Promise<void> {
    const { behind, ageMs } = await this.read()
    this.ages.push(ageMs)
    this.behindMax = Math.max(this.behindMax, behind)
  }

  private async read (): Promise<{ behind: number, ageMs: number, position: number }> {
    const [row] = await this.sql<Array<{ staged: number, newest: number, position: number, age_ms: number }>>`
      with p as (select coalesce((select position from chat.feed_positions where sink = ${SINK}), 0) as position)
      select (select count(*)::int from chat.feed_outbox) as staged,
        (select coalesce(max(id), 0)::int from chat.feed) as newest,
        (select position::int from p) as position,
        coalesce(extract(epoch from now() - least(
          (select min(occurred_at) from chat.feed_outbox),
          (select f.occurred_at from chat.feed f, p where f.id = p.position + 1)
        )) * 1000, 0)::float8 as age_ms`
    const staged = row?.staged ?? 0
    const position = row?.position ?? 0
    return { behind: staged + Math.max(0, (row?.newest ?? 0) - position), ageMs: Math.max(0, row?.age_ms ?? 0), position }
  }
}
