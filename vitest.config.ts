import { defineConfig } from 'vitest/config';

/**
 * Tests that kill NATS nodes and shard processes of a cluster of their own: they run after the
 * rest, alone, so their load (a 3-node cluster, restarts) does not shift the timing of the
 * end-to-end chaos run beside them.
 */
const CLUSTER_KILLS = ['test/integration/cluster/error-report-durability.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration tests start real nats-server and shard processes; two cores, so keep it modest.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['test/**/*.test.ts'],
          exclude: CLUSTER_KILLS,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: 'cluster-kills', include: CLUSTER_KILLS, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
