/**
 * Loaded into every benchmark target (node --expose-gc --import): SIGWINCH runs a full garbage collection,
 * so that the idle scenario reads RSS after one in each target instead of whenever V8 chose to shrink.
 * SIGWINCH because it is ignored by default and no target uses it (SIGUSR1 starts Node's inspector).
 */
process.on('SIGWINCH', () => {
  (globalThis as { gc?: () => void }).gc?.()
})
