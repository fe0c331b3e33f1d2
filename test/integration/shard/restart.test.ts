/**
 * The shard keeps the service's state in a JetStream journal. Killed with SIGKILL in the middle of
 * a rollout (waiting between waves) and started again on the same journal, it loses no rollout
 * state and no device outcome: tenants, tokens, devices, groups, images (and the exact TUF
 * metadata devices already trust), the root CA and the simulated clock are all replayed, the wait
 * between waves resumes, and the update agents (which repeat unacknowledged reports) finish the
 * rollout against the new process, still sealing their requests with the sessions the first
 * process opened when they attested (the partition log carries which session is current).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createOperatorClient } from '../../../services/operator-api/index.js';
import type { GetDeploymentResponse } from '../../../proto/gen/sphere/operator/v1/operator.js';
import { connectNatsTransport } from '../../../actors/runtime/index.js';
import { getFreePort, useNatsServer } from '../../fixtures/nats.js';
import { ensureDist, useProcesses } from '../../fixtures/processes.js';
import type { TestProcess } from '../../fixtures/processes.js';
import {
  ADMIN_TOKEN,
  bootedDevice,
  createTestTenant,
  endorseAndClaim,
  uniqueSeed,
} from '../../fixtures/shard.js';
import { FAST_UPDATES, agentSystem, fetchTufMetadata, spawnAgent, until } from '../../fixtures/updates.js';

const nats = useNatsServer({ jetstream: true });
const procs = useProcesses();
const agents = agentSystem();
afterAll(() => agents.stop());

const DEVICES = 30;
const INSTALL_FAILS = new Set([3, 17, 25]);
const FINAL = ['succeeded', 'failed', 'rolled_back'];

type DeviceStates = Map<string, string>;
const statesOf = (r: GetDeploymentResponse): DeviceStates =>
  new Map((r.rollout?.devices ?? []).map((d) => [d.deviceId, d.state]));

describe('shard restart', () => {
  it('shard restart - SIGKILL mid-rollout and restart on the same journal loses no rollout state or device outcome', async () => {
    ensureDist('services/shard/main.js');
    const grpcPort = await getFreePort();
    const tufPort = await getFreePort();
    const start = (): TestProcess =>
      procs.spawnEntry(
        'services/shard/main.js',
        [
          '--nats',
          nats().url,
          '--admin-token',
          ADMIN_TOKEN,
          '--grpc-port',
          String(grpcPort),
          '--tuf-port',
          String(tufPort),
          '--journal',
          'restart-test',
        ],
        { name: 'shard' },
      );
    const first = start();
    await first.waitForLine(/^READY /);
    const admin = createOperatorClient(`127.0.0.1:${grpcPort}`, ADMIN_TOKEN);
    const transport = await connectNatsTransport({ servers: nats().url, name: 'restart-devices' });
    try {
      const infoBefore = await admin.getServiceInfo();
      const t = await createTestTenant(admin, 'restart');
      const devices = Array.from({ length: DEVICES }, (_, i) => bootedDevice(uniqueSeed(`restart-${i}`)));
      await endorseAndClaim(admin, t.client, devices);
      const product = await t.client.createProduct('restart product');
      const groupId = product.deviceGroups.find((g) => g.name === 'Field Test')?.deviceGroupId ?? '';
      await t.client.assignDevices(
        groupId,
        devices.map((d) => d.deviceId),
      );
      const image = await t.client.uploadImage({
        kind: 'app',
        name: 'blinky',
        version: '1.1.0',
        content: randomBytes(50_000),
      });
      const created = await t.client.createDeployment({
        deviceGroupId: groupId,
        imageId: image.image?.imageId ?? '',
        waves: [{ size: { $case: 'count', value: 10 } }, { size: { $case: 'share', value: 1 } }],
        successThreshold: 0.5,
        errorCount: 10,
        // Long enough to kill the shard while the rollout waits between waves.
        pauseBetweenWavesMs: 3_000,
      });
      const deploymentId = created.rollout?.deploymentId ?? '';
      const root = await fetchTufMetadata(`http://127.0.0.1:${tufPort}`, t.tenantId);
      const handles = await Promise.all(
        devices.map((device, i) =>
          spawnAgent({
            system: agents.system,
            device,
            root,
            transport,
            fault: INSTALL_FAILS.has(i) ? 'installFails' : null,
            // Devices of wave 2 learn of their offer at their next periodic check.
            behaviour: { ...FAST_UPDATES, checkEveryMs: 200 },
          }),
        ),
      );
      for (const h of handles) h.agent.tell({ type: 'agent.device-attested' });

      // Wave 1 done, waiting for wave 2: kill the shard without warning.
      const before = await until(
        () => t.client.getDeployment(deploymentId, true),
        (r) => r.rollout?.state === 'waiting',
      );
      expect(before.rollout?.state).toBe('waiting');
      first.kill('SIGKILL');
      await first.exited;

      const second = start();
      await second.waitForLine(/^READY /);
      expect(second.output().join('\n')).toMatch(/replayed \d+ journal records/);

      // Everything the first process knew is back, with the same identity and clock.
      const infoAfter = await admin.getServiceInfo();
      expect(infoAfter.rootCaPem).toBe(infoBefore.rootCaPem);
      expect(infoAfter.anchorSimMs).toBe(infoBefore.anchorSimMs);
      // A restarted process never re-issues an identifier (nor a nonce) an earlier one issued.
      const other = await admin.createTenant('after-restart');
      expect(other.tenantId).not.toBe(t.tenantId);
      const replayed = await t.client.getDeployment(deploymentId, true);
      const was = statesOf(before);
      const now = statesOf(replayed);
      for (const [deviceId, state] of was) {
        // Final outcomes are exactly as they were; devices in flight may only have moved on.
        if (FINAL.includes(state)) expect(now.get(deviceId), deviceId).toBe(state);
      }
      expect(replayed.rollout?.currentWave).toBeGreaterThanOrEqual(before.rollout?.currentWave ?? 0);
      expect(replayed.rollout?.failures).toBeGreaterThanOrEqual(before.rollout?.failures ?? 0);

      // The wait resumes, wave 2 opens, and the agents finish the rollout on the new process.
      const done = await until(
        () => t.client.getDeployment(deploymentId, true),
        (r) => r.rollout?.state === 'completed' && [...statesOf(r).values()].every((s) => FINAL.includes(s)),
      );
      expect(done.rollout?.state).toBe('completed');
      const final = statesOf(done);
      devices.forEach((d, i) => {
        expect(final.get(d.deviceId), `device ${i}`).toBe(INSTALL_FAILS.has(i) ? 'failed' : 'succeeded');
      });
      // No device saw the replayed TUF metadata as a rollback or anything else wrong.
      const refusals = handles.flatMap((h) =>
        h.events.filter((e) => e.kind === 'report' && e.code.startsWith('TUF_')),
      );
      expect(refusals).toEqual([]);
    } finally {
      admin.close();
      await transport.close();
    }
  });
});
