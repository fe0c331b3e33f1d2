import { describe, expect, it } from 'vitest';
import {
  DAY_MS,
  ErrorRecorder,
  ErrorRecorderOptionsError,
  InvalidErrorEventError,
  MAX_EVENTS_PER_REPORT,
  MAX_REPORT_SPAN_MS,
  validateErrorReport,
} from '../../../services/error-reports/index.js';
import type { ErrorReport } from '../../../services/error-reports/index.js';
import { HOUR_MS, T0, day, deviceId, event } from './harness.js';

const DEVICE = deviceId(7);

/** Acknowledges every report `next(nowMs)` hands out until there is none; returns them in order. */
function drain(rec: ErrorRecorder, nowMs: number): ErrorReport[] {
  const out: ErrorReport[] = [];
  for (let r = rec.next(nowMs); r !== null; r = rec.next(nowMs)) {
    out.push(r);
    expect(rec.acknowledged(r.reportId)).toBe(true);
  }
  return out;
}

function expectWithinLimits(reports: readonly ErrorReport[]): void {
  for (const r of reports) {
    expect(validateErrorReport(r, { deviceId: DEVICE })).toEqual({ ok: true, value: r });
    expect(r.events.length).toBeLessThanOrEqual(MAX_EVENTS_PER_REPORT);
    expect(r.toMs - r.fromMs).toBeLessThanOrEqual(MAX_REPORT_SPAN_MS);
  }
}

describe('error recorder', () => {
  it('error recorder - seals once per period and repeats the same report until acknowledged', () => {
    const rec = new ErrorRecorder({ deviceId: DEVICE });
    expect(rec.next(day(0))).toBeNull();
    rec.record(event(day(0) + 3 * HOUR_MS, { detail: 'b' }));
    rec.record(event(day(0) + 1 * HOUR_MS, { detail: 'a' }));
    expect(rec.next(day(0) + 12 * HOUR_MS)).toBeNull(); // sealed at day 0, nothing then
    const first = rec.next(day(1));
    expect(first).toEqual({
      reportId: 'er-1',
      deviceId: DEVICE,
      fromMs: day(0) + HOUR_MS,
      toMs: day(0) + 3 * HOUR_MS,
      events: [event(day(0) + HOUR_MS, { detail: 'a' }), event(day(0) + 3 * HOUR_MS, { detail: 'b' })],
      droppedEvents: 0,
    });
    rec.record(event(day(1) + HOUR_MS));
    expect(rec.next(day(1) + 2 * HOUR_MS)).toBe(first);
    expect(rec.next(day(2) + 2 * HOUR_MS)).toBe(first); // a retry days later: still er-1
    expect(rec.pending()).toBe(3);
    expect(rec.acknowledged('er-2')).toBe(false);
    expect(rec.acknowledged('er-1')).toBe(true);
    expect(rec.acknowledged('er-1')).toBe(false);
    // The event of day 1 was sealed at day 2's call: it comes at once.
    expect(rec.next(day(2) + 3 * HOUR_MS)?.reportId).toBe('er-2');
  });

  it('error recorder - events recorded after a seal wait for the next period', () => {
    const rec = new ErrorRecorder({ deviceId: DEVICE });
    rec.record(event(day(0)));
    const r1 = rec.next(day(0) + HOUR_MS);
    expect(r1?.events).toHaveLength(1);
    rec.record(event(day(0) + 2 * HOUR_MS));
    rec.acknowledged('er-1');
    expect(rec.next(day(0) + 3 * HOUR_MS)).toBeNull();
    expect(rec.stats()).toMatchObject({ openEvents: 1, sealedEvents: 0, inFlightEvents: 0 });
    expect(rec.next(day(1) + HOUR_MS)?.events).toEqual([event(day(0) + 2 * HOUR_MS)]);
  });

  it('error recorder - splits at 1,000 events', () => {
    const rec = new ErrorRecorder({ deviceId: DEVICE });
    for (let i = 0; i < 2500; i++) rec.record(event(T0 + i * 1000, { detail: `e${i}` }));
    const reports = drain(rec, day(1));
    expect(reports.map((r) => [r.reportId, r.events.length])).toEqual([
      ['er-1', 1000],
      ['er-2', 1000],
      ['er-3', 500],
    ]);
    expect(reports.flatMap((r) => r.events.map((e) => e.detail))).toEqual(
      Array.from({ length: 2500 }, (_, i) => `e${i}`),
    );
    expectWithinLimits(reports);
  });

  it('error recorder - splits at 14 days', () => {
    const rec = new ErrorRecorder({ deviceId: DEVICE });
    for (let d = 0; d < 30; d++) rec.record(event(day(d)));
    const reports = drain(rec, day(30));
    expect(reports.map((r) => r.events.length)).toEqual([15, 15]); // days 0..14 span exactly 14 days
    expect(reports[0]?.toMs).toBe(day(14));
    expect(reports[1]?.fromMs).toBe(day(15));
    expectWithinLimits(reports);
  });

  it('error recorder - a device offline for 30 days uploads several ordered reports, each within the limits', () => {
    const rec = new ErrorRecorder({ deviceId: DEVICE });
    let n = 0;
    let attempt: ErrorReport | null = null;
    for (let d = 0; d < 30; d++) {
      // 60 events a day, one every 20 minutes after 02:00; the daily upload fails (no ack).
      for (let k = 0; k < 60; k++)
        rec.record(event(day(d) + 2 * HOUR_MS + k * 20 * 60 * 1000, { detail: `e${n++}` }));
      const r = rec.next(day(d + 1));
      if (attempt !== null) expect(r).toBe(attempt);
      attempt = r;
    }
    expect(attempt?.reportId).toBe('er-1');
    const reports = drain(rec, day(30) + HOUR_MS);
    expect(reports.length).toBeGreaterThan(2);
    expect(reports.map((r) => r.reportId)).toEqual(reports.map((_, i) => `er-${i + 1}`));
    expect(reports.flatMap((r) => r.events.map((e) => e.detail))).toEqual(
      Array.from({ length: n }, (_, i) => `e${i}`),
    );
    for (let i = 1; i < reports.length; i++)
      expect(reports[i]?.fromMs).toBeGreaterThanOrEqual(reports[i - 1]?.toMs ?? Infinity);
    expectWithinLimits(reports);
    expect(rec.pending()).toBe(0);
  });

  it('error recorder - a full buffer drops the oldest waiting events and counts them in the next report', () => {
    const rec = new ErrorRecorder({ deviceId: DEVICE });
    for (let i = 0; i < 12_000; i++) rec.record(event(T0 + i * 1000, { detail: `e${i}` }));
    expect(rec.pending()).toBe(10_000);
    expect(rec.stats().droppedTotal).toBe(2000);
    const reports = drain(rec, day(1));
    expect(reports.map((r) => r.droppedEvents)).toEqual([2000, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(reports[0]?.events[0]?.detail).toBe('e2000');
    expect(reports.reduce((n, r) => n + r.events.length, 0)).toBe(10_000);
  });

  it('error recorder - never drops from the report in flight', () => {
    const rec = new ErrorRecorder({ deviceId: DEVICE, maxBufferedEvents: 5 });
    for (let i = 0; i < 3; i++) rec.record(event(T0 + i, { detail: `a${i}` }));
    const inFlight = rec.next(day(0));
    for (let i = 0; i < 8; i++) rec.record(event(T0 + HOUR_MS + i, { detail: `b${i}` }));
    expect(rec.next(day(0) + HOUR_MS)).toBe(inFlight);
    expect(inFlight?.events.map((e) => e.detail)).toEqual(['a0', 'a1', 'a2']);
    expect(rec.pending()).toBe(3 + 5);
    rec.acknowledged('er-1');
    const next = rec.next(day(1) + HOUR_MS);
    expect(next?.droppedEvents).toBe(3);
    expect(next?.events.map((e) => e.detail)).toEqual(['b3', 'b4', 'b5', 'b6', 'b7']);
  });

  it('error recorder - drops sealed events too, keeping the seal boundary', () => {
    const rec = new ErrorRecorder({ deviceId: DEVICE, maxBufferedEvents: 4 });
    rec.record(event(T0, { detail: 's0' }));
    rec.record(event(T0 + 1, { detail: 's1' }));
    expect(rec.next(day(0))?.reportId).toBe('er-1'); // both in flight
    rec.record(event(T0 + 2, { detail: 's2' }));
    rec.record(event(T0 + 3, { detail: 's3' }));
    expect(rec.next(day(1))?.reportId).toBe('er-1'); // seals s2, s3
    for (let i = 0; i < 3; i++) rec.record(event(T0 + 10 + i, { detail: `o${i}` })); // the third drops s2
    expect(rec.stats()).toMatchObject({ sealedEvents: 1, openEvents: 3, droppedTotal: 1 });
    rec.acknowledged('er-1');
    const r2 = rec.next(day(1) + 1);
    expect(r2).toMatchObject({ reportId: 'er-2', droppedEvents: 1 });
    expect(r2?.events.map((e) => e.detail)).toEqual(['s3']);
  });

  it('error recorder - refuses an invalid event and truncates a long detail', () => {
    const rec = new ErrorRecorder({ deviceId: DEVICE });
    expect(() => rec.record(event(T0, { exitCode: 256 }))).toThrow(InvalidErrorEventError);
    expect(() => rec.record(event(T0, { kind: 'os-crash', component: 'thermostat' }))).toThrow(/os-crash/);
    expect(() => rec.record(event(-1))).toThrow(/atMs/);
    rec.record(event(T0, { detail: 'x'.repeat(500) }));
    expect(rec.next(day(1))?.events[0]?.detail).toHaveLength(200);
  });

  it('error recorder - a snapshot restores the sequence, the report in flight and the buffer', () => {
    const rec = new ErrorRecorder({ deviceId: DEVICE, idPrefix: 'boot-', maxBufferedEvents: 50 });
    rec.record(event(T0));
    const inFlight = rec.next(day(0));
    rec.record(event(T0 + HOUR_MS));
    const restored = ErrorRecorder.restore(
      JSON.parse(JSON.stringify(rec.snapshot())) as ReturnType<typeof rec.snapshot>,
    );
    expect(restored.snapshot()).toEqual(rec.snapshot());
    expect(restored.next(day(0) + 1)).toEqual(inFlight);
    restored.acknowledged('boot-1');
    expect(restored.next(day(1))?.reportId).toBe('boot-2');
    expect(() => ErrorRecorder.restore({ ...rec.snapshot(), nextSeq: 0 })).toThrow(ErrorRecorderOptionsError);
  });

  it('error recorder - refuses options that cannot work', () => {
    expect(() => new ErrorRecorder({ deviceId: DEVICE, idPrefix: 'a b' })).toThrow(ErrorRecorderOptionsError);
    expect(() => new ErrorRecorder({ deviceId: DEVICE, maxBufferedEvents: 0 })).toThrow(/maxBufferedEvents/);
    expect(() => new ErrorRecorder({ deviceId: DEVICE, periodMs: 0.5 })).toThrow(/periodMs/);
    expect(() => new ErrorRecorder({ deviceId: 'nope' as typeof DEVICE })).toThrow(/deviceId/);
    expect(() => new ErrorRecorder({ deviceId: DEVICE }).next(Number.NaN)).toThrow(RangeError);
    expect(new ErrorRecorder({ deviceId: DEVICE, periodMs: DAY_MS / 2 }).periodMs).toBe(DAY_MS / 2);
  });
});
