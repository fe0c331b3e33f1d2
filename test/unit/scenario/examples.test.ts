import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { compileRolloutConfig } from '../../../services/rollouts/index.js';
import {
  FAULT_PROFILE_LIST,
  loadScenarioFile,
  planFleet,
  scenarioWarnings,
} from '../../../loadgen/scenario/index.js';

const EXAMPLES = join(import.meta.dirname, '../../../loadgen/examples');

describe('examples', async () => {
  const files = (await readdir(EXAMPLES)).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'));

  test('examples - the folder has the documented scenarios', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'quickstart.yaml',
        'boot-storm-10k.yaml',
        'per-device-5k.yaml',
        'shared-20k.yaml',
        'rollouts.yaml',
      ]),
    );
  });

  test.each(files)('examples - %s compiles, plans, and has no time-compression warnings', async (file) => {
    const scenario = await loadScenarioFile(join(EXAMPLES, file));
    expect(scenario.wallDurationMs).toBeGreaterThan(0);
    expect(scenarioWarnings(scenario)).toEqual([]);
    expect(planFleet(scenario)).toHaveLength(scenario.fleet.size);
  });

  test('examples - quickstart: 2,000 devices, ~60-90 wall seconds, everyone re-attests, every fault profile >= 3', async () => {
    const s = await loadScenarioFile(join(EXAMPLES, 'quickstart.yaml'));
    expect(s.fleet.size).toBe(2000);
    expect(s.seed).toBe('42');
    expect(s.wallDurationMs).toBeGreaterThanOrEqual(60_000);
    expect(s.wallDurationMs).toBeLessThanOrEqual(90_000);
    const lastPowerOn = Math.max(...s.stages.map((st) => (st.devices > 0 ? st.endMs : 0)));
    expect(lastPowerOn + s.device.attestEveryMs).toBeLessThan(s.durationMs);
    for (const profile of FAULT_PROFILE_LIST)
      expect(s.fleet.faults[profile], profile).toBeGreaterThanOrEqual(3);
    expect(s.fleet.hostileDevices / s.fleet.size).toBeCloseTo(0.01, 3);
    expect(s.thresholds.map((t) => t.metric)).toEqual(
      expect.arrayContaining(['attest_latency_ms', 'attest_success_rate', 'hostile_rejected_rate']),
    );
  });

  test('examples - rollouts: ~1,000 devices, 60-90 wall s, a rollout expected to halt, two to complete (one an OS)', async () => {
    const s = await loadScenarioFile(join(EXAMPLES, 'rollouts.yaml'));
    expect(s.fleet.size).toBe(1000);
    expect(s.wallDurationMs).toBeGreaterThanOrEqual(60_000);
    expect(s.wallDurationMs).toBeLessThanOrEqual(90_000);
    expect(s.rollouts.map((r) => [r.name, r.expect])).toEqual([
      ['bad-app', 'halted'],
      ['good-app', 'completed'],
      ['os', 'completed'],
    ]);
    const [bad, good, os] = s.rollouts;
    if (bad === undefined || good === undefined || os === undefined)
      throw new Error('three rollouts expected');
    expect(new Set([bad.group, good.group, os.group]).size).toBe(3);
    for (const r of s.rollouts) {
      expect(compileRolloutConfig(r.config).ok).toBe(true);
      // Every wave can reach every device well before the run ends.
      const waves = r.config.waves.length;
      const lastWaveOpensBy =
        r.startAtMs + waves * (s.updates.checkEveryMs + (r.config.pauseBetweenWavesMs ?? 0));
      expect(lastWaveOpensBy).toBeLessThan(s.durationMs / 2);
    }
    const images = new Map(s.images.map((i) => [i.id, i]));
    expect(images.get(bad.imageId)?.defectRate).toBeGreaterThan(0);
    expect(images.get(good.imageId)?.defectRate).toBe(0);

    // The bad rollout cannot halt in wave 1 by its error budget (more failures needed than
    // wave 1 has devices), but wave 2 offers far more devices than the budget at its defect rate.
    const firstWave = bad.config.waves[0];
    expect(firstWave).toEqual({ count: 10 });
    const budget = bad.config.errorThreshold.count ?? Infinity;
    expect(budget).toBeGreaterThan(10);
    expect(bad.config.errorThreshold.share).toBeUndefined();
    const secondWave = bad.config.waves[1];
    const wave2 =
      secondWave !== undefined && 'share' in secondWave ? Math.ceil(secondWave.share * bad.devices) : 0;
    const expectedFailures = wave2 * (images.get(bad.imageId)?.defectRate ?? 0);
    expect(expectedFailures).toBeGreaterThan(2 * budget);

    // The good rollout's budget is above every device that can fail a good image (update faults).
    const failing = s.updates.faults.installFails + s.updates.faults.bootLoop;
    expect(good.config.errorThreshold.count ?? 0).toBeGreaterThan(failing);
    expect(good.config.errorThreshold.share).toBeUndefined();

    const plans = planFleet(s);
    const groups = new Map<string, number>();
    for (const p of plans)
      if (p.rolloutGroup !== null) groups.set(p.rolloutGroup, (groups.get(p.rolloutGroup) ?? 0) + 1);
    expect(Object.fromEntries(groups)).toEqual({
      [bad.group]: bad.devices,
      [good.group]: good.devices,
      [os.group]: os.devices,
    });
    expect(plans.filter((p) => p.updateFault !== null && p.rolloutGroup !== null).length).toBeGreaterThan(0);

    // The OS release is a build the service knows; part of its group runs an older OS (they
    // reboot into it), some of those postpone it, and no update fault can reach its budget.
    const osImage = images.get(os.imageId);
    expect(osImage).toMatchObject({ kind: 'os', version: '25.10', securityVersion: 5 });
    const members = plans.filter((p) => p.rolloutGroup === os.group);
    const older = members.filter((p) => p.osVersion !== '25.10');
    expect(older.length).toBeGreaterThan(10);
    expect(older.filter((p) => p.deferOsMs > 0).length).toBeGreaterThan(0);
    expect(os.config.errorThreshold.count ?? 0).toBeGreaterThan(failing);
  });

  test('examples - sizes and connection modes match their names', async () => {
    const load = (f: string) => loadScenarioFile(join(EXAMPLES, f));
    const [storm, perDevice, shared] = await Promise.all([
      load('boot-storm-10k.yaml'),
      load('per-device-5k.yaml'),
      load('shared-20k.yaml'),
    ]);
    expect([storm.fleet.size, storm.connections.mode, storm.stages.length]).toEqual([10_000, 'shared', 1]);
    expect([perDevice.fleet.size, perDevice.connections.mode]).toEqual([5_000, 'per-device']);
    expect([shared.fleet.size, shared.connections.mode]).toEqual([20_000, 'shared']);
  });
});
