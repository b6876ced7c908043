import type { FastifyInstance } from 'fastify'
import { chatError, type ChatError } from '../core/errors.js'
import type { ModerationRequest, ModerationVerdict } from '../core/config.js'
import type { ModerationHookFailure } from '../core/metrics.js'
import type { ChatUser } from '../realtime/connection.js'
import { withTimeout } from '../../lib/deadline.js'
import { blockedWordsPattern, hasBlockedWord } from '../../lib/blocked-words.js'
import { isStorableText } from '../../lib/input-hygiene.js'

/*
 * Content screening (protocol 11.3): the blockedWords option and the host's moderateMessage hook look at
 * a send or an edit before it is written. Sends are screened in messaging's checkedSend, before the send
 * is queued for the group commit, so a slow hook holds up that send (and, through the sender's turn, the
 * same sender's later sends into that room) but never a batch of other people's sends.
 *
 * What is screened: what users write, including a service's sends "as a named user" (sendAs, which act
 * as that user). Not screened: the server's own sends (user.server: the host's sendSystemMessage and the
 * service API's SYSTEM messages), which are the host's words, not a user's.
 */

/** A refusal that names no word: the list is the host's, and telling it would teach how to dodge it. */
function blockedWordRefusal (): ChatError {
  return chatError('FORBIDDEN', 'content: the message contains a word that is not allowed here', { reason: 'blocked word' })
}

/** A hook that did not answer in time or failed: not a verdict on the content, so worth another try later. */
function moderationUnavailable (): ChatError {
  return chatError('UNAVAILABLE', 'moderation did not answer: the message was not sent, retry later', { reason: 'moderation unavailable' })
}

/** A verdict the suite cannot use (an unknown action, a replacement that cannot be stored): a bug of the host's hook. */
function unusableVerdict (): ChatError {
  return chatError('INTERNAL', 'moderation answered with a verdict that cannot be used: the message was not sent', { reason: 'moderation failed' })
}

/** Stands for the hook's time running out, told apart from what the hook itself throws. */
class HookTimedOut extends Error {}

function isPromiseLike<T> (value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

export interface Screening {
  /**
   * The content to store: `content` as given (already trimmed and within its limits), or the hook's
   * replacement. Throws the refusal. Synchronous unless the hook is asked (and the user is not the server).
   */
  screen (user: ChatUser, roomId: string, content: string, messageId?: string): string | Promise<string>
}

/**
 * The node's screening, or null when neither blockedWords nor moderateMessage is configured: callers
 * then skip it altogether, and the send path pays nothing for it (not even an await).
 */
export function createScreening (app: FastifyInstance): Screening | null {
  const config = app.chatConfig
  const metrics = app.chatMetrics
  const hook = app.chatHooks.moderateMessage
  const pattern = blockedWordsPattern(config.blockedWords)
  if (pattern === null && hook === undefined) return null

  function hookFailed (reason: ModerationHookFailure, request: ModerationRequest, error?: unknown): never {
    metrics.moderationHookFailed(reason)
    // The content stays out of the log: it is the user's, and the hook may have been asked because of it.
    app.log.warn({ err: error, reason, userId: request.userId, roomId: request.roomId }, 'messaging: the moderateMessage hook failed; refusing the message')
    throw reason === 'invalid' ? unusableVerdict() : moderationUnavailable()
  }

  /** The hook's answer, within moderationTimeoutMs (a synchronous hook is answered without a timer). */
  async function verdictOf (moderate: NonNullable<typeof hook>, request: ModerationRequest): Promise<ModerationVerdict> {
    try {
      const answer = moderate(request)
      return isPromiseLike(answer)
        ? await withTimeout(Promise.resolve(answer), config.moderationTimeoutMs, () => new HookTimedOut())
        : answer
    } catch (error) {
      return hookFailed(error instanceof HookTimedOut ? 'timeout' : 'error', request, error)
    }
  }

  /** A replacement stored as a sent message would be: trimmed, not empty, within maxMessageLength, storable. */
  function replacementOf (verdict: ModerationVerdict): string | null {
    if (typeof verdict.content !== 'string') return null
    const trimmed = verdict.content.trim()
    return trimmed.length > 0 && trimmed.length <= config.maxMessageLength && isStorableText(trimmed) ? trimmed : null
  }

  async function moderated (moderate: NonNullable<typeof hook>, request: ModerationRequest): Promise<string> {
    // The hook is the host's code and may answer anything at run time, whatever its declared type says.
    const verdict: Partial<ModerationVerdict> | null | undefined = await verdictOf(moderate, request)
    switch (verdict?.action) {
      case 'allow':
        return request.content
      case 'reject': {
        metrics.messageScreened('reject')
        const reason = typeof verdict.reason === 'string' && verdict.reason.length > 0 ? verdict.reason : 'refused by moderation'
        throw chatError('FORBIDDEN', `the message was refused by moderation: ${reason}`, { reason })
      }
      case 'replace': {
        const replacement = replacementOf(verdict as ModerationVerdict)
        if (replacement === null) return hookFailed('invalid', request)
        metrics.messageScreened('replace')
        return replacement
      }
      default:
        return hookFailed('invalid', request)
    }
  }

  return {
    screen (user, roomId, content, messageId) {
      if (user.server === true) return content
      if (pattern !== null && hasBlockedWord(pattern, content)) {
        metrics.messageScreened('blocked')
        throw blockedWordRefusal()
      }
      if (hook === undefined) return content
      const request: ModerationRequest = { tenant: user.tenant, userId: user.id, roomId, content }
      if (messageId !== undefined) request.messageId = messageId
      return moderated(hook, request)
    },
  }
}
