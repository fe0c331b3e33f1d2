import { describe, expect, test } from 'vitest';
import type { DeviceProfile } from '../../../actors/device/index.js';
import { noopMeter } from '../../../actors/runtime/index.js';
import { renderSummaryTable, summaryPasses } from '../../../loadgen/report/index.js';
import type { ErrorReportsSummary, RunSummary } from '../../../loadgen/report/index.js';
import { RunRecorder } from '../../../loadgen/runner/index.js';
import {
  LatencyRecorder,
  compileScenario,
  evaluateThresholds,
  planFleet,
} from '../../../loadgen/scenario/index.js';

const plans = planFleet(compileScenario({ name: 'r', duration: '1h', fleet: { size: 2 } }));
const profile = {} as DeviceProfile; // the recorder does not read it for these events

function summary(errorReports?: ErrorReportsSummary): RunSummary {
  const latency = new LatencyRecorder().stats();
  const base: Omit<RunSummary, 'pass'> = {
    version: 3,
    run: {
      scenario: 'errors',
      description: '',
      seed: '1',
      startedAt: '2025-01-01T00:00:00.000Z',
      wallElapsedMs: 1000,
      simulatedMs: 3_600_000,
      durationMs: 3_600_000,
      timeScale: 1,
      fleetSize: 2,
      connections: { mode: 'shared', pool: 1 },
      aborted: null,
    },
    stages: [],
    devices: { total: 2, poweredOn: 2, attested: 2, failed: 0, backoff: 0 },
    attestations: { total: 2, ok: 2, failed: 0, byResult: { ok: 2 }, byCode: {} },
    latency: { challenge: latency, attest: latency },
    faults: [],
    rollouts: [],
    updates: null,
    ...(errorReports === undefined ? {} : { errorReports }),
    thresholds: evaluateThresholds([], {}),
    errors: [],
  };
  return { ...base, pass: summaryPasses(base) };
}

describe('run report error reports', () => {
  test('report - the recorder counts recorded events by kind and uploads by result', () => {
    const recorder = new RunRecorder(plans, noopMeter);
    const track = recorder.track(0);
    for (const errorKind of ['app-crash', 'app-crash', 'update-failed'] as const)
      recorder.observe(track, profile, { kind: 'error-recorded', errorKind });
    const report = { reportId: 'er-1', events: 3 };
    recorder.observe(track, profile, { kind: 'error-report', result: 'retry', code: 'BAD_MAC', ...report });
    recorder.observe(track, profile, { kind: 'error-report', result: 'acked', code: 'OK', ...report });
    recorder.observe(track, profile, { kind: 'error-report', result: 'duplicate', code: 'OK', ...report });
    recorder.observe(track, profile, {
      kind: 'error-report',
      result: 'refused',
      code: 'MALFORMED_INPUT',
      reportId: 'er-2',
      events: 1,
    });
    expect(recorder.errorReports).toEqual({
      eventsByKind: { 'app-crash': 2, 'update-failed': 1 },
      uploads: 4,
      acknowledged: 1,
      duplicates: 1,
      refused: { MALFORMED_INPUT: 1 },
      retries: 1,
      eventsAcknowledged: 3,
    });
    // Error reports are not attestations.
    expect(recorder.attestations).toBe(0);
  });

  test('report - the summary shows error reports when there were any, and nothing otherwise', () => {
    const text = renderSummaryTable(
      summary({
        eventsByKind: { 'app-crash': 1200, 'attestation-failed': 7 },
        uploads: 30,
        acknowledged: 25,
        duplicates: 2,
        refused: { MALFORMED_INPUT: 1 },
        retries: 2,
        eventsAcknowledged: 1207,
      }),
      { color: false },
    );
    expect(text).toContain(
      'Error reports 25 stored (1,207 events) · 2 duplicates · 1 refused: MALFORMED_INPUT 1 · 2 repeated',
    );
    expect(text).toContain('  recorded    app-crash 1,200 · attestation-failed 7');
    const quiet = {
      eventsByKind: {},
      uploads: 0,
      acknowledged: 0,
      duplicates: 0,
      refused: {},
      retries: 0,
      eventsAcknowledged: 0,
    };
    expect(renderSummaryTable(summary(quiet), { color: false })).not.toContain('Error reports');
    expect(renderSummaryTable(summary(), { color: false })).not.toContain('Error reports');
  });
});
