import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests are bounded by work (states, steps), never by the clock: a loaded 2-core machine must not
    // turn a slow test into a failure. CI's own 30-minute limit catches a test that hangs.
    testTimeout: 0,
    hookTimeout: 0,
  },
});
