import { defineConfig } from 'vitest/config';

// Tests start real servers and child processes: run files in forked workers, with generous
// timeouts for process start-up on a 2-core machine.
export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
