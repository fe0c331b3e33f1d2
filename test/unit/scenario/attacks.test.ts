import { describe, expect, test } from 'vitest';
import { scenarioProblems as problems } from '../../fixtures/scenario.js';
import {
  ATTACK_PROFILES,
  attemptAtMs,
  floodAllowance,
  parseScenarioYaml,
} from '../../../loadgen/scenario/index.js';

const BASE = `name: attacks
duration: 8h
fleet: { size: 10 }
`;

describe('scenario attacks', () => {
  test('attacks - no section compiles to null; the rate limit defaults to the shard default', () => {
    const s = parseScenarioYaml(BASE);
    expect(s.attacks).toBeNull();
    expect(s.service.deviceRateLimit).toEqual({ burst: 600, perHour: 600 });
  });

  test('attacks - every profile compiles in report order, from count or rate × for, with timing in ms', () => {
    const s = parseScenarioYaml(`${BASE}service: { deviceRateLimit: { burst: 20, perHour: 60 } }
attacks:
  tenantCrossing: { count: 7, startAt: 1h, for: 2h }
  malformed: { rate: 2/m, startAt: 30m, for: 1h }
  flood: { count: 400, startAt: 2h, for: 10m, devices: 2 }
  replay: { count: 3 }
  impersonate: { count: 30, startAt: 1h, for: 2h }
`);
    expect(s.service.deviceRateLimit).toEqual({ burst: 20, perHour: 60 });
    expect(s.attacks?.profiles).toEqual([
      { profile: 'impersonate', attempts: 30, startAtMs: 3_600_000, forMs: 7_200_000, devices: 1 },
      { profile: 'replay', attempts: 3, startAtMs: 0, forMs: 0, devices: 1 },
      { profile: 'flood', attempts: 400, startAtMs: 7_200_000, forMs: 600_000, devices: 2 },
      { profile: 'malformed', attempts: 120, startAtMs: 1_800_000, forMs: 3_600_000, devices: 1 },
      { profile: 'tenantCrossing', attempts: 7, startAtMs: 3_600_000, forMs: 7_200_000, devices: 1 },
    ]);
    expect(s.attacks?.profiles.map((p) => p.profile)).toEqual([...ATTACK_PROFILES]);
  });

  test('attacks - attempts are spread evenly over the window; all at startAt without one', () => {
    const spec = { profile: 'replay', attempts: 4, startAtMs: 1000, forMs: 400, devices: 1 } as const;
    expect([0, 1, 2, 3].map((i) => attemptAtMs(spec, i))).toEqual([1000, 1100, 1200, 1300]);
    expect(attemptAtMs({ ...spec, forMs: 0 }, 3)).toBe(1000);
    expect(attemptAtMs({ ...spec, attempts: 1 }, 0)).toBe(1000);
  });

  test('attacks - the flood allowance is the burst, the refill over the span (rounded up) and one', () => {
    expect(floodAllowance({ burst: 20, perHour: 60 }, 0)).toBe(21);
    expect(floodAllowance({ burst: 20, perHour: 60 }, 600_000)).toBe(31);
    expect(floodAllowance({ burst: 20, perHour: 60 }, 61_000)).toBe(23);
    expect(floodAllowance({ burst: 20, perHour: 60 }, -5)).toBe(21);
  });

  test('attacks - count and rate together, neither, or a rate without a window are refused', () => {
    const e = problems(`${BASE}attacks:
  replay: { count: 3, rate: 1/s, for: 1m }
  impersonate: { startAt: 1h }
  malformed: { rate: 1/s }
`);
    expect(e.message).toContain('attacks.replay: needs exactly one of count');
    expect(e.message).toContain('attacks.impersonate: needs exactly one of count');
    expect(e.message).toContain('attacks.malformed.for: a rate needs a window');
    expect(e.issues.every((issue) => issue.line !== undefined)).toBe(true);
  });

  test('attacks - a window past the end of the run is refused', () => {
    const e = problems(`${BASE}attacks:
  replay: { count: 3, startAt: 7h, for: 2h }
  impersonate: { count: 3, startAt: 9h }
`);
    expect(e.message).toContain('attacks.replay.for: the attacks run until 9h but the run lasts 8h');
    expect(e.message).toContain('attacks.impersonate.startAt: the attacks run until 9h but the run lasts 8h');
  });

  test('attacks - unknown keys and bad values name their field', () => {
    const e = problems(`${BASE}attacks:
  impersonate: { count: 0 }
  malformed: { count: 5, devices: 2 }
  flood: { count: 5000, devices: 101 }
  dos: { count: 1 }
`);
    expect(e.message).toContain(
      'attacks.impersonate.count: expected a whole number of attempts from 1 to 100000, got 0',
    );
    expect(e.message).toContain('attacks.malformed.devices: unknown key "devices"');
    expect(e.message).toContain(
      'attacks.flood.devices: expected a whole number of devices from 1 to 100, got 101',
    );
    expect(e.message).toContain('attacks.dos: unknown key "dos"');
  });

  test('attacks - a flood the device budget absorbs is refused, naming the budget', () => {
    const e = problems(`${BASE}service: { deviceRateLimit: { burst: 20, perHour: 60 } }
attacks:
  flood: { count: 30, startAt: 1h, for: 10m }
`);
    expect(e.message).toContain(
      'attacks.flood.count: 30 requests per device over 10m fit in its budget (burst 20, 60 per hour: 31)',
    );
    const rate = problems(`${BASE}attacks:
  flood: { rate: 1/s, for: 10m, devices: 2 }
`);
    expect(rate.message).toContain('attacks.flood.rate: 300 requests per device over 10m fit in its budget');
    // Past the budget it compiles.
    const ok = parseScenarioYaml(`${BASE}service: { deviceRateLimit: { burst: 20, perHour: 60 } }
attacks:
  flood: { count: 32, startAt: 1h, for: 10m }
`);
    expect(ok.attacks?.profiles[0]?.attempts).toBe(32);
  });

  test('attacks - service.deviceRateLimit needs whole numbers of at least 1', () => {
    const e = problems(`${BASE}service: { deviceRateLimit: { burst: 0, perHour: 1.5, rate: 3 } }\n`);
    expect(e.message).toContain('service.deviceRateLimit.burst: must be >= 1, got 0');
    expect(e.message).toContain('service.deviceRateLimit.perHour: expected a whole number, got 1.5');
    expect(e.message).toContain('service.deviceRateLimit.rate: unknown key "rate"');
  });
});
