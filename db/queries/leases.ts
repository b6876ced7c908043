import { sql } from 'drizzle-orm'
import { rows, type ChatDb } from '../client.js'

/**
 * A named lease (the feed's relay, the retention job): one row in chat.feed_lease (the table of every
 * lease, named for its first user), taken or renewed by one statement on the database's clock, so that
 * one node at a time does a job. Returns whether `holder` holds it now.
 */
export async function takeLease (db: ChatDb, name: string, holder: string, leaseMs: number): Promise<boolean> {
  const result = rows<{ holder: string }>(await db.execute(sql`
    insert into chat.feed_lease (name, holder, expires_at)
    values (${name}, ${holder}, now() + make_interval(secs => ${leaseMs / 1000}))
    on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at
    where chat.feed_lease.expires_at < now() or chat.feed_lease.holder = ${holder}
    returning holder`))
  return result[0]?.holder === holder
}

/** Gives the lease up at once (a clean shutdown), so a successor takes over without waiting it out. */
export async function releaseLease (db: ChatDb, name: string, holder: string): Promise<void> {
  await db.execute(sql`update chat.feed_lease set expires_at = now() where name = ${name} and holder = ${holder}`)
}
