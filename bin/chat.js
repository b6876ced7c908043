#!/usr/bin/env node
// The published entry point: loads the TypeScript CLI through tsx, so no build step is needed to run it.
import { register } from 'tsx/esm/api'
register()
await import('./chat.ts')
