/**
 * Loaded into every benchmark target (node --expose-gc --import): SIGWINCH runs a full garbage collection,
 * so that the idle scenario reads RSS after one in each target instead of whenever V8 chose to shrink.
 * SIGWINCH because it is ignored by default and no target uses it (SIGUSR1 starts Node's inspector).
 * The last-resort flavour also gives back the pages V8 keeps for the next allocations (what its memory
 * reducer gives back later on its own): after a plain gc() this server's RSS kept 15–25 MiB of its
 * start-up that it released a minute later, below the baseline the idle scenario had read.
 */
type Gc = (options?: { type: 'major', execution: 'sync', flavor: 'last-resort' }) => void

process.on('SIGWINCH', () => {
  (globalThis as { gc?: Gc }).gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' })
})
