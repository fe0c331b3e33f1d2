import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  ATTACK_VARIANTS,
  VARIANT_CONTRACTS,
  expectedCodesOf,
  planAttacks,
} from '../../../loadgen/hostile/index.js';
import type { PlannedAttempt } from '../../../loadgen/hostile/index.js';
import { ATTACK_PROFILES, loadScenarioFile } from '../../../loadgen/scenario/index.js';
import type { AttacksConfig } from '../../../loadgen/scenario/index.js';

const CONFIG: AttacksConfig = {
  profiles: [
    { profile: 'impersonate', attempts: 9, startAtMs: 1000, forMs: 900, devices: 1 },
    { profile: 'replay', attempts: 4, startAtMs: 0, forMs: 0, devices: 1 },
    { profile: 'flood', attempts: 6, startAtMs: 500, forMs: 60, devices: 3 },
    { profile: 'malformed', attempts: 20, startAtMs: 0, forMs: 2000, devices: 1 },
    { profile: 'tenantCrossing', attempts: 7, startAtMs: 100, forMs: 700, devices: 1 },
  ],
};

const of = (plan: readonly PlannedAttempt[], profile: string) => plan.filter((a) => a.profile === profile);

describe('hostile plan', () => {
  test('plan - the same config and seed give the same plan; another seed other victims', () => {
    const a = planAttacks(CONFIG, 's', 50);
    expect(planAttacks(CONFIG, 's', 50)).toEqual(a);
    const b = planAttacks(CONFIG, 't', 50);
    expect(b.map((x) => x.victim)).not.toEqual(a.map((x) => x.victim));
    expect(b.map((x) => [x.profile, x.seq, x.variant, x.op, x.atMs])).toEqual(
      a.map((x) => [x.profile, x.seq, x.variant, x.op, x.atMs]),
    );
  });

  test('plan - every attempt is planned once, in time order, victims in range, seeds unique', () => {
    const plan = planAttacks(CONFIG, 's', 7);
    expect(plan).toHaveLength(9 + 4 + 6 + 20 + 7);
    for (let i = 1; i < plan.length; i++)
      expect(plan[i]?.atMs).toBeGreaterThanOrEqual(plan[i - 1]?.atMs ?? 0);
    expect(plan.every((a) => a.victim >= 0 && a.victim < 7)).toBe(true);
    expect(new Set(plan.map((a) => a.seed)).size).toBe(plan.length);
    expect(of(plan, 'impersonate').map((a) => a.atMs)).toEqual([
      1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800,
    ]);
    expect(of(plan, 'replay').every((a) => a.atMs === 0)).toBe(true);
  });

  test('plan - variants are taken in turn, and each variant meets every operation', () => {
    const plan = planAttacks(CONFIG, 's', 5);
    const imp = of(plan, 'impersonate').sort((x, y) => x.seq - y.seq);
    expect(imp.map((a) => a.variant)).toEqual([
      ...ATTACK_VARIANTS.impersonate,
      ...ATTACK_VARIANTS.impersonate,
      ...ATTACK_VARIANTS.impersonate,
    ]);
    const pairs = new Set(imp.map((a) => `${a.variant} ${a.op}`));
    expect(pairs.size).toBe(9);
    const mal = of(plan, 'malformed');
    expect(new Set(mal.map((a) => a.variant))).toEqual(new Set(ATTACK_VARIANTS.malformed));
    expect(new Set(mal.filter((a) => a.variant === 'garbage').map((a) => a.op))).toEqual(
      new Set(['challenge', 'attest', 'update-check', 'error-report']),
    );
    expect(of(plan, 'replay').every((a) => a.op === 'update-check')).toBe(true);
    expect(of(plan, 'tenantCrossing').every((a) => a.op === null)).toBe(true);
    expect(new Set(of(plan, 'tenantCrossing').map((a) => a.variant))).toEqual(
      new Set(ATTACK_VARIANTS.tenantCrossing),
    );
  });

  test('plan - a flood spreads its requests over its devices', () => {
    const flood = of(planAttacks(CONFIG, 's', 5), 'flood').sort((x, y) => x.seq - y.seq);
    expect(flood.map((a) => a.attacker)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(of(planAttacks(CONFIG, 's', 5), 'impersonate').every((a) => a.attacker === 0)).toBe(true);
  });

  test('plan - without a victim there is no plan', () => {
    expect(() => planAttacks(CONFIG, 's', 0)).toThrow(RangeError);
  });

  test('plan - every variant has a contract; a profile expects the union of its variants codes', () => {
    for (const profile of ATTACK_PROFILES) {
      for (const v of ATTACK_VARIANTS[profile])
        expect(VARIANT_CONTRACTS[v].expected.length).toBeGreaterThan(0);
    }
    expect(expectedCodesOf('impersonate')).toEqual(['IDENTITY_MISMATCH', 'BAD_MAC']);
    expect(expectedCodesOf('malformed')).toEqual(['MALFORMED_INPUT', 'PAYLOAD_TOO_LARGE']);
    expect(expectedCodesOf('tenantCrossing')).toEqual([
      'NOT_FOUND',
      'ALREADY_CLAIMED',
      'NO_DATA',
      'FORBIDDEN',
      'UNAUTHENTICATED',
    ]);
  });

  test('plan - the hostile example attacks with every profile and every variant inside the run', async () => {
    const s = await loadScenarioFile(join(import.meta.dirname, '../../../loadgen/examples/hostile.yaml'));
    expect(s.attacks?.profiles.map((p) => p.profile)).toEqual([...ATTACK_PROFILES]);
    expect(s.wallDurationMs).toBeLessThanOrEqual(60_000);
    const plan = planAttacks(s.attacks ?? { profiles: [] }, s.seed, 200);
    for (const profile of ATTACK_PROFILES) {
      expect(new Set(of(plan, profile).map((a) => a.variant))).toEqual(new Set(ATTACK_VARIANTS[profile]));
    }
    expect(plan.every((a) => a.atMs < s.durationMs)).toBe(true);
  });
});
