/**
 * Several shard processes share one service on a real nats-server: partitions are split by
 * lease, every shard answers the operator API for the whole service, and when a shard dies
 * (SIGKILL) the others take its partitions over within about the lease's time to live, knowing
 * everything it stored: devices keep their boot history (no false clone alarm) and nonces it
 * accepted are refused as replays.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createOperatorClient } from '../../../services/operator-api/index.js';
import { connectNatsTransport } from '../../../actors/runtime/index.js';
import { REJECT_CODES } from '../../../proto/codec/index.js';
import { useNatsServer } from '../../fixtures/nats.js';
import { ensureDist, useProcesses } from '../../fixtures/processes.js';
import type { TestProcess } from '../../fixtures/processes.js';
import {
  ADMIN_TOKEN,
  attestOk,
  attestRequestBytes,
  bootedDevice,
  createTestTenant,
  endorseAndClaim,
  freshNonce,
  sampleValue,
  sendAttest,
  uniqueSeed,
} from '../../fixtures/shard.js';
import { until } from '../../fixtures/updates.js';

const nats = useNatsServer({ jetstream: true });
const procs = useProcesses();
const LEASE_TTL_MS = 1500;
const DEVICES = 48;

interface RunningShard {
  readonly proc: TestProcess;
  readonly grpc: string;
  readonly metrics: string;
}

async function startShard(name: string, journal: string): Promise<RunningShard> {
  const proc = procs.spawnEntry(
    'services/shard/main.js',
    [
      '--nats',
      nats().url,
      '--admin-token',
      ADMIN_TOKEN,
      '--journal',
      journal,
      '--shard-id',
      name,
      '--lease-ttl-ms',
      String(LEASE_TTL_MS),
    ],
    { name },
  );
  const line = await proc.waitForLine(/^READY /);
  const grpc = /grpc=(\S+)/.exec(line)?.[1] ?? '';
  const metrics = /metrics=(\S+)/.exec(line)?.[1] ?? '';
  return { proc, grpc, metrics };
}

const metricsOf = async (s: RunningShard): Promise<string> => (await fetch(s.metrics)).text();
const owned = async (s: RunningShard, shard: string): Promise<number> =>
  sampleValue(await metricsOf(s), 'sphere_shard_partitions_owned', { shard });

describe('sharding', () => {
  const clients: { close(): void }[] = [];
  afterAll(() => clients.forEach((c) => c.close()));

  it('sharding - two shards split the partitions; a killed one is taken over with its devices, boots and nonces', async () => {
    ensureDist('services/shard/main.js');
    const journal = `sharding-${Date.now().toString(36)}`;
    const a = await startShard('shard-a', journal);
    const b = await startShard('shard-b', journal);
    // The second shard takes its rendezvous share from the first (released, then taken).
    await until(
      async () => [await owned(a, 'shard-a'), await owned(b, 'shard-b')],
      ([x = 0, y = 0]) => x > 0 && y > 0 && x + y === 64,
      20_000,
    );
    const adminA = createOperatorClient(a.grpc, ADMIN_TOKEN);
    const adminB = createOperatorClient(b.grpc, ADMIN_TOKEN);
    clients.push(adminA, adminB);
    const transport = await connectNatsTransport({ servers: nats().url, name: 'sharding-devices' });
    try {
      // Set up through shard A; shard B knows all of it (it applies the same journal).
      const t = await createTestTenant(adminA, 'sharding');
      const devices = Array.from({ length: DEVICES }, (_, i) => bootedDevice(uniqueSeed(`shard-${i}`)));
      await endorseAndClaim(adminA, t.client, devices);
      const tenantOnB = adminB.withToken(t.apiToken);
      clients.push(tenantOnB);
      expect((await tenantOnB.getFleetStats()).claimed).toBe(DEVICES);

      // Every device attests, each on whichever shard owns its partition; both serve some.
      for (const d of devices) await attestOk(transport, d);
      const okOn = async (s: RunningShard) =>
        sampleValue(await metricsOf(s), 'sphere_attestations_total', { result: 'ok', reason: 'OK' });
      expect(await okOn(a)).toBeGreaterThan(0);
      expect(await okOn(b)).toBeGreaterThan(0);
      expect((await okOn(a)) + (await okOn(b))).toBe(DEVICES);

      // A second attestation per device whose request is kept, to be replayed after the kill.
      const replays = [];
      for (const d of devices) {
        const req = attestRequestBytes(d, await freshNonce(transport, d.deviceId));
        const r = await sendAttest(transport, d.deviceId, req.bytes);
        expect(r.ok, d.deviceId).toBe(true);
        replays.push({ d, bytes: req.bytes });
      }
      // Both shards' replicas converge on every device's state, whoever served it.
      await until(
        () => tenantOnB.getFleetStats(),
        (s) => s.devicesByState['ATTESTED'] === DEVICES,
      );

      // Kill B without warning: A takes its partitions once B's leases run out.
      const before = await owned(a, 'shard-a');
      b.proc.kill('SIGKILL');
      const killedAt = performance.now();
      await b.proc.exited;
      await until(
        () => owned(a, 'shard-a'),
        (n) => n === 64,
        20_000,
      );
      const takeoverMs = performance.now() - killedAt;
      expect(before).toBeLessThan(64);
      // ttl + skew + a tick or two; generous for a loaded machine, and far below a "never".
      expect(takeoverMs).toBeLessThan(LEASE_TTL_MS * 8);

      // Nonces B accepted are refused by A: replicated through B's partition logs.
      for (const { d, bytes } of replays) {
        const r = await sendAttest(transport, d.deviceId, bytes);
        expect(r.ok ? 'OK' : r.error.code, d.deviceId).toBe(REJECT_CODES.NONCE_REUSED);
      }
      // Devices attest again on A with the boots B recorded (a lost boot would read as a clone).
      for (const d of devices) await attestOk(transport, d);
      const text = await metricsOf(a);
      expect(sampleValue(text, 'sphere_partition_foreign_writes_total')).toBe(0);
      expect(
        sampleValue(text, 'sphere_attestations_total', { result: 'rejected', reason: 'DUPLICATE_IDENTITY' }),
      ).toBe(0);
      const stats = await t.client.getFleetStats();
      expect(stats.devicesByState['ATTESTED']).toBe(DEVICES);
      expect(stats.attestationsByResult['ok']).toBe(3 * DEVICES);
    } finally {
      await transport.close();
    }
  });
});
