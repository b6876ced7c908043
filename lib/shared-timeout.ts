/**
 * One timer for many commands: a command races the current window's timeout, and a window is shared by
 * every command that starts while it still has at least 90% of the bound left. A busy connection then
 * arms a timer every tenth of the bound instead of one per command, and each command still fails within
 * the bound (and not before 90% of it) when nothing answers.
 */
export class SharedTimeout {
  #expires = 0
  #timeout: Promise<never> | null = null

  constructor (private readonly ms: number, private readonly error: () => Error) {}

  race<T> (command: Promise<T>): Promise<T> {
    return Promise.race([command, this.#current()])
  }

  #current (): Promise<never> {
    const now = performance.now()
    if (this.#timeout === null || this.#expires - now < this.ms * 0.9) {
      this.#expires = now + this.ms
      this.#timeout = new Promise<never>((_resolve, reject) => {
        // Unref'd: a window left over from the last command must not keep the process alive.
        setTimeout(() => reject(this.error()), this.ms).unref()
      })
      // Rejected when its window ends whether or not a command still races it.
      this.#timeout.catch(() => {})
    }
    return this.#timeout
  }
}
