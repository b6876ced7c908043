/** The coordinator's side of the client processes: forks one per node and asks them things over IPC. */
import { fork, type ChildProcess } from 'node:child_process'
import { ROOT } from '../lib.js'
import type { ClientInit, Command, Counters, Reply } from './messages.js'

type Ask = Command extends infer C ? C extends { seq: number } ? Omit<C, 'seq'> : never : never

export class ClientProcess {
  private seq = 0
  private readonly waiting = new Map<number, { resolve: (reply: Reply) => void, reject: (error: Error) => void }>()

  private constructor (readonly child: ChildProcess) {
    child.on('message', (reply: Reply) => {
      const waiter = this.waiting.get(reply.seq)
      this.waiting.delete(reply.seq)
      if (reply.type === 'failed') waiter?.reject(new Error(reply.error))
      else waiter?.resolve(reply)
    })
    child.once('exit', (code) => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error(`client process exited with ${String(code)}`))
      this.waiting.clear()
    })
  }

  static start (init: ClientInit): ClientProcess {
    const child = fork('bench/scaling/client.ts', [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, SCALE_CLIENT: JSON.stringify(init) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    return new ClientProcess(child)
  }

  ask (command: Ask): Promise<Reply> {
    const seq = ++this.seq
    return new Promise((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject })
      this.child.send({ ...command, seq } as Command)
    })
  }

  async counters (): Promise<Counters> {
    const reply = await this.ask({ type: 'mark' })
    if (reply.type !== 'mark') throw new Error(`expected counters, got ${reply.type}`)
    return reply.counters
  }

  async stop (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    await Promise.race([this.ask({ type: 'close' }).catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 5000))])
    this.child.disconnect()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}
