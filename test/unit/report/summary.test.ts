import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  SUMMARY_VERSION,
  faultSummaryRow,
  renderSummaryTable,
  rolloutMetrics,
  rolloutOutcomes,
  summaryPasses,
  writeSummaryJson,
} from '../../../loadgen/report/index.js';
import type { RolloutSummary, RunSummary } from '../../../loadgen/report/index.js';
import { LatencyRecorder, evaluateThresholds } from '../../../loadgen/scenario/index.js';

function latency(samples: number[]) {
  const recorder = new LatencyRecorder();
  for (const s of samples) recorder.record(s);
  return recorder.stats();
}

function rolloutRow(overrides: Partial<RolloutSummary> = {}): RolloutSummary {
  return {
    name: 'bad-app',
    deploymentId: 'd-0123456789abcdef',
    image: { id: 'blinky-bad', kind: 'app', name: 'blinky', version: '1.1.0' },
    group: 'Field Test',
    devices: 393,
    startAtMs: 7_200_000,
    state: 'halted',
    currentWave: 2,
    totalWaves: 3,
    waves: [
      { wave: 0, devicesByState: { pending: 294 } },
      { wave: 1, devicesByState: { succeeded: 0, failed: 3, rolled_back: 7 } },
      { wave: 2, devicesByState: { pending: 20, downloading: 5, failed: 12, rolled_back: 52 } },
    ],
    failures: 15,
    attempted: 99,
    haltReason: 'error-count',
    expect: 'halted',
    expectationMet: true,
    error: null,
    ...overrides,
  };
}

const goodRollout = rolloutRow({
  name: 'good-app',
  deploymentId: 'd-fedcba9876543210',
  image: { id: 'blinky-good', kind: 'app', name: 'blinky', version: '1.2.0' },
  group: 'Production',
  devices: 491,
  state: 'completed',
  currentWave: 3,
  waves: [
    { wave: 1, devicesByState: { succeeded: 10 } },
    { wave: 2, devicesByState: { succeeded: 235, failed: 1 } },
    { wave: 3, devicesByState: { succeeded: 244, rolled_back: 1 } },
  ],
  failures: 2,
  attempted: 491,
  haltReason: null,
  expect: 'completed',
});

function makeSummary(overrides: Partial<RunSummary> = {}): RunSummary {
  const faults = [
    faultSummaryRow('tamperedKernel', {
      devices: 4,
      observedCodes: { MEASUREMENT_MISMATCH: 9 },
      devicesRejectedAsExpected: 4,
      devicesCertified: 0,
    }),
    faultSummaryRow('replay', {
      devices: 3,
      observedCodes: { NONCE_REUSED: 2, NONCE_STALE: 1 },
      devicesRejectedAsExpected: 3,
      devicesCertified: 0,
    }),
    faultSummaryRow('wrongClock', {
      devices: 3,
      observedCodes: { CLOCK_SKEW: 3 },
      devicesRejectedAsExpected: 3,
      devicesCertified: 2,
    }),
  ];
  const thresholds = evaluateThresholds(
    { attest_latency_ms: ['p(99)<500'], attest_success_rate: ['rate>0.99'] },
    { attest_latency_ms: { values: [10, 20, 30] }, attest_success_rate: { rate: 0.995 } },
  );
  const base: Omit<RunSummary, 'pass'> = {
    version: SUMMARY_VERSION,
    run: {
      scenario: 'quickstart',
      description: 'test',
      seed: '42',
      startedAt: '2025-01-01T00:00:00.000Z',
      wallElapsedMs: 60_400,
      simulatedMs: 172_800_000,
      durationMs: 172_800_000,
      timeScale: 2880,
      fleetSize: 2000,
      connections: { mode: 'shared', pool: 4 },
      aborted: null,
    },
    stages: [
      {
        index: 0,
        kind: 'bootStorm',
        startMs: 0,
        endMs: 10_000,
        planned: 2000,
        poweredOn: 2000,
        attested: 1983,
        failed: 17,
      },
      {
        index: 1,
        kind: 'hold',
        startMs: 10_000,
        endMs: 169_210_000,
        planned: 0,
        poweredOn: 0,
        attested: 0,
        failed: 0,
      },
    ],
    devices: { total: 2000, poweredOn: 2000, attested: 1983, failed: 17, backoff: 0 },
    attestations: {
      total: 4012,
      ok: 3966,
      failed: 46,
      byResult: { ok: 3966, rejected: 40, timeout: 6 },
      byCode: { MEASUREMENT_MISMATCH: 9, NONCE_REUSED: 2, NONCE_STALE: 1, CLOCK_SKEW: 3 },
    },
    latency: { challenge: latency([1, 2, 3, 4]), attest: latency([10, 20, 30, 400]) },
    faults,
    rollouts: [],
    updates: null,
    thresholds,
    errors: [{ message: 'timeout waiting for attest reply', count: 6 }],
    ...overrides,
  };
  return { ...base, pass: summaryPasses(base) };
}

describe('summary', () => {
  test('summary - fault rows pass only when every device got an expected code and ended as expected', () => {
    const ok = {
      devices: 4,
      observedCodes: { MEASUREMENT_MISMATCH: 4 },
      devicesRejectedAsExpected: 4,
      devicesCertified: 0,
    };
    expect(faultSummaryRow('tamperedKernel', ok).pass).toBe(true);
    expect(faultSummaryRow('tamperedKernel', { ...ok, devicesRejectedAsExpected: 3 }).pass).toBe(false);
    expect(faultSummaryRow('tamperedKernel', { ...ok, devicesCertified: 1 }).pass).toBe(false);
    expect(faultSummaryRow('tamperedKernel', ok).expectedCodes).toEqual(['MEASUREMENT_MISMATCH']);
    // wrongClock must end attested.
    const clock = {
      devices: 3,
      observedCodes: { CLOCK_SKEW: 3 },
      devicesRejectedAsExpected: 3,
      devicesCertified: 3,
    };
    expect(faultSummaryRow('wrongClock', clock).pass).toBe(true);
    expect(faultSummaryRow('wrongClock', { ...clock, devicesCertified: 2 }).pass).toBe(false);
    // clonedKey: one per pair must be caught; the other may keep its certificate.
    const cloned = {
      devices: 4,
      observedCodes: { DUPLICATE_IDENTITY: 2 },
      devicesRejectedAsExpected: 2,
      devicesCertified: 2,
    };
    expect(faultSummaryRow('clonedKey', cloned).pass).toBe(true);
    expect(faultSummaryRow('clonedKey', { ...cloned, devicesRejectedAsExpected: 1 }).pass).toBe(false);
    expect(faultSummaryRow('clonedKey', { ...cloned, devicesCertified: 3 }).pass).toBe(false);
  });

  test('summary - the overall verdict needs thresholds, fault rows and no abort', () => {
    expect(makeSummary().pass).toBe(false); // one wrongClock device did not end attested
    const good = makeSummary({ faults: makeSummary().faults.filter((f) => f.profile !== 'wrongClock') });
    expect(good.pass).toBe(true);
    expect(makeSummary({ faults: good.faults, run: { ...good.run, aborted: 'SIGINT' } }).pass).toBe(false);
  });

  test('render - shows the key content with aligned columns and marks, no colour when asked', () => {
    const text = renderSummaryTable(makeSummary(), { color: false });
    expect(text).not.toContain('\x1b[');
    expect(text).toContain('sphere-fleet · quickstart · seed 42 · ✗ FAIL');
    expect(text).toContain(
      'simulated 2d of 2d at ×2,880 in 60.4s wall · 2,000 devices · shared connections (pool 4)',
    );
    expect(text).toMatch(/bootStorm\s+0s → 10s\s+2,000\s+2,000\s+1,983\s+17/);
    expect(text).toContain(
      'by code     MEASUREMENT_MISMATCH 9 · CLOCK_SKEW 3 · NONCE_REUSED 2 · NONCE_STALE 1',
    );
    expect(text).toMatch(/✓\s+tamperedKernel\s+MEASUREMENT_MISMATCH\s+MEASUREMENT_MISMATCH×9\s+4\/4\s+0\/4/);
    expect(text).toMatch(/✓\s+replay\s+NONCE_REUSED\|NONCE_STALE\s+NONCE_REUSED×2 NONCE_STALE×1/);
    expect(text).toMatch(/✗\s+wrongClock\s+CLOCK_SKEW\s+CLOCK_SKEW×3\s+3\/3\s+2\/3/);
    expect(text).toMatch(/✓\s+attest_latency_ms\s+p\(99\)<500\s+\d+(\.\d+)?/);
    expect(text).toMatch(/✓\s+attest_success_rate\s+rate>0\.99\s+0\.995/);
    expect(text).toContain('6× timeout waiting for attest reply');
    for (const line of text.split('\n')) expect(line.length, line).toBeLessThanOrEqual(100);

    // Columns line up: the right-aligned "caught" header ends where the caught counts end.
    const lines = text.split('\n');
    const header = lines.find((l) => l.includes('profile') && l.includes('caught')) ?? '';
    for (const profile of ['tamperedKernel', 'replay', 'wrongClock']) {
      const row = lines.find((l) => l.includes(profile)) ?? '';
      expect(/\d\/\d/.exec(row)?.index ?? -1).toBe(header.indexOf('caught') + 'caught'.length - 3);
    }
  });

  test('render - latency table shows percentiles and "-" for no data', () => {
    const empty = new LatencyRecorder().stats();
    const text = renderSummaryTable(
      makeSummary({ latency: { challenge: empty, attest: latency([100, 200]) } }),
      { color: false },
    );
    expect(text).toMatch(/challenge\s+0\s+-\s+-\s+-\s+-\s+-/);
    expect(text).toMatch(/attest\s+2\s+\d+\s+\d+\s+\d+\s+\d+\s+200/);
  });

  test('render - colour uses ANSI codes only when enabled', () => {
    const text = renderSummaryTable(makeSummary(), { color: true });
    expect(text).toMatch(/\x1b\[31m✗\x1b\[0m\s+wrongClock/);
    expect(text).toMatch(/\x1b\[32m✓\x1b\[0m\s+tamperedKernel/);
  });

  test('render - narrow terminals shrink the code columns, not the numbers', () => {
    const text = renderSummaryTable(makeSummary(), { color: false, width: 80 });
    for (const line of text.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
    expect(text).toMatch(/✓ tamperedKernel\s+MEASUREMENT_\S*\s+MEASUREMENT_\S*…\s+4\/4\s+0\/4/);
  });

  test('render - long code lists are cut to keep lines within the width', () => {
    const many = Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [`SOME_LONG_ERROR_CODE_${i}`, i + 1]),
    );
    const summary = makeSummary({
      attestations: { ...makeSummary().attestations, byCode: many },
      faults: [
        faultSummaryRow('unendorsed', {
          devices: 3,
          observedCodes: many,
          devicesRejectedAsExpected: 0,
          devicesCertified: 0,
        }),
      ],
    });
    const text = renderSummaryTable(summary, { color: false, width: 100 });
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
    expect(text).toContain('…');
    expect(text).toContain('SOME_LONG_ERROR_CODE_0 1'); // wrapped, not dropped
  });

  test('rollouts - outcomes sum over waves; metrics count final states, expectations and update outcomes', () => {
    expect(rolloutOutcomes(rolloutRow())).toEqual({ succeeded: 0, failed: 15, rolledBack: 59 });
    expect(rolloutOutcomes(goodRollout)).toEqual({ succeeded: 489, failed: 1, rolledBack: 1 });
    expect(rolloutMetrics([])).toEqual({});
    const unmet = rolloutRow({ name: 'x', state: 'running', expect: 'completed', expectationMet: false });
    const unjudged = rolloutRow({
      name: 'y',
      state: 'not-started',
      waves: [],
      expect: null,
      expectationMet: null,
    });
    expect(rolloutMetrics([rolloutRow(), goodRollout, unmet, unjudged])).toEqual({
      rollouts_completed: { count: 1 },
      rollouts_halted: { count: 1 },
      rollout_expectations_met: { rate: 2 / 3 },
      update_success_rate: { rate: (0 + 489 + 0) / (74 + 491 + 74) },
    });
    // No expectation and no final device outcome: those rates have no data.
    expect(rolloutMetrics([unjudged])).toEqual({
      rollouts_completed: { count: 0 },
      rollouts_halted: { count: 0 },
    });
  });

  test('rollouts - an unmet expectation fails the run; rollouts without one never do', () => {
    const faults = makeSummary().faults.filter((f) => f.profile !== 'wrongClock');
    expect(makeSummary({ faults, rollouts: [rolloutRow(), goodRollout] }).pass).toBe(true);
    const unmet = rolloutRow({ state: 'completed', haltReason: null, expectationMet: false });
    expect(makeSummary({ faults, rollouts: [unmet, goodRollout] }).pass).toBe(false);
    const unjudged = rolloutRow({ state: 'running', expect: null, expectationMet: null });
    expect(makeSummary({ faults, rollouts: [unjudged] }).pass).toBe(true);
  });

  test('render - the Rollouts table: expectation mark, image, state, wave reached, outcomes, halt reason', () => {
    const failed = rolloutRow({
      name: 'late-app',
      state: 'not-started',
      currentWave: 0,
      waves: [],
      haltReason: null,
      expectationMet: false,
      deploymentId: null,
      error: 'CreateDeployment failed: no such image',
    });
    const unjudged = rolloutRow({ name: 'os', expect: null, expectationMet: null, state: 'running' });
    const text = renderSummaryTable(
      makeSummary({ rollouts: [rolloutRow(), goodRollout, failed, unjudged] }),
      {
        color: false,
      },
    );
    expect(text).toContain('\nRollouts\n');
    expect(text).toMatch(/rollout\s+image\s+state\s+wave\s+ok\s+failed\s+rolled back\s+halt reason/);
    expect(text).toMatch(/✓ bad-app\s+blinky 1\.1\.0\s+halted\s+2\/3\s+0\s+15\s+59\s+error-count/);
    expect(text).toMatch(/✓ good-app\s+blinky 1\.2\.0\s+completed\s+3\/3\s+489\s+1\s+1\n/);
    expect(text).toMatch(
      /✗ late-app\s+blinky 1\.1\.0\s+not-started \(expected[^/]*\s0\/3\s+0\s+0\s+0\s+error \(below\)/,
    );
    expect(text).toContain('\n  late-app: CreateDeployment failed: no such image\n');
    expect(text).toMatch(/· os\s+blinky 1\.1\.0\s+running\s+2\/3/);
    const wrong = rolloutRow({ state: 'completed', currentWave: 3, haltReason: null, expectationMet: false });
    expect(renderSummaryTable(makeSummary({ rollouts: [wrong] }), { color: false })).toMatch(
      /✗ bad-app\s+blinky 1\.1\.0\s+completed \(expected halted\)\s+3\/3/,
    );
    for (const line of text.split('\n')) expect(line.length, line).toBeLessThanOrEqual(100);
    // Rollouts come after fault profiles and before thresholds; none without rollouts.
    expect(text.indexOf('Fault profiles')).toBeLessThan(text.indexOf('Rollouts'));
    expect(text.indexOf('Rollouts')).toBeLessThan(text.indexOf('Thresholds'));
    expect(renderSummaryTable(makeSummary(), { color: false })).not.toContain('Rollouts');
    // The device side, below the table: postponed OS updates and final reports, largest first.
    const sides = renderSummaryTable(
      makeSummary({
        rollouts: [rolloutRow()],
        updates: {
          checks: 2345,
          checksFailed: 3,
          checkFailures: { DUPLICATE_IDENTITY: 2, TIMEOUT: 1 },
          bytes: 5 * 1024 * 1024,
          reports: {
            downloading: 600,
            succeeded: 500,
            'failed:INSTALL_FAILED': 2,
            'succeeded:ALREADY_INSTALLED': 80,
          },
          reportRetries: 4,
          osDeferrals: 17,
        },
      }),
      { color: false },
    );
    expect(sides).toContain(
      '  device side: 2,345 update checks (3 failed: DUPLICATE_IDENTITY 2, TIMEOUT 1) · 5MiB received\n' +
        '               17 OS updates postponed · 4 reports repeated\n',
    );
    expect(sides).toContain(
      '  final reports: succeeded 500 · succeeded:ALREADY_INSTALLED 80 · failed:INSTALL_FAILED 2\n',
    );
    const colored = renderSummaryTable(makeSummary({ rollouts: [rolloutRow(), failed] }), { color: true });
    expect(colored).toMatch(/\x1b\[32m✓\x1b\[0m bad-app/);
    expect(colored).toMatch(/\x1b\[31m✗\x1b\[0m late-app/);
    const narrow = renderSummaryTable(makeSummary({ rollouts: [rolloutRow(), goodRollout, failed] }), {
      color: false,
      width: 80,
    });
    for (const line of narrow.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
    expect(narrow).toMatch(/2\/3\s+0\s+15\s+59/);
  });

  test('json - writes pretty JSON atomically, creating directories, NaN as null', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'summary-'));
    const path = join(dir, 'nested', 'run', 'summary.json');
    const summary = makeSummary({ run: { ...makeSummary().run, timeScale: Number.NaN } });
    await writeSummaryJson(path, summary);
    const text = await readFile(path, 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    const parsed = JSON.parse(text) as RunSummary;
    expect(parsed.run.timeScale).toBeNull();
    expect(parsed.faults.map((f) => f.profile)).toEqual(['tamperedKernel', 'replay', 'wrongClock']);
    expect(parsed.thresholds.results).toHaveLength(2);
    expect(parsed.rollouts).toEqual([]);
    await writeSummaryJson(path, makeSummary({ rollouts: [rolloutRow()] }));
    const withRollouts = JSON.parse(await readFile(path, 'utf8')) as RunSummary;
    expect(withRollouts.rollouts).toEqual([rolloutRow()]);
  });
});
