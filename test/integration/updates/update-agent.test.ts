/**
 * Device update agents against a live shard over real NATS: update checks, chunked downloads
 * (resumable after a power loss), verification by the security core against the tenant's TUF
 * metadata, install / reboot / health check with device faults, acknowledged reports, and the
 * rollout and metrics that result.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { InstalledImage, UpdateFault } from '../../../actors/update-agent/index.js';
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
import {
  FAST_UPDATES,
  agentSystem,
  fetchTufMetadata,
  finalReportsAcked,
  spawnAgent,
  until,
} from '../../fixtures/updates.js';

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

/** Uploads OS 25.04 and deploys it to `groupId` in one wave; returns the deployment ID. */
async function deployOs2504(
  t: TestTenant,
  groupId: string,
  bytes: number,
  limits: { successThreshold?: number; errorCount: number },
): Promise<string> {
  const image = await t.client.uploadImage({
    kind: 'os',
    name: 'azure-sphere-os',
    version: '25.04',
    securityVersion: 4,
    content: randomBytes(bytes),
  });
  const created = await t.client.createDeployment({
    deviceGroupId: groupId,
    imageId: image.image?.imageId ?? '',
    waves: [{ size: { $case: 'share', value: 1 } }],
    ...limits,
  });
  return created.rollout?.deploymentId ?? '';
}

/** What a device runs before an OS update: `os` and blinky 1.0.0. */
const running = (os: { version: string; securityVersion: number }): InstalledImage[] => [
  { kind: 'os', name: 'azure-sphere-os', ...os },
  { kind: 'app', name: 'blinky', version: '1.0.0', securityVersion: 1 },
];
const OS_2410 = { version: '24.10', securityVersion: 3 };

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

    const handles = await Promise.all(
      devices.map((device, i) => {
        const f = faults[i] ?? null;
        return spawnAgent({
          system: agents.system,
          device,
          root,
          transport,
          fault: f === 'defective' ? null : f,
          defective: () => f === 'defective',
        });
      }),
    );
    for (const h of handles) h.agent.tell({ type: 'agent.device-attested' });

    const done = await until(
      () => t.client.getDeployment(deploymentId, true),
      (r) =>
        (r.rollout?.devices ?? []).every((d) => ['succeeded', 'failed', 'rolled_back'].includes(d.state)),
    );
    await finalReportsAcked(handles);
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
    expect(handles[5]?.power.filter((m) => m.startsWith('device.power'))).toEqual([
      'device.power-off',
      'device.power-on',
    ]);
    // Committed apps are written to flash (measured from the next boot); nothing else was.
    expect(handles.map((h) => h.power.filter((m) => m === 'device.firmware-installed').length)).toEqual([
      1, 0, 0, 0, 1, 1,
    ]);
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

  it('update agents - an OS rollout reboots devices into the new OS, falls back on bad boots and failed health, and the OS version mix follows', async () => {
    const { admin, shard, devices: transport } = env();
    const t = await createTestTenant(admin, 'agents-os');
    // 24.10 → 25.04: versions no other test here attests with, so the gauges are this test's.
    const cases: (UpdateFault | 'defective' | 'current' | null)[] = [
      null,
      null,
      'bootLoop',
      'defective',
      'current',
    ];
    const devices = cases.map((_, i) => bootedDevice(uniqueSeed(`agent-os-${i}`)));
    await endorseAndClaim(admin, t.client, devices);
    const groupId = await groupWith(t, 'agents-os', devices);
    const deploymentId = await deployOs2504(t, groupId, 40_000, { successThreshold: 0, errorCount: 100 });
    const root = await fetchTufMetadata(shard.tufUrl, t.tenantId);
    const handles = await Promise.all(
      devices.map((device, i) => {
        const c = cases[i] ?? null;
        return spawnAgent({
          system: agents.system,
          device,
          root,
          transport,
          fault: c === 'bootLoop' ? c : null,
          defective: () => c === 'defective',
          installed: running(c === 'current' ? { version: '25.04', securityVersion: 4 } : OS_2410),
          attesting: true,
        });
      }),
    );
    // Real devices: they boot, attest with their OS, and their agents check after attesting.
    for (const h of handles) h.start();

    const done = await until(
      () => t.client.getDeployment(deploymentId, true),
      (r) =>
        (r.rollout?.devices ?? []).every((d) => ['succeeded', 'failed', 'rolled_back'].includes(d.state)),
    );
    await finalReportsAcked(handles);
    const stateOf = (d: TestDevice) => done.rollout?.devices.find((x) => x.deviceId === d.deviceId)?.state;
    expect(devices.map(stateOf)).toEqual(['succeeded', 'succeeded', 'failed', 'failed', 'succeeded']);
    const acked = (i: number) =>
      handles[i]?.events.flatMap((e) => (e.kind === 'report' && e.acked ? [`${e.outcome}:${e.code}`] : []));
    expect(acked(2)).toContain('rolled-back:BOOT_FAILED');
    expect(acked(3)).toContain('rolled-back:HEALTH_CHECK_FAILED');
    expect(acked(4)).toEqual(['succeeded:ALREADY_INSTALLED']);
    // The service saw each device attest with what it runs now: 3 on 25.04, 2 back on 24.10.
    const mix = await until(
      async () => {
        const text = await shard.meter.metricsText();
        return [
          sampleValue(text, 'sphere_devices_by_os_version', { os_version: '25.04' }),
          sampleValue(text, 'sphere_devices_by_os_version', { os_version: '24.10' }),
        ];
      },
      ([newer, older]) => newer === 3 && older === 2,
      1000,
    );
    expect(mix).toEqual([3, 2]);
    // (After the fallback devices attested again.) What each agent did to its device: a reboot into the new OS (written first); the bad boot
    // came back up on the old slot; the unhealthy OS was rebooted out of (old OS written back).
    const writesAndPower = (i: number) => handles[i]?.power;
    expect(writesAndPower(0)).toEqual(['device.firmware-installed', 'device.power-off', 'device.power-on']);
    expect(writesAndPower(2)).toEqual(['device.power-off', 'device.power-on']);
    expect(writesAndPower(3)).toEqual([
      'device.firmware-installed',
      'device.power-off',
      'device.power-on',
      'device.firmware-installed',
      'device.power-off',
      'device.power-on',
    ]);
    expect(writesAndPower(4)).toEqual([]);
  });

  it('update agents - an application postpones an OS update; the agent installs it when the deferral ends', async () => {
    const { admin, shard, devices: transport } = env();
    const t = await createTestTenant(admin, 'agents-defer');
    const device = bootedDevice(uniqueSeed('agent-defer'));
    await endorseAndClaim(admin, t.client, [device]);
    const groupId = await groupWith(t, 'agents-defer', [device]);
    const deploymentId = await deployOs2504(t, groupId, 20_000, { errorCount: 1 });
    // Its own clock, moved by hand: 4 simulated minutes (within the shard's clock skew limit).
    const own = agentSystem();
    try {
      const h = await spawnAgent({
        system: own.system,
        device,
        root: await fetchTufMetadata(shard.tufUrl, t.tenantId),
        transport,
        installed: running(OS_2410),
        attesting: true,
        deferOsMs: 240_000,
      });
      h.start();
      await until(
        () => h.events,
        (e) => e.some((x) => x.kind === 'os-deferred'),
      );
      expect(h.events.find((e) => e.kind === 'os-deferred')).toEqual({
        kind: 'os-deferred',
        offerId: deploymentId,
        forMs: 240_000,
      });
      // Postponed: nothing downloads (it would start within milliseconds otherwise).
      await new Promise((r) => setTimeout(r, 500));
      expect(h.events.filter((e) => e.kind === 'chunk')).toEqual([]);
      const waiting = await t.client.getDeployment(deploymentId, true);
      expect(waiting.rollout?.devices[0]?.state).toBe('pending');
      own.clock.advance(240_000);
      const done = await until(
        () => t.client.getDeployment(deploymentId, true),
        (r) => r.rollout?.devices[0]?.state === 'succeeded',
      );
      expect(done.rollout?.state).toBe('completed');
      expect(h.power).toEqual(['device.firmware-installed', 'device.power-off', 'device.power-on']);
    } finally {
      await own.stop();
    }
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
    const h = await spawnAgent({ system: agents.system, device: outsider, root, transport });
    h.agent.tell({ type: 'agent.device-attested' });
    const events = await until(
      () => h.events,
      (e) => e.some((x) => x.kind === 'check'),
    );
    expect(events.find((x) => x.kind === 'check')).toMatchObject({ ok: true, offers: 0 });
    // Asked anyway, as the outsider itself (sealed with its own session): still not offered.
    const session = h.session.current;
    if (session === null) throw new Error('the outsider has no session');
    const reply = decodeChunkReply(
      await transport.request(
        deviceSubject('update-chunk', partitionOf(outsider.deviceId, PARTITIONS)),
        session.seal(
          'update-chunk',
          encodeChunkRequest({ deviceId: outsider.deviceId, deploymentId, offset: 0, length: 100 }),
        ),
        { timeoutMs: 5000 },
      ),
    );
    expect(reply).toMatchObject({ ok: true, value: { ok: false, error: { code: 'NOT_OFFERED' } } });
  });
});
