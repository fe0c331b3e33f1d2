/**
 * Device update agents against a live shard over real NATS: update checks, chunked downloads
 * (resumable after a power loss), verification by the security core against the tenant's TUF
 * metadata, install / reboot / health check with device faults, acknowledged reports, and the
 * rollout and metrics that result.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { UpdateFault } from '../../../actors/update-agent/index.js';
import {
  decodeChunkReply,
  deviceSubject,
  encodeChunkRequest,
  parseDeploymentId,
  partitionOf,
} from '../../../proto/codec/index.js';
import {
  PARTITIONS,
  bootedDevice,
  createTestTenant,
  endorseAndClaim,
  sampleValue,
  uniqueSeed,
  useShard,
} from '../../fixtures/shard.js';
import type { TestDevice, TestTenant } from '../../fixtures/shard.js';
import { FAST_UPDATES, agentSystem, fetchTufMetadata, spawnAgent, until } from '../../fixtures/updates.js';

const env = useShard({ seed: 'update-agents' });
const agents = agentSystem();
afterAll(() => agents.stop());

const IMAGE_BYTES = 200 * 1024 + 123;

async function groupWith(t: TestTenant, label: string, devices: readonly TestDevice[]): Promise<string> {
  const product = await t.client.createProduct(`${label} product`);
  const group = product.deviceGroups.find((g) => g.name === 'Field Test');
  if (group === undefined) throw new Error('no Field Test group');
  await t.client.assignDevices(
    group.deviceGroupId,
    devices.map((d) => d.deviceId),
  );
  return group.deviceGroupId;
}

describe('update agents', () => {
  it('update agents - download, verify, install and report; faults end failed or rolled back; resumes after power loss', async () => {
    const { admin, shard, devices: transport } = env();
    const t = await createTestTenant(admin, 'agents-happy');
    const faults: (UpdateFault | 'defective' | null)[] = [
      null,
      'installFails',
      'bootLoop',
      'defective',
      'slowLink',
      'powerLossMidDownload',
    ];
    const devices = faults.map((_, i) => bootedDevice(uniqueSeed(`agent-${i}`)));
    await endorseAndClaim(admin, t.client, devices);
    const groupId = await groupWith(t, 'agents-happy', devices);
    const content = randomBytes(IMAGE_BYTES);
    const image = await t.client.uploadImage({ kind: 'app', name: 'blinky', version: '1.1.0', content });
    const created = await t.client.createDeployment({
      deviceGroupId: groupId,
      imageId: image.image?.imageId ?? '',
      waves: [{ size: { $case: 'share', value: 1 } }],
      successThreshold: 0,
      errorCount: 100,
    });
    const deploymentId = created.rollout?.deploymentId ?? '';
    const root = await fetchTufMetadata(shard.tufUrl, t.tenantId);
    const before = sampleValue(await shard.meter.metricsText(), 'sphere_update_bytes_served_total');

    const handles = devices.map((device, i) => {
      const f = faults[i] ?? null;
      return spawnAgent({
        system: agents.system,
        device,
        root,
        transport,
        fault: f === 'defective' ? null : f,
        defective: () => f === 'defective',
      });
    });
    for (const h of handles) h.agent.tell({ type: 'agent.device-attested' });

    const done = await until(
      () => t.client.getDeployment(deploymentId, true),
      (r) =>
        (r.rollout?.devices ?? []).every((d) => ['succeeded', 'failed', 'rolled_back'].includes(d.state)),
    );
    const stateOf = (d: TestDevice) => done.rollout?.devices.find((x) => x.deviceId === d.deviceId)?.state;
    expect(devices.map(stateOf)).toEqual([
      'succeeded',
      'failed',
      // A device that reverted by itself (bad boot, failed health check) failed the install;
      // `rolled_back` is for devices the service ordered back.
      'failed',
      'failed',
      'succeeded',
      'succeeded',
    ]);
    // Every report was acknowledged, with the agent's reason codes.
    const reported = (i: number) =>
      handles[i]?.events.flatMap((e) => (e.kind === 'report' && e.acked ? [`${e.outcome}:${e.code}`] : []));
    expect(reported(1)).toContain('failed:INSTALL_FAILED');
    expect(reported(2)).toContain('rolled-back:BOOT_FAILED');
    expect(reported(3)).toContain('rolled-back:HEALTH_CHECK_FAILED');
    // The power-loss device went dark once and resumed where it stopped: at most the chunk in
    // flight when the power failed was served twice (a restart from zero would add ~100 KiB).
    expect(handles[5]?.power).toEqual(['device.power-off', 'device.power-on']);
    const text = await shard.meter.metricsText();
    const served = sampleValue(text, 'sphere_update_bytes_served_total') - before;
    expect(served).toBeGreaterThanOrEqual(devices.length * IMAGE_BYTES);
    expect(served).toBeLessThanOrEqual(devices.length * IMAGE_BYTES + FAST_UPDATES.chunkBytes);
    expect(
      sampleValue(text, 'sphere_update_installs_total', { result: 'succeeded', kind: 'app' }),
    ).toBeGreaterThanOrEqual(3);

    // The next check reports what runs now; the version mix follows.
    for (const h of handles) h.agent.tell({ type: 'update.check-due' });
    await until(
      async () =>
        sampleValue(await shard.meter.metricsText(), 'sphere_devices_by_app_version', {
          app: 'blinky',
          version: '1.1.0',
        }),
      (n) => n === 3,
      500,
    );
    const mix = await shard.meter.metricsText();
    expect(sampleValue(mix, 'sphere_devices_by_app_version', { app: 'blinky', version: '1.1.0' })).toBe(3);
  });

  it('update agents - a device outside the group is refused chunks (NOT_OFFERED) and gets no offer', async () => {
    const { admin, shard, devices: transport } = env();
    const t = await createTestTenant(admin, 'agents-outsider');
    const [member, outsider] = [bootedDevice(uniqueSeed('member')), bootedDevice(uniqueSeed('outsider'))];
    if (member === undefined || outsider === undefined) throw new Error('no devices');
    await endorseAndClaim(admin, t.client, [member, outsider]);
    const groupId = await groupWith(t, 'agents-outsider', [member]);
    const image = await t.client.uploadImage({
      kind: 'app',
      name: 'blinky',
      version: '1.1.0',
      content: randomBytes(1000),
    });
    const created = await t.client.createDeployment({
      deviceGroupId: groupId,
      imageId: image.image?.imageId ?? '',
      waves: [{ size: { $case: 'share', value: 1 } }],
      errorCount: 1,
    });
    const deploymentId = parseDeploymentId(created.rollout?.deploymentId ?? '');
    if (deploymentId === null) throw new Error('no deployment');
    const root = await fetchTufMetadata(shard.tufUrl, t.tenantId);
    const h = spawnAgent({ system: agents.system, device: outsider, root, transport });
    h.agent.tell({ type: 'agent.device-attested' });
    const events = await until(
      () => h.events,
      (e) => e.some((x) => x.kind === 'check'),
    );
    expect(events.find((x) => x.kind === 'check')).toMatchObject({ ok: true, offers: 0 });
    const reply = decodeChunkReply(
      await transport.request(
        deviceSubject('update-chunk', partitionOf(outsider.deviceId, PARTITIONS)),
        encodeChunkRequest({ deviceId: outsider.deviceId, deploymentId, offset: 0, length: 100 }),
        { timeoutMs: 5000 },
      ),
    );
    expect(reply).toMatchObject({ ok: true, value: { ok: false, error: { code: 'NOT_OFFERED' } } });
  });
});
