import { describe, expect, it } from 'vitest';
import {
  MAX_EVENTS_PER_REPORT,
  MAX_LISTED_PROBLEMS,
  MAX_REPORT_SPAN_MS,
  errorEventProblems,
  validateErrorReport,
} from '../../../services/error-reports/index.js';
import type { ErrorReportProblemCode } from '../../../services/error-reports/index.js';
import { T0, deviceId, event, report } from './harness.js';

const DEVICE = deviceId(1);

function valid(): Record<string, unknown> {
  return { ...report(DEVICE, 'er-1', [event(T0), event(T0 + 1000, { kind: 'app-exit', exitCode: 3 })]) };
}

function codesOf(input: unknown): { code: ErrorReportProblemCode; field: string }[] {
  const r = validateErrorReport(input, { deviceId: DEVICE });
  return r.ok ? [] : r.error.problems.map(({ code, field }) => ({ code, field }));
}

describe('error report model', () => {
  it('error report model - accepts a valid report and keeps only the known fields', () => {
    const input = { ...valid(), extra: 'x', events: [{ ...event(T0), junk: 1 }] };
    const r = validateErrorReport(input, { deviceId: DEVICE });
    expect(r).toEqual({ ok: true, value: { ...report(DEVICE, 'er-1', [event(T0)]), toMs: T0 + 1000 } });
    expect(r.ok && Object.keys(r.value.events[0] ?? {})).not.toContain('junk');
  });

  it('error report model - accepts exactly 1,000 events over exactly 14 days', () => {
    const events = Array.from({ length: MAX_EVENTS_PER_REPORT }, (_, i) =>
      event(T0 + Math.floor((i * MAX_REPORT_SPAN_MS) / (MAX_EVENTS_PER_REPORT - 1))),
    );
    const r = report(DEVICE, 'er-1', events);
    expect(r.toMs - r.fromMs).toBe(MAX_REPORT_SPAN_MS);
    expect(validateErrorReport(r).ok).toBe(true);
  });

  it.each<[string, (r: Record<string, unknown>) => unknown, ErrorReportProblemCode, string]>([
    ['not an object', () => 'report', 'MALFORMED', 'report'],
    ['a bad report id', (r) => ({ ...r, reportId: 'er 1' }), 'BAD_REPORT_ID', 'reportId'],
    ['a long report id', (r) => ({ ...r, reportId: 'x'.repeat(129) }), 'BAD_REPORT_ID', 'reportId'],
    ['a bad device id', (r) => ({ ...r, deviceId: 'abc' }), 'BAD_DEVICE_ID', 'deviceId'],
    ['another device', (r) => ({ ...r, deviceId: deviceId(2) }), 'DEVICE_MISMATCH', 'deviceId'],
    [
      '1,001 events',
      (r) => ({ ...r, events: Array.from({ length: 1001 }, () => event(T0)), toMs: T0 }),
      'TOO_MANY_EVENTS',
      'events',
    ],
    ['more than 14 days', (r) => ({ ...r, toMs: T0 + MAX_REPORT_SPAN_MS + 1 }), 'SPAN_TOO_LONG', 'toMs'],
    ['toMs before fromMs', (r) => ({ ...r, fromMs: T0 + 2000 }), 'TIME_OUT_OF_ORDER', 'toMs'],
    ['a fractional time', (r) => ({ ...r, fromMs: T0 + 0.5 }), 'TIME_OUT_OF_RANGE', 'fromMs'],
    ['a time beyond Date', (r) => ({ ...r, toMs: 8.64e15 + 1 }), 'TIME_OUT_OF_RANGE', 'toMs'],
    ['negative dropped events', (r) => ({ ...r, droppedEvents: -1 }), 'MALFORMED', 'droppedEvents'],
    ['events not an array', (r) => ({ ...r, events: {} }), 'MALFORMED', 'events'],
    ['an event not an object', (r) => ({ ...r, events: [null] }), 'MALFORMED', 'events[0]'],
    [
      'an unknown kind',
      (r) => ({ ...r, events: [event(T0, { kind: 'oops' as 'os-crash' })] }),
      'UNKNOWN_KIND',
      'events[0].kind',
    ],
    [
      'exit code 256',
      (r) => ({ ...r, events: [event(T0, { exitCode: 256 })] }),
      'EXIT_CODE_OUT_OF_RANGE',
      'events[0].exitCode',
    ],
    [
      'exit code -1',
      (r) => ({ ...r, events: [event(T0, { exitCode: -1 })] }),
      'EXIT_CODE_OUT_OF_RANGE',
      'events[0].exitCode',
    ],
    [
      'exit code 1.5',
      (r) => ({ ...r, events: [event(T0, { exitCode: 1.5 })] }),
      'EXIT_CODE_OUT_OF_RANGE',
      'events[0].exitCode',
    ],
    [
      'an empty component',
      (r) => ({ ...r, events: [event(T0, { component: '' })] }),
      'BAD_STRING',
      'events[0].component',
    ],
    [
      'a long component',
      (r) => ({ ...r, events: [event(T0, { component: 'c'.repeat(65) })] }),
      'BAD_STRING',
      'events[0].component',
    ],
    [
      'a control character',
      (r) => ({ ...r, events: [event(T0, { version: '1\n2' })] }),
      'BAD_STRING',
      'events[0].version',
    ],
    [
      'an app name with a space',
      (r) => ({ ...r, events: [event(T0, { component: 'my app' })] }),
      'BAD_STRING',
      'events[0].component',
    ],
    [
      'an empty version',
      (r) => ({ ...r, events: [event(T0, { version: '' })] }),
      'BAD_STRING',
      'events[0].version',
    ],
    [
      'a long detail',
      (r) => ({ ...r, events: [event(T0, { detail: 'd'.repeat(201) })] }),
      'BAD_STRING',
      'events[0].detail',
    ],
    [
      'a detail not a string',
      (r) => ({ ...r, events: [{ ...event(T0), detail: 7 }] }),
      'MALFORMED',
      'events[0].detail',
    ],
    [
      'an event before fromMs',
      (r) => ({ ...r, events: [event(T0 - 1)] }),
      'TIME_OUT_OF_RANGE',
      'events[0].atMs',
    ],
    [
      'an event after toMs',
      (r) => ({ ...r, events: [event(T0 + 1001)] }),
      'TIME_OUT_OF_RANGE',
      'events[0].atMs',
    ],
    [
      'events out of order',
      (r) => ({ ...r, events: [event(T0 + 10), event(T0 + 5)] }),
      'TIME_OUT_OF_ORDER',
      'events[1].atMs',
    ],
    [
      'an os crash of an app',
      (r) => ({ ...r, events: [event(T0, { kind: 'os-crash' })] }),
      'COMPONENT_MISMATCH',
      'events[0].component',
    ],
    [
      'an app exit of the os',
      (r) => ({ ...r, events: [event(T0, { kind: 'app-exit', component: 'os' })] }),
      'COMPONENT_MISMATCH',
      'events[0].component',
    ],
  ])('error report model - refuses %s', (_, mutate, code, field) => {
    const input = mutate(valid());
    expect(codesOf(input)).toContainEqual({ code, field });
    const r = validateErrorReport(input, { deviceId: DEVICE });
    expect(!r.ok && r.error.code).toBe('ERROR_REPORT_INVALID');
    expect(!r.ok && r.error.message).toContain(`${field}:`);
  });

  it('error report model - accepts planned events of the os and of apps', () => {
    const events = [
      event(T0, { kind: 'update-failed', component: 'os', detail: 'UPDATE_VERIFICATION_FAILED' }),
      event(T0, { kind: 'update-failed', component: 'thermostat' }),
      event(T0, { kind: 'attestation-failed', component: 'os', detail: 'NONCE_STALE' }),
      event(T0, { kind: 'os-crash', component: 'os', version: '24.10+build.3' }),
    ];
    expect(codesOf(report(DEVICE, 'er-1', events))).toEqual([]);
  });

  it('error report model - lists at most 20 problems of a hostile report and says there were more', () => {
    const events = Array.from({ length: 500 }, () => ({
      kind: 'x',
      component: '',
      version: 1,
      exitCode: 999,
      atMs: -1,
      detail: null,
    }));
    const r = validateErrorReport({ ...valid(), events });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.problems).toHaveLength(MAX_LISTED_PROBLEMS);
      expect(r.error.truncated).toBe(true);
      expect(r.error.message).toMatch(/\(and more\)$/);
    }
  });

  it('error report model - errorEventProblems is empty for a valid event', () => {
    expect(errorEventProblems(event(T0))).toEqual([]);
    expect(errorEventProblems({ ...event(T0), exitCode: 300 }).map((p) => p.field)).toEqual([
      'event.exitCode',
    ]);
  });
});
