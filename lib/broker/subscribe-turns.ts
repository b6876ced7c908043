import type { Cluster } from 'ioredis'
import { isCluster, type RedisConnection } from '../redis-connection.js'
import { slotOf } from './slot-batches.js'

/** Channels of one command: Redis answers each channel on its own, so a command stays of bounded size. */
const MAX_CHANNELS_PER_COMMAND = 500

interface Waiter {
  readonly name: string
  readonly resolve: () => void
  readonly reject: (error: unknown) => void
}

/**
 * The upstream SUBSCRIBEs and UNSUBSCRIBEs asked for in one turn of the event loop, sent as one command
 * of each kind: when many sockets start their sessions together (a reconnect storm), each would
 * otherwise send its own SUBSCRIBE of its user's channel and of every room this node did not listen to,
 * and wait for its own round trip. On a cluster an SSUBSCRIBE must name channels of one hash slot, so
 * there it is one command per slot. A lone change waits only until the turn ends (setImmediate).
 *
 * Ordering per channel is the caller's (lib/broker/channel-subscriptions.ts runs one change of a channel
 * at a time), so one turn never holds both a SUBSCRIBE and an UNSUBSCRIBE of the same channel.
 */
export class SubscribeTurns {
  #subscribes: Waiter[] = []
  #unsubscribes: Waiter[] = []
  #scheduled = false

  constructor (private readonly subscriber: RedisConnection, private readonly sharded: boolean) {}

  /** Resolves once Redis has answered the command that carried `name`; rejects when that command failed. */
  change (name: string, subscribe: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      (subscribe ? this.#subscribes : this.#unsubscribes).push({ name, resolve, reject })
      if (this.#scheduled) return
      this.#scheduled = true
      setImmediate(() => {
        this.#scheduled = false
        this.#flush()
      })
    })
  }

  #flush (): void {
    const subscribes = this.#subscribes
    const unsubscribes = this.#unsubscribes
    this.#subscribes = []
    this.#unsubscribes = []
    for (const group of this.#groups(subscribes)) this.#send(group, true)
    for (const group of this.#groups(unsubscribes)) this.#send(group, false)
  }

  /** Waiters grouped into commands: by hash slot on a cluster, at most MAX_CHANNELS_PER_COMMAND each. */
  #groups (waiters: Waiter[]): Waiter[][] {
    if (waiters.length === 0) return []
    const bySlot = isCluster(this.subscriber) ? groupBySlot(this.subscriber, waiters) : [waiters]
    const groups: Waiter[][] = []
    for (const group of bySlot) {
      for (let start = 0; start < group.length; start += MAX_CHANNELS_PER_COMMAND) {
        groups.push(group.slice(start, start + MAX_CHANNELS_PER_COMMAND))
      }
    }
    return groups
  }

  #send (group: Waiter[], subscribe: boolean): void {
    const names = group.map(({ name }) => name)
    const subscriber = this.subscriber
    let sent: Promise<unknown>
    try {
      if (this.sharded) sent = subscribe ? subscriber.ssubscribe(...names) : subscriber.sunsubscribe(...names)
      else sent = subscribe ? subscriber.subscribe(...names) : subscriber.unsubscribe(...names)
    } catch (error) {
      sent = Promise.reject(error)
    }
    sent.then(() => {
      for (const waiter of group) waiter.resolve()
    }, (error: unknown) => {
      for (const waiter of group) waiter.reject(error)
    })
  }
}

function groupBySlot (cluster: Cluster, waiters: Waiter[]): Waiter[][] {
  const bySlot = new Map<number, Waiter[]>()
  for (const waiter of waiters) {
    const slot = slotOf(cluster, waiter.name)
    const group = bySlot.get(slot)
    if (group === undefined) bySlot.set(slot, [waiter])
    else group.push(waiter)
  }
  return [...bySlot.values()]
}
