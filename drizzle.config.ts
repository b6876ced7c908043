import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'postgresql',
  schema: './db/schema/index.ts',
  out: './db/migrations',
  // Only the suite's own schema: drizzle-kit must never plan changes to a host's tables elsewhere.
  schemaFilter: ['chat'],
})
