import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { distPath, repoRoot, useProcesses } from '../fixtures/processes.js';
import type { RunSummary } from '../../loadgen/report/index.js';
import { findPrometheus } from '../../deploy/local/prometheus.js';
import type { PrometheusRollout, PrometheusVersionMix } from '../../deploy/local/prometheus.js';

const runsDir = mkdtempSync(join(tmpdir(), 'sphere-e2e-'));
afterAll(() => rmSync(runsDir, { recursive: true, force: true }));

const procs = useProcesses();

/** Runs the local stack on `scenario` to completion; returns its exit code and the run's summary. */
async function runStack(
  scenario: string,
  runs: string,
): Promise<{ code: number | null; summary: RunSummary; output: string }> {
  const stack = procs.spawn('stack', process.execPath, [distPath('deploy/local/stack.js'), scenario], {
    cwd: repoRoot,
    env: { ...process.env, SPHERE_RUNS_DIR: runs },
  });
  const exit = await stack.exited;
  const [run] = readdirSync(runs);
  if (run === undefined) throw new Error(`the stack wrote no run directory:\n${stack.tail(40).join('\n')}`);
  const summary = JSON.parse(readFileSync(join(runs, run, 'results', 'summary.json'), 'utf8')) as RunSummary;
  return { code: exit.code, summary, output: stack.tail(80).join('\n') };
}

describe('e2e local stack', () => {
  it('e2e - a fleet with every fault profile runs against nats-server and a shard process and passes', async () => {
    const runs = join(runsDir, 'pass');
    const { code, summary, output } = await runStack(join(repoRoot, 'test/e2e/fixtures/e2e.yaml'), runs);
    expect(code, output).toBe(0);
    expect(summary.pass).toBe(true);
    expect(summary.run.aborted).toBeNull();
    // Every profile's devices were refused with their expected code, healthy devices attested.
    expect(summary.faults.map((f) => [f.profile, f.pass])).toEqual([
      ['tamperedKernel', true],
      ['unendorsed', true],
      ['clonedKey', true],
      ['replay', true],
      ['belowMinVersion', true],
      ['wrongClock', true],
    ]);
    for (const code of [
      'MEASUREMENT_MISMATCH',
      'UNKNOWN_DEVICE',
      'DUPLICATE_IDENTITY',
      'BELOW_MIN_VERSION',
      'CLOCK_SKEW',
    ]) {
      expect(summary.attestations.byCode[code] ?? 0, code).toBeGreaterThan(0);
    }
    expect(
      (summary.attestations.byCode['NONCE_REUSED'] ?? 0) + (summary.attestations.byCode['NONCE_STALE'] ?? 0),
    ).toBeGreaterThan(0);
    expect(summary.devices.attested).toBeGreaterThanOrEqual(220);
    // Healthy devices attested at least twice (boot and the daily re-attestation).
    expect(summary.attestations.ok).toBeGreaterThanOrEqual(2 * 220);
    expect(summary.latency.attest.count).toBe(summary.attestations.ok);
  });

  it('e2e - a defective release halts in wave 2 within its budget, a good one and an OS release complete, and Prometheus recorded all three', async () => {
    const runs = join(runsDir, 'rollouts');
    const { code, summary, output } = await runStack(
      join(repoRoot, 'test/e2e/fixtures/e2e-rollouts.yaml'),
      runs,
    );
    expect(code, output).toBe(0);
    const byName = new Map(summary.rollouts.map((r) => [r.name, r]));
    const bad = byName.get('bad');
    const good = byName.get('good');
    expect(bad).toMatchObject({
      state: 'halted',
      currentWave: 2,
      haltReason: 'error-count',
      expectationMet: true,
    });
    // The error budget (8 failures) held: the halt came at the 8th; devices still in flight then
    // may add at most what wave 2 had offered.
    expect(bad?.failures).toBeGreaterThanOrEqual(8);
    expect(good).toMatchObject({ state: 'completed', currentWave: 3, expectationMet: true });
    // The OS release: devices on 24.10 rebooted into 25.10 (some after their app postponed it),
    // those already on 25.10 counted as succeeded without downloading.
    expect(byName.get('os')).toMatchObject({ state: 'completed', currentWave: 2, expectationMet: true });
    expect(summary.updates?.osDeferrals).toBeGreaterThan(0);
    expect(summary.updates?.reports['succeeded:ALREADY_INSTALLED']).toBeGreaterThan(0);
    if (findPrometheus() === null) return; // CI installs prometheus; without it the stack skips it
    const [run] = readdirSync(runs);
    const recorded = JSON.parse(
      readFileSync(join(runs, run ?? '', 'results', 'prometheus-rollouts.json'), 'utf8'),
    ) as PrometheusRollout[];
    const states = new Map(recorded.map((r) => [r.deployment, r]));
    expect(states.get(bad?.deploymentId ?? '')?.state).toBe('halted');
    expect(states.get(good?.deploymentId ?? '')?.state).toBe('completed');
    // Wave by wave: the good rollout's three waves all show succeeded devices.
    expect(
      states
        .get(good?.deploymentId ?? '')
        ?.waves.filter((w) => (w.devices['succeeded'] ?? 0) > 0)
        .map((w) => w.wave),
    ).toEqual([1, 2, 3]);
    expect(states.get(byName.get('os')?.deploymentId ?? '')?.state).toBe('completed');
    // The OS version mix moved while the rollouts ran: devices left 24.10 for 25.10.
    const mix = JSON.parse(
      readFileSync(join(runs, run ?? '', 'results', 'prometheus-versions.json'), 'utf8'),
    ) as PrometheusVersionMix[];
    const os = (v: string) => mix.find((m) => m.version === `os ${v}`);
    expect(os('24.10')?.last).toBeLessThan(os('24.10')?.most ?? 0);
    expect(os('25.10')?.last).toBeGreaterThan(0);
    expect(output).toContain('Devices by version (most at any scrape → last):');
    expect(output).toMatch(/Prometheus \(http:\/\/127\.0\.0\.1:\d+\) recorded 3 rollouts/);
  });

  it('e2e - a failed threshold makes the stack exit 99 with the failing threshold in the summary', async () => {
    const runs = join(runsDir, 'fail');
    const scenario = join(runsDir, 'impossible.yaml');
    const text = readFileSync(join(repoRoot, 'test/e2e/fixtures/e2e.yaml'), 'utf8')
      .replace('name: e2e', 'name: e2e-impossible')
      .replace('duration: 27h', 'duration: 6h')
      .replace("devices_attested: ['count>=220']", "devices_attested: ['count>=1000']");
    writeFileSync(scenario, text);
    const { code, summary } = await runStack(scenario, runs);
    expect(code).toBe(99);
    expect(summary.pass).toBe(false);
    const failed = summary.thresholds.results.filter((r) => !r.pass);
    expect(failed.map((r) => `${r.metric} ${r.expression}`)).toEqual(['devices_attested count>=1000']);
  });
});
