import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
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
