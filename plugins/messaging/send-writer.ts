import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { messages, type Attachment, type MessageType } from '../../db/schema/index.js'
import { executePrepared, rows as rowsOf, type ChatDb } from '../../db/client.js'
import { chatError, refusals } from '../core/errors.js'
import { GroupCommit } from '../../lib/group-commit.js'
import { withDeadline, type Deadline } from '../../lib/deadline.js'
import { sendBatchStatement, type SendBatchResult, type SendBatchRow } from '../../db/queries/send-batch.js'
import { excerptOf, hydrate, messagesByIds, toMessage, type MessageRow } from '../../db/queries/message-reader.js'
import type { Message } from '../../schemas/messaging.js'
import type { Connection } from '../realtime/connection.js'
import type { RoomPush } from '../realtime/hub.js'

/** Group-commit batches written at once (each holds one pooled connection while it runs). */
const BATCHES_IN_FLIGHT = 2
/** Runs of a send batch's statement before its error is its senders' answer (see isRetryable). */
const STATEMENT_ATTEMPTS = 3

/**
 * A batch that broke the clientMsgId index (a retry whose original committed meanwhile) or lost a
 * deadlock or serialization check wrote nothing and can run again as it is.
 */
function isRetryable (error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code ?? (error as { cause?: { code?: unknown } } | null)?.cause?.code
  return code === '23505' || code === '40P01' || code === '40001'
}

export interface SendJob {
  roomId: string
  sender: { id: string, name: string | null, avatar: string | null }
  type: MessageType
  content: string
  attachments: Attachment[]
  replyToId: string | null
  clientMsgId: string | null
  /** As asked (deduplicated); the statement keeps those who are members of the room, and `*`. */
  mentions: string[]
  /** A thread reply's root (a top-level message of the room), or null. */
  threadRootId: string | null
  /** Sent as the server (the host's code): no membership row is asked for. */
  asServer: boolean
  /** The sending socket: it gets the ack, not the push (none for REST and the host's sends). */
  except: Connection | null
}

export interface SendOutcome {
  message: Message
  /** A retry of a clientMsgId already stored: nothing was written and nothing is broadcast. */
  duplicate: boolean
  /** The push of the message this send wrote; null for a duplicate. */
  push: RoomPush | null
  /** JSON.stringify(message), when this send wrote it. */
  messageJson?: string
}

function tripleKey (roomId: string, senderId: string, clientMsgId: string): string {
  return `${roomId}\u0000${senderId}\u0000${clientMsgId}`
}

export type SendWriter = GroupCommit<SendJob, SendOutcome>

/**
 * The send path's writer: sends queued by the messaging service are written in group-commit batches,
 * one statement per batch, and each committed batch is handed to the broker once. Drained on close.
 */
export function createSendWriter (app: FastifyInstance): SendWriter {
  const db = app.chatDb
  const config = app.chatConfig
  const hub = app.chatHub

  /**
   * Writes one batch of sends as one statement, a transaction of its own (see send-batch.ts): one round
   * trip per batch, none per message. A retry whose original another batch committed while this one ran
   * breaks the clientMsgId index and rolls back: the batch runs again and then sees the original.
   */
  async function flushSends (jobs: SendJob[], deadline: Deadline, release: () => void): Promise<Array<SendOutcome | Error>> {
    const createdAt = new Date()
    const createdAtIso = createdAt.toISOString()
    const batch: SendBatchRow[] = []
    // A clientMsgId sent twice in one batch is written once: the second copy is answered with the first.
    const copyOf = new Map<number, number>()
    const firstOfKey = new Map<string, number>()
    jobs.forEach((job, i) => {
      if (job.clientMsgId !== null) {
        const key = tripleKey(job.roomId, job.sender.id, job.clientMsgId)
        const first = firstOfKey.get(key)
        if (first !== undefined) {
          copyOf.set(i, first)
          return
        }
        firstOfKey.set(key, i)
      }
      batch.push({
        i,
        id: randomUUID(),
        roomId: job.roomId,
        senderId: job.sender.id,
        type: job.type,
        content: job.content,
        replyToId: job.replyToId,
        attachments: job.attachments,
        clientMsgId: job.clientMsgId,
        mentions: job.mentions,
        threadRootId: job.threadRootId,
        asServer: job.asServer,
      })
    })
    // Past the deadline its senders are told UNAVAILABLE: the statement then refuses to write (send-batch.ts).
    const statement = sendBatchStatement(batch, createdAtIso, config.eventRetention, new Date(deadline.at).toISOString(), config.feed !== false)
    let answers: SendBatchResult[] | undefined
    for (let attempt = 1; answers === undefined; attempt += 1) {
      try {
        answers = rowsOf<SendBatchResult>(await executePrepared(db, 'send batch', statement))
      } catch (error) {
        if (attempt >= STATEMENT_ATTEMPTS || !isRetryable(error) || deadline.expired) throw error
      }
    }

    // The database is done with this batch: the next one is sent before these results become replies.
    release()
    const results: Array<SendOutcome | Error | undefined> = new Array(jobs.length)
    const retried: number[] = []
    const byIndex = new Map(answers.map((answer) => [answer.i, answer]))
    for (const row of batch) {
      const answer = byIndex.get(row.i) as SendBatchResult
      const job = jobs[row.i] as SendJob
      if (job.replyToId !== null && answer.reply_room_id !== job.roomId) {
        results[row.i] = chatError('NOT_FOUND', 'replyToId: no such message in this room', [{ field: 'replyToId', message: 'not found in this room' }])
        continue
      }
      if (job.threadRootId !== null && (answer.root_room_id !== job.roomId || answer.root_top !== true)) {
        results[row.i] = chatError('NOT_FOUND', 'threadRootId: no such top-level message in this room', [{ field: 'threadRootId', message: 'not a top-level message of this room' }])
        continue
      }
      if (answer.seq === null) {
        if (answer.room_exists === false) results[row.i] = refusals.roomNotFound()
        // The database's answer, whatever this node's cache said (a kick on another node, Redis down).
        else if (answer.not_member) results[row.i] = refusals.notMember()
        else retried.push(row.i)
        continue
      }
      const seq = Number(answer.seq)
      const replyTo = answer.reply_room_id === null
        ? null
        : { id: job.replyToId as string, seq: Number(answer.reply_seq), senderId: answer.reply_sender_id as string, excerpt: excerptOf({ content: answer.reply_content ?? '', deletedAt: answer.reply_deleted === true ? createdAt : null }) }
      const record: MessageRow = {
        id: row.id,
        roomId: row.roomId,
        seq,
        senderId: row.senderId,
        type: row.type,
        content: row.content,
        replyToId: row.replyToId,
        threadRootId: job.threadRootId,
        attachments: row.attachments,
        clientMsgId: row.clientMsgId,
        mentions: answer.mentions ?? [],
        editedAt: null,
        deletedAt: null,
        createdAt,
      }
      const message = toMessage(record, job.sender, replyTo, [])
      // The message is serialized once: the push frame and the ack embed this text (its row is the log entry).
      const messageJson = JSON.stringify(message)
      const dataJson = `{"roomId":${JSON.stringify(row.roomId)},"seq":${seq},"message":${messageJson}}`
      const push: RoomPush = { roomId: row.roomId, seq, frame: `{"event":"message.new","data":${dataJson}}`, except: job.except }
      results[row.i] = { message, duplicate: false, push, messageJson }
    }
    if (retried.length > 0) {
      // Retries of a clientMsgId stored earlier: rare, so the originals are read (committed) only now.
      const originals = await existingRetries(db, retried.map((i) => jobs[i] as SendJob))
      for (const i of retried) {
        const job = jobs[i] as SendJob
        const original = originals.get(tripleKey(job.roomId, job.sender.id, job.clientMsgId as string))
        results[i] = original === undefined
          ? chatError('INTERNAL', 'a send was neither written nor found as a retry')
          : { message: original, duplicate: true, push: null }
      }
    }
    for (const [i, first] of copyOf) {
      const original = results[first] as SendOutcome | Error
      results[i] = original instanceof Error ? original : { message: original.message, duplicate: true, push: null }
    }
    return results as Array<SendOutcome | Error>
  }

  /** The stored originals of retried sends (same room, sender and clientMsgId), by their key. */
  async function existingRetries (reader: ChatDb, retries: SendJob[]): Promise<Map<string, Message>> {
    const keys = retries.map((job) => ({ room_id: job.roomId, sender_id: job.sender.id, client_msg_id: job.clientMsgId }))
    const matches = rowsOf<{ id: string }>(await reader.execute(sql`select m.id from ${messages} m
      join json_to_recordset(${JSON.stringify(keys)}::text::json) as k(room_id uuid, sender_id text, client_msg_id text)
        on m.room_id = k.room_id and m.sender_id = k.sender_id and m.client_msg_id = k.client_msg_id`))
    const originals = await messagesByIds(reader, matches.map((match) => match.id))
    const hydrated = await hydrate(reader, originals)
    return new Map(originals.map((row, index) => [tripleKey(row.roomId, row.senderId, row.clientMsgId as string), hydrated[index] as Message]))
  }
  const metrics = app.chatMetrics
  const searchIndexer = app.chatSearchIndexer
  const writer = new GroupCommit<SendJob, SendOutcome>({
    flush: async (jobs, release) => {
      // A batch that hangs (a lost query, a database behind a partition) would hold its in-flight slot for ever.
      const results = await withDeadline(config.databaseTimeoutMs, 'a send batch', (deadline) => flushSends(jobs, deadline, release))
      const pushes: RoomPush[] = []
      for (const result of results) if (!(result instanceof Error) && result.push !== null) pushes.push(result.push)
      metrics.messagePersisted(pushes.length)
      // Committed: one broker command for the whole batch, and this node's sockets (not the senders'),
      // before any sender is answered. The acks do not wait for the broker: a node that misses a push
      // reads it back from the database.
      void hub.publishRoomEvents(pushes)
      // The batch's trigger queued its messages for search: one wake per batch, not per message.
      if (pushes.length > 0) searchIndexer.wake()
      return results
    },
    // A room's sends are written in the order they were queued: a batch never overtakes one in flight
    // that holds the same room (it would race it for the room's lock, and could take the lower seqs).
    keyOf: (job) => job.roomId,
    maxBatch: config.groupCommit.maxBatch,
    maxWaitMs: config.groupCommit.maxWaitMs,
    // Two batches at once: one's round trips and commit overlap the next one's. Safe because every
    // batch locks its rooms in id order before reading seqs or retries (see flushSends).
    maxInFlight: BATCHES_IN_FLIGHT,
    onBatch: (size, ms) => metrics.groupCommitBatch(size, ms),
  })
  // Sockets are closed in preClose too; whatever they queued is still written before the database closes.
  app.addHook('preClose', async () => { await writer.drain() })
  return writer
}
