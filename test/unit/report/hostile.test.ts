import { describe, expect, test } from 'vitest';
import { renderSummaryTable, summaryPasses } from '../../../loadgen/report/index.js';
import type { HostileSummary, RunSummary } from '../../../loadgen/report/index.js';
import { judgeHostile } from '../../../loadgen/hostile/index.js';
import type { AttemptRecord, PlannedAttempt } from '../../../loadgen/hostile/index.js';
import { LatencyRecorder, evaluateThresholds } from '../../../loadgen/scenario/index.js';
import type { AttackProfile } from '../../../loadgen/scenario/index.js';

function summary(hostile?: HostileSummary): RunSummary {
  const latency = new LatencyRecorder().stats();
  const base: Omit<RunSummary, 'pass'> = {
    version: 3,
    run: {
      scenario: 'hostile',
      description: '',
      seed: '7',
      startedAt: '2025-01-01T00:00:00.000Z',
      wallElapsedMs: 30_000,
      simulatedMs: 28_800_000,
      durationMs: 28_800_000,
      timeScale: 960,
      fleetSize: 200,
      connections: { mode: 'shared', pool: 4 },
      aborted: null,
    },
    stages: [],
    devices: { total: 200, poweredOn: 200, attested: 200, failed: 0, backoff: 0 },
    attestations: { total: 400, ok: 400, failed: 0, byResult: { ok: 400 }, byCode: {} },
    latency: { challenge: latency, attest: latency },
    faults: [],
    rollouts: [],
    updates: null,
    ...(hostile === undefined ? {} : { hostile }),
    thresholds: evaluateThresholds([], {}),
    errors: [],
  };
  return { ...base, pass: summaryPasses(base) };
}

let seq = 0;
function rec(
  profile: AttackProfile,
  variant: string,
  code: string | null,
  sender: string | null = null,
): AttemptRecord {
  const attempt = {
    profile,
    seq: seq++,
    atMs: 0,
    variant,
    op: null,
    attacker: 0,
    victim: 0,
    seed: 's',
  } as PlannedAttempt;
  const outcome =
    code === null
      ? ({ kind: 'accepted', detail: 'GetDevice returned d-1…' } as const)
      : ({ kind: 'refused', code, message: '' } as const);
  return { attempt, outcome, sender, sentAtMs: 0, answeredAtMs: 0 };
}

const profile = (p: AttackProfile, attempts: number) => ({
  profile: p,
  attempts,
  startAtMs: 0,
  forMs: 0,
  devices: 1,
});
const LIMIT = { burst: 20, perHour: 60 };

function hostile(crossing: 'refused' | 'accepted'): HostileSummary {
  const records = [
    rec('impersonate', 'foreign-session', 'IDENTITY_MISMATCH', 'A'),
    rec('impersonate', 'made-up-session', 'BAD_MAC'),
    rec('malformed', 'oversize', 'PAYLOAD_TOO_LARGE'),
    rec('tenantCrossing', 'read', crossing === 'refused' ? 'NOT_FOUND' : null),
  ];
  const found = new Map([['A IDENTITY_MISMATCH', { alerts: 1, covered: 1 }]]);
  return judgeHostile(
    { profiles: [profile('impersonate', 2), profile('malformed', 1), profile('tenantCrossing', 1)] },
    records,
    found,
    LIMIT,
  );
}

describe('run report hostile traffic', () => {
  test('report - no hostile section without attacks', () => {
    const s = summary();
    expect(s.pass).toBe(true);
    expect(renderSummaryTable(s, { color: false })).not.toContain('Hostile traffic');
  });

  test('report - the hostile table: per profile attempts, refused, accepted, alerted pairs and codes', () => {
    const s = summary(hostile('refused'));
    expect(s.pass).toBe(true);
    const text = renderSummaryTable(s, { color: false });
    expect(text).toContain('sphere-fleet · hostile · seed 7 · ✓ PASS');
    const lines = text.split('\n');
    const at = lines.indexOf('Hostile traffic');
    expect(lines.slice(at + 1, at + 8)).toEqual([
      '    profile         attempts  refused  accepted  no answer  alerted   alerts  no tenant',
      '  ✓ impersonate            2        2         0          0      1/1  1 for 1          1',
      '  ✓ malformed              1        1         0          0        -        -          1',
      '  ✓ tenantCrossing         1        1         0          0        -        -          -',
      '  impersonate     BAD_MAC×1 · IDENTITY_MISMATCH×1',
      '  malformed       PAYLOAD_TOO_LARGE×1',
      '  tenantCrossing  NOT_FOUND×1',
    ]);
    expect(lines.every((line) => line.length <= 100)).toBe(true);
  });

  test('report - an accepted attack fails the run and the report says what got through', () => {
    const s = summary(hostile('accepted'));
    expect(s.hostile?.pass).toBe(false);
    expect(s.pass).toBe(false);
    const text = renderSummaryTable(s, { color: false });
    expect(text).toContain('✗ FAIL');
    expect(text).toMatch(/✗ tenantCrossing\s+1\s+0\s+1/);
    expect(text).toContain('read: ACCEPTED: GetDevice returned d-1…');
  });
});
