import { describe, expect, test } from 'vitest';
import { DEVICE_FAULTS } from '../../../actors/device/index.js';
import { OS_RELEASES } from '../../../actors/security-core/index.js';
import {
  FAULT_PROFILES,
  FAULT_PROFILE_LIST,
  OS_VERSIONS,
  apportion,
  compileScenario,
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
