import type { BrokerHandler } from './types.js'

/** Told what a handler threw, and on which channel (made once per broker, not per delivery). */
export type HandlerErrorSink = (error: unknown, channel: string) => void

/**
 * A channel's handlers, each with its number of registrations: delivered once per payload, removed by as
 * many unsubscribes (two owners of one handler cannot unsubscribe each other). Nearly every channel has
 * one handler (a user's or a room's, on this node), so one is kept in two fields and a Map is made only
 * for a second: a Map per channel, and a closure used as its key, cost about 400 bytes per idle socket.
 */
export class HandlerCounts {
  #one: BrokerHandler | null = null
  #oneCount = 0
  #many: Map<BrokerHandler, number> | null = null

  get size (): number {
    return this.#many !== null ? this.#many.size : this.#one === null ? 0 : 1
  }

  add (handler: BrokerHandler): void {
    if (this.#many !== null) {
      this.#many.set(handler, (this.#many.get(handler) ?? 0) + 1)
    } else if (this.#one === null || this.#one === handler) {
      this.#one = handler
      this.#oneCount += 1
    } else {
      this.#many = new Map([[this.#one, this.#oneCount], [handler, 1]])
      this.#one = null
      this.#oneCount = 0
    }
  }

  /** Removes one registration of the handler; false when it had none. */
  remove (handler: BrokerHandler): boolean {
    if (this.#many !== null) {
      const count = this.#many.get(handler)
      if (count === undefined) return false
      if (count > 1) this.#many.set(handler, count - 1)
      else this.#many.delete(handler)
      return true
    }
    if (this.#one !== handler) return false
    this.#oneCount -= 1
    if (this.#oneCount === 0) this.#one = null
    return true
  }

  /** Runs every handler with the payload; one that throws is reported and does not stop the others. */
  deliver (payload: string, channel: string, onError: HandlerErrorSink): void {
    if (this.#one !== null) {
      run(this.#one, payload, channel, onError)
      return
    }
    if (this.#many !== null) for (const handler of this.#many.keys()) run(handler, payload, channel, onError)
  }
}

function run (handler: BrokerHandler, payload: string, channel: string, onError: HandlerErrorSink): void {
  try {
    handler(payload, channel)
  } catch (error) {
    onError(error, channel)
  }
}
