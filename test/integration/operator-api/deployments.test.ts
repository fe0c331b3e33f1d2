/**
 * Deployments on a live shard: created over gRPC for a device group and an uploaded image, driven
 * by device update reports published over real NATS, watched through GetDeployment and the
 * shard's /metrics (sphere_rollout_*).
 */
import { describe, expect, it } from 'vitest';
import type { UpdateReportOutcome } from '../../../proto/codec/index.js';
import {
  bootedDevice,
  callError,
  createTestTenant,
  endorseAndClaim,
  sampleValue,
  uniqueSeed,
  useShard,
} from '../../fixtures/shard.js';
import { rolloutFleet, sendUpdateReport, until } from '../../fixtures/updates.js';

const env = useShard({ seed: 'deployments' });

const fleet = (label: string, n: number) => rolloutFleet(env().admin, label, n);
const report = (deviceId: string, deploymentId: string, outcome: UpdateReportOutcome) =>
  sendUpdateReport(env().devices, deviceId, deploymentId, outcome);

describe('deployments', () => {
  it('deployments - waves open as the previous wave succeeds, and the rollout completes', async () => {
    const { t, devices, groupId, imageId } = await fleet('rollout-ok', 10);
    const created = await t.client.createDeployment({
      deviceGroupId: groupId,
      imageId,
      waves: [
        { size: { $case: 'share', value: 0.2 } },
        { size: { $case: 'share', value: 0.5 } },
        { size: { $case: 'share', value: 1 } },
      ],
      successThreshold: 1,
      errorCount: 3,
    });
    const id = created.rollout?.deploymentId ?? '';
    expect(id).toMatch(/^d-[0-9a-f]{16}$/);
    expect(created.rollout).toMatchObject({ state: 'running', currentWave: 1 });

    for (const wave of [1, 2, 3]) {
      const r = await t.client.getDeployment(id, true);
      const offered = r.rollout?.devices.filter((d) => d.wave === wave).map((d) => d.deviceId) ?? [];
      expect(offered.length, `wave ${wave}`).toBe([2, 3, 5][wave - 1]);
      for (const deviceId of offered) {
        await report(deviceId, id, 'downloading');
        await report(deviceId, id, 'succeeded');
      }
    }
    const done = await until(
      () => t.client.getDeployment(id),
      (r) => r.rollout?.state === 'completed',
    );
    expect(done.rollout).toMatchObject({ state: 'completed', currentWave: 3, failures: 0, attempted: 10 });

    const text = await env().shard.meter.metricsText();
    expect(sampleValue(text, 'sphere_rollout_state', { deployment: id, state: 'completed' })).toBe(1);
    expect(sampleValue(text, 'sphere_rollout_current_wave', { deployment: id })).toBe(3);
    expect(
      sampleValue(text, 'sphere_rollout_devices', { deployment: id, wave: '2', state: 'succeeded' }),
    ).toBe(3);
    expect(
      sampleValue(text, 'sphere_rollout_wave_transitions_total', {
        deployment: id,
        wave: '3',
        reason: 'previous-wave-succeeded',
      }),
    ).toBe(1);
    expect(devices).toHaveLength(10);
  });

  it('deployments - failures past the error budget halt the rollout and order rollbacks', async () => {
    const { t, groupId, imageId } = await fleet('rollout-bad', 10);
    const created = await t.client.createDeployment({
      deviceGroupId: groupId,
      imageId,
      waves: [{ size: { $case: 'count', value: 4 } }, { size: { $case: 'share', value: 1 } }],
      successThreshold: 0.75,
      errorCount: 2,
      autoRollback: true,
    });
    const id = created.rollout?.deploymentId ?? '';
    const wave1 = (await t.client.getDeployment(id, true)).rollout?.devices.filter((d) => d.wave === 1) ?? [];
    expect(wave1).toHaveLength(4);
    const [a, b, c] = wave1.map((d) => d.deviceId);
    await report(a ?? '', id, 'succeeded');
    await report(b ?? '', id, 'failed');
    await report(c ?? '', id, 'failed');
    const halted = await until(
      () => t.client.getDeployment(id, true),
      (r) => r.rollout?.state === 'halted',
    );
    expect(halted.rollout).toMatchObject({ state: 'halted', failures: 2, haltReason: 'error-count' });
    // No device beyond wave 1 was ever offered the image: the budget stopped the rollout.
    expect(halted.rollout?.devices.filter((d) => d.wave > 1)).toEqual([]);
    // Commands on a halted rollout are refused with a reason.
    const refused = await callError(t.client.controlDeployment(id, 'resume'));
    expect(refused.code).toBe('CONFLICT');
    const text = await env().shard.meter.metricsText();
    expect(sampleValue(text, 'sphere_rollout_state', { deployment: id, state: 'halted' })).toBe(1);
    expect(
      sampleValue(text, 'sphere_update_installs_total', { result: 'failed', kind: 'os' }),
    ).toBeGreaterThanOrEqual(2);
  });

  it('deployments - pause and resume, joiners mid-rollout, and tenant scoping', async () => {
    const { t, groupId, imageId } = await fleet('rollout-ops', 4);
    const created = await t.client.createDeployment({
      deviceGroupId: groupId,
      imageId,
      waves: [{ size: { $case: 'share', value: 0.5 } }, { size: { $case: 'share', value: 1 } }],
      errorShare: 0.5,
    });
    const id = created.rollout?.deploymentId ?? '';
    expect((await t.client.controlDeployment(id, 'pause')).rollout?.state).toBe('paused');
    expect((await callError(t.client.controlDeployment(id, 'pause'))).code).toBe('CONFLICT');
    expect((await t.client.controlDeployment(id, 'resume')).rollout?.state).toBe('running');

    // A device assigned to the group during the rollout joins its population.
    const late = bootedDevice(uniqueSeed('rollout-ops-late'));
    await endorseAndClaim(env().admin, t.client, [late]);
    await t.client.assignDevices(groupId, [late.deviceId]);
    const joined = await until(
      () => t.client.getDeployment(id, true),
      (r) => (r.rollout?.devices.length ?? 0) === 5,
    );
    expect(joined.rollout?.devices.map((d) => d.deviceId)).toContain(late.deviceId);

    const other = await createTestTenant(env().admin, 'rollout-ops-other');
    expect((await callError(other.client.getDeployment(id))).code).toBe('NOT_FOUND');
    expect((await callError(t.client.controlDeployment(id, 'reboot'))).code).toBe('MALFORMED_INPUT');
    const bad = await callError(
      t.client.createDeployment({
        deviceGroupId: groupId,
        imageId,
        waves: [{ size: { $case: 'share', value: 0.5 } }],
        errorCount: 1,
      }),
    );
    expect(bad.code).toBe('MALFORMED_INPUT');
    expect(bad.message).toContain('waves');
  });

  it('deployments - a group of thousands: every member joins at creation and every device assigned later joins too', async () => {
    // One join message per device used to overflow the deployment actor's mailbox (1,000):
    // creation failed for a group of 1,000 and a bulk assign silently lost joins.
    const { t, devices, groupId, imageId } = await fleet('rollout-big', 1200);
    const created = await t.client.createDeployment({
      deviceGroupId: groupId,
      imageId,
      waves: [{ size: { $case: 'count', value: 10 } }, { size: { $case: 'share', value: 1 } }],
      errorCount: 50,
    });
    const id = created.rollout?.deploymentId ?? '';
    expect(created.rollout?.state).toBe('running');
    const later = Array.from({ length: 1200 }, (_, i) => bootedDevice(uniqueSeed(`rollout-big-later-${i}`)));
    await endorseAndClaim(env().admin, t.client, later);
    const assigned = await t.client.assignDevices(
      groupId,
      later.map((d) => d.deviceId),
    );
    expect(assigned.assigned).toBe(1200);
    const r = await t.client.getDeployment(id, true);
    const members = new Set(r.rollout?.devices.map((d) => d.deviceId));
    expect(members.size).toBe(2400);
    for (const d of [...devices, ...later]) expect(members.has(d.deviceId)).toBe(true);
  });
});
