import { describe, expect, test } from 'vitest';
import { DEVICE_FAULTS } from '../../../actors/device/index.js';
import { OS_RELEASES } from '../../../actors/security-core/index.js';
import {
  FAULT_PROFILES,
  FAULT_PROFILE_LIST,
  OS_VERSIONS,
  UPDATE_FAULT_LIST,
  apportion,
  compileScenario,
  imageContent,
  imageDefective,
  planFleet,
} from '../../../loadgen/scenario/index.js';
import type { DevicePlan, Scenario } from '../../../loadgen/scenario/index.js';

function scenario(overrides: Record<string, unknown> = {}): Scenario {
  return compileScenario({
    name: 'plan',
    seed: 7,
    duration: '2h',
    fleet: {
      size: 1000,
      osMix: { '25.10': 0.55, '25.04': 0.3, '24.10': 0.15 },
      faults: {
        tamperedKernel: { count: 5 },
        unendorsed: 0.004,
        clonedKey: { count: 6 },
        replay: { count: 3 },
        belowMinVersion: { count: 4 },
        wrongClock: { count: 3 },
      },
    },
    stages: [
      { bootStorm: { devices: '60%', within: '10s' } },
      { ramp: { rate: '10/s', for: '1m' } },
      { hold: { for: '1h' } },
    ],
    ...overrides,
  });
}

const image = { id: 'a', name: 'blinky', version: '2', size: '1KiB' };
const rollout = (name: string, group: string, devices?: unknown) => ({
  name,
  image: 'a',
  group,
  ...(devices === undefined ? {} : { devices }),
  waves: ['100%'],
  successThreshold: 1,
  errorCondition: { count: 1 },
});

/** The plan scenario with update faults and three rollouts to two groups. */
function withRollouts(overrides: Record<string, unknown> = {}): Scenario {
  return scenario({
    updates: {
      faults: { installFails: { count: 7 }, bootLoop: 0.01, powerLossMidDownload: '2%', slowLink: 0.05 },
    },
    images: [image],
    rollouts: [
      rollout('one', 'Field Test', '30%'),
      rollout('two', 'Production', { count: 200 }),
      rollout('three', 'Field Test'),
    ],
    ...overrides,
  });
}

function tally<T>(items: readonly T[]): Map<T, number> {
  const out = new Map<T, number>();
  for (const item of items) out.set(item, (out.get(item) ?? 0) + 1);
  return out;
}

describe('fleet plan', () => {
  test('plan - same seed gives the same plan; a different seed a different one', () => {
    const a = planFleet(scenario());
    const b = planFleet(scenario());
    expect(b).toEqual(a);
    const c = planFleet(scenario({ seed: 8 }));
    expect(c.map((p) => p.fault)).not.toEqual(a.map((p) => p.fault));
    expect(c.map((p) => p.powerOnAtMs)).not.toEqual(a.map((p) => p.powerOnAtMs));
    expect(c.map((p) => p.osVersion)).not.toEqual(a.map((p) => p.osVersion));
  });

  test('plan - fault and OS counts come out exactly as compiled', () => {
    const s = scenario();
    const plans = planFleet(s);
    expect(plans).toHaveLength(1000);
    const faults = tally(plans.map((p) => p.fault));
    for (const profile of FAULT_PROFILE_LIST)
      expect(faults.get(profile) ?? 0, profile).toBe(s.fleet.faults[profile]);
    expect(faults.get('unendorsed')).toBe(4);
    const versions = tally(plans.filter((p) => p.fault !== 'belowMinVersion').map((p) => p.osVersion));
    // 996 devices run the mix: 0.55/0.3/0.15 -> 547.8/298.8/149.4 -> 548/299/149.
    expect(Object.fromEntries(versions)).toEqual({ '25.10': 548, '25.04': 299, '24.10': 149 });
    for (const plan of plans.filter((p) => p.fault === 'belowMinVersion')) {
      expect(plan.osVersion).toBe('23.05');
      expect(plan.securityVersion).toBeLessThan(s.service.minSecurityVersion);
    }
  });

  test('plan - faults are a seeded shuffle, not the first devices', () => {
    const plans = planFleet(scenario());
    const hostile = plans.filter((p) => p.fault !== null).map((p) => p.index);
    expect(hostile).toHaveLength(25);
    expect(Math.max(...hostile)).toBeGreaterThan(500);
    expect(hostile).not.toEqual(hostile.map((_, i) => i));
  });

  test('plan - seeds are unique except that each cloned twin shares its original’s seed', () => {
    const plans = planFleet(scenario());
    const twins = plans.filter((p) => p.twinOf !== undefined);
    expect(twins).toHaveLength(3);
    for (const twin of twins) {
      const original = plans[twin.twinOf ?? -1] as DevicePlan;
      expect(original.fault).toBe('clonedKey');
      expect(twin.fault).toBe('clonedKey');
      expect(original.twinOf).toBeUndefined();
      expect(twin.seed).toBe(original.seed);
      expect(twin.index).toBeGreaterThan(original.index);
      expect(twin.powerOnAtMs).toBeGreaterThanOrEqual(original.powerOnAtMs);
    }
    const seeds = new Set(plans.map((p) => p.seed));
    expect(seeds.size).toBe(plans.length - twins.length);
    expect(plans[0]?.seed).toBe('7/0');
  });

  test('plan - power-on times follow the stages and are non-decreasing with index', () => {
    const s = scenario();
    const plans = planFleet(s);
    const storm = plans.filter((p) => p.stage === 0);
    const ramp = plans.filter((p) => p.stage === 1);
    expect(storm).toHaveLength(600);
    expect(ramp).toHaveLength(400);
    for (const p of storm) expect(p.powerOnAtMs >= 0 && p.powerOnAtMs < 10_000).toBe(true);
    // 10/s from 10s: device k of the ramp at 10s + k * 100ms.
    expect(ramp.slice(0, 3).map((p) => p.powerOnAtMs)).toEqual([10_000, 10_100, 10_200]);
    expect(ramp.at(-1)?.powerOnAtMs).toBe(10_000 + 399 * 100);
    for (let i = 1; i < plans.length; i++) {
      expect((plans[i]?.powerOnAtMs ?? 0) >= (plans[i - 1]?.powerOnAtMs ?? 0)).toBe(true);
    }
    // Uniform storm: both halves of the window get devices.
    expect(storm.filter((p) => p.powerOnAtMs < 5_000).length).toBeGreaterThan(200);
    expect(storm.filter((p) => p.powerOnAtMs >= 5_000).length).toBeGreaterThan(200);
  });

  test('plan - wrongClock devices start with a clock well outside the allowed skew', () => {
    const s = scenario();
    for (const plan of planFleet(s)) {
      if (plan.fault === 'wrongClock')
        expect(Math.abs(plan.clockOffsetMs)).toBeGreaterThan(s.service.maxClockSkewMs);
      else expect(plan.clockOffsetMs).toBe(0);
    }
  });

  test("plan - OS deferrals: exact count of healthy devices, each with the scenario's delay, independent of the rest", () => {
    const s = withRollouts({ updates: { deferOs: { devices: '10%', for: '6h' } } });
    expect(s.updates.deferOs).toEqual({ devices: 100, forMs: 21_600_000 });
    const plans = planFleet(s);
    const deferring = plans.filter((p) => p.deferOsMs > 0);
    expect(deferring.length).toBe(100);
    for (const p of deferring) {
      expect(p.fault).toBeNull();
      expect(p.deferOsMs).toBe(21_600_000);
    }
    expect(planFleet(s)).toEqual(plans);
    const base = planFleet(withRollouts({ updates: {} }));
    expect(plans.map(({ deferOsMs: _d, ...rest }) => rest)).toEqual(
      base.map(({ deferOsMs: _d, ...rest }) => rest),
    );
    expect(base.every((p) => p.deferOsMs === 0)).toBe(true);
    // More than half the fleet is refused, like update faults.
    expect(() => withRollouts({ updates: { deferOs: { devices: '60%', for: '1h' } } })).toThrow(
      /updates\.deferOs: 600 devices deferring OS updates is more than half of the fleet/,
    );
  });

  test('plan - update faults: exact counts, healthy devices only, seeded and independent of the rest', () => {
    const s = withRollouts();
    expect(s.updates.faults).toEqual({
      installFails: 7,
      bootLoop: 10,
      powerLossMidDownload: 20,
      slowLink: 50,
    });
    const plans = planFleet(s);
    const counts = tally(plans.map((p) => p.updateFault));
    for (const fault of UPDATE_FAULT_LIST)
      expect(counts.get(fault) ?? 0, fault).toBe(s.updates.faults[fault]);
    for (const p of plans) if (p.updateFault !== null) expect(p.fault).toBeNull();
    // Spread over the fleet, not the first healthy devices.
    const faulty = plans.filter((p) => p.updateFault !== null).map((p) => p.index);
    expect(Math.max(...faulty)).toBeGreaterThan(800);
    expect(Math.min(...faulty)).toBeLessThan(200);
    // Deterministic; and adding update faults or rollouts reshuffles nothing else.
    expect(planFleet(withRollouts())).toEqual(plans);
    const base = planFleet(scenario());
    expect(plans.map(({ updateFault: _u, rolloutGroup: _g, ...rest }) => rest)).toEqual(
      base.map(({ updateFault: _u, rolloutGroup: _g, ...rest }) => rest),
    );
    expect(base.every((p) => p.updateFault === null && p.rolloutGroup === null)).toBe(true);
    // Another seed, another draw.
    const other = planFleet(withRollouts({ seed: 8 }));
    expect(other.map((p) => p.updateFault)).not.toEqual(plans.map((p) => p.updateFault));
  });

  test('plan - rollout groups: exact sizes, disjoint, healthy devices only, shared by rollouts to one group', () => {
    const s = withRollouts();
    // 975 healthy devices: Field Test 30% (292, shared by "one" and "three"), Production 200.
    expect(s.rollouts.map((r) => [r.name, r.group, r.devices])).toEqual([
      ['one', 'Field Test', 292],
      ['two', 'Production', 200],
      ['three', 'Field Test', 292],
    ]);
    const plans = planFleet(s);
    const groups = tally(plans.map((p) => p.rolloutGroup));
    expect(Object.fromEntries(groups)).toEqual({ 'Field Test': 292, Production: 200, null: 508 });
    for (const p of plans) if (p.rolloutGroup !== null) expect(p.fault, `device ${p.index}`).toBeNull();
    // Hostile devices of every profile (unendorsed, clones, replayers...) are never in a group.
    expect(plans.filter((p) => p.fault !== null).every((p) => p.rolloutGroup === null)).toBe(true);
    // Groups and update faults are independent draws: each group holds some update faults.
    for (const group of ['Field Test', 'Production']) {
      const mine = plans.filter((p) => p.rolloutGroup === group && p.updateFault !== null).length;
      expect(mine, group).toBeGreaterThan(0);
    }
    // The same seed gives the same groups; another seed other members.
    expect(planFleet(withRollouts()).map((p) => p.rolloutGroup)).toEqual(plans.map((p) => p.rolloutGroup));
    expect(planFleet(withRollouts({ seed: 8 })).map((p) => p.rolloutGroup)).not.toEqual(
      plans.map((p) => p.rolloutGroup),
    );
  });

  test('plan - a fleet at both 50% caps still fits: update faults only on healthy devices', () => {
    const s = compileScenario({
      name: 'caps',
      duration: '1h',
      fleet: { size: 100, faults: { replay: { count: 50 } } },
      updates: { faults: { slowLink: { count: 49 }, installFails: 0.01 } },
    });
    const plans = planFleet(s);
    expect(plans.filter((p) => p.fault === null).every((p) => p.updateFault !== null)).toBe(true);
    expect(plans.filter((p) => p.updateFault !== null)).toHaveLength(50);
  });

  test('images - content is a deterministic function of seed and image id, of the image size', () => {
    const a = imageContent('7', { id: 'blinky-bad', sizeBytes: 4096 });
    expect(a).toHaveLength(4096);
    expect(imageContent('7', { id: 'blinky-bad', sizeBytes: 4096 })).toEqual(a);
    expect(imageContent('8', { id: 'blinky-bad', sizeBytes: 4096 })).not.toEqual(a);
    expect(imageContent('7', { id: 'blinky-good', sizeBytes: 4096 })).not.toEqual(a);
    // A prefix of the same stream: sizes do not change the bytes.
    expect(imageContent('7', { id: 'blinky-bad', sizeBytes: 100 })).toEqual(a.slice(0, 100));
    expect(imageContent('7', { id: 'x', sizeBytes: 0 })).toHaveLength(0);
    // Not trivially compressible: every byte value shows up.
    expect(new Set(a).size).toBe(256);
    // Cheap: 1 MiB well under the unit-test budget.
    const started = performance.now();
    const big = imageContent('7', { id: 'os', sizeBytes: 1024 * 1024 });
    expect(big).toHaveLength(1024 * 1024);
    expect(performance.now() - started).toBeLessThan(500);
  });

  test('images - defects: deterministic per (seed, device, image), with the requested rate over many devices', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => i.toString(16).padStart(128, '0'));
    const defective = (seed: string, imageId: string, rate: number) =>
      ids.filter((id) => imageDefective(seed, id, imageId, rate));
    for (const rate of [0.01, 0.15, 0.5]) {
      const share = defective('7', 'blinky-bad', rate).length / ids.length;
      // 20,000 Bernoulli draws: 5 standard deviations of slack.
      expect(Math.abs(share - rate), `rate ${rate}`).toBeLessThan(
        5 * Math.sqrt((rate * (1 - rate)) / ids.length),
      );
    }
    const first = defective('7', 'blinky-bad', 0.3);
    expect(defective('7', 'blinky-bad', 0.3)).toEqual(first);
    // A lower rate picks a subset of the devices a higher rate picks (same hash, lower cut).
    const lower = new Set(defective('7', 'blinky-bad', 0.1));
    for (const id of lower) expect(first.includes(id)).toBe(true);
    // Other image, other seed: other devices.
    expect(defective('7', 'blinky-other', 0.3)).not.toEqual(first);
    expect(defective('8', 'blinky-bad', 0.3)).not.toEqual(first);
    expect(defective('7', 'blinky-bad', 0)).toEqual([]);
    expect(defective('7', 'blinky-bad', 1)).toHaveLength(ids.length);
  });

  test('apportion - parts sum to the total and each is floor or ceil of its quota', () => {
    expect(apportion(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(apportion(2000, [0.7, 0.3])).toEqual([1400, 600]);
    expect(apportion(0, [1, 2])).toEqual([0, 0]);
    const parts = apportion(997, [0.123, 0.456, 0.421]);
    expect(parts.reduce((a, b) => a + b, 0)).toBe(997);
  });

  test('catalog - OS versions and fault profiles agree with the actors', () => {
    expect(
      Object.fromEntries(OS_RELEASES.map((r) => [r.version, { securityVersion: r.securityVersion }])),
    ).toEqual(OS_VERSIONS);
    expect([...FAULT_PROFILE_LIST].sort()).toEqual([...DEVICE_FAULTS].sort());
    expect(FAULT_PROFILES.replay.expectedCodes).toEqual(['NONCE_REUSED', 'NONCE_STALE']);
    expect(FAULT_PROFILES.wrongClock.certificates).toBe('all');
  });
});
