import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  LATENCY_RELATIVE_ERROR,
  LatencyRecorder,
  MIN_TRACKABLE_MS,
  percentileOfSorted,
} from '../../../loadgen/scenario/index.js';

/** The documented bound: 1% relative plus MIN_TRACKABLE_MS absolute (tiny float slack). */
function withinBound(estimate: number, exact: number): boolean {
  return Math.abs(estimate - exact) <= 0.01 * Math.abs(exact) + MIN_TRACKABLE_MS + 1e-9;
}

const latency = fc.oneof(
  fc.double({ min: 0, max: 60_000, noNaN: true, noDefaultInfinity: true }),
  fc.double({ min: 0, max: 5, noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: 0, max: 2_000 }),
);

describe('latency recorder', () => {
  test('recorder - the relative error constant is within the documented 1%', () => {
    expect(LATENCY_RELATIVE_ERROR).toBeLessThanOrEqual(0.01);
  });

  test('recorder - percentiles stay within the error bound of a sorted-array oracle', () => {
    fc.assert(
      fc.property(
        fc.array(latency, { minLength: 1, maxLength: 400 }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        (samples, p) => {
          const recorder = new LatencyRecorder();
          for (const s of samples) recorder.record(s);
          const sorted = [...samples].sort((a, b) => a - b);
          for (const q of [p, 0, 50, 90, 95, 99, 99.9, 100]) {
            const estimate = recorder.percentile(q);
            const exact = percentileOfSorted(sorted, q);
            if (!withinBound(estimate, exact)) return false;
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });

  test('recorder - count, mean, min and max are exact', () => {
    fc.assert(
      fc.property(fc.array(latency, { minLength: 1, maxLength: 200 }), (samples) => {
        const recorder = new LatencyRecorder();
        for (const s of samples) recorder.record(s);
        const sum = samples.reduce((a, b) => a + b, 0);
        return (
          recorder.count === samples.length &&
          Math.abs(recorder.mean - sum / samples.length) <= 1e-9 * Math.max(1, sum) &&
          recorder.min === Math.min(...samples) &&
          recorder.max === Math.max(...samples)
        );
      }),
    );
  });

  test('recorder - merging equals recording everything in one recorder, also via snapshots', () => {
    fc.assert(
      fc.property(fc.array(latency, { maxLength: 150 }), fc.array(latency, { maxLength: 150 }), (a, b) => {
        const left = new LatencyRecorder();
        const right = new LatencyRecorder();
        const all = new LatencyRecorder();
        for (const s of a) {
          left.record(s);
          all.record(s);
        }
        for (const s of b) {
          right.record(s);
          all.record(s);
        }
        const viaSnapshot = LatencyRecorder.fromSnapshot(
          JSON.parse(JSON.stringify(left.snapshot())) as ReturnType<LatencyRecorder['snapshot']>,
        );
        viaSnapshot.merge(right.snapshot());
        left.merge(right);
        for (const merged of [left, viaSnapshot]) {
          if (merged.count !== all.count) return false;
          for (const q of [0, 25, 50, 99, 100]) {
            const x = merged.percentile(q);
            const y = all.percentile(q);
            if (!(Number.isNaN(x) && Number.isNaN(y)) && Math.abs(x - y) > 1e-9 * Math.max(1, y))
              return false;
          }
        }
        return true;
      }),
    );
  });

  test('recorder - an empty recorder reports NaN and empty stats', () => {
    const recorder = new LatencyRecorder();
    expect(recorder.count).toBe(0);
    expect(recorder.percentile(99)).toBeNaN();
    expect(recorder.mean).toBeNaN();
    expect(recorder.min).toBeNaN();
    expect(recorder.stats()).toEqual({
      count: 0,
      mean: null,
      min: null,
      p50: null,
      p90: null,
      p95: null,
      p99: null,
      max: null,
    });
  });

  test('recorder - rejects invalid samples and percentiles', () => {
    const recorder = new LatencyRecorder();
    expect(() => recorder.record(-1)).toThrow(RangeError);
    expect(() => recorder.record(Number.NaN)).toThrow(RangeError);
    expect(() => recorder.record(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    recorder.record(1);
    expect(() => recorder.percentile(101)).toThrow(RangeError);
    expect(() => recorder.percentile(-0.1)).toThrow(RangeError);
  });

  test('recorder - memory stays bounded by buckets, not samples', () => {
    const recorder = new LatencyRecorder();
    for (let i = 0; i < 200_000; i++) recorder.record((i % 10_000) * 0.37 + 0.5);
    expect(recorder.count).toBe(200_000);
    expect(recorder.snapshot().buckets.length).toBeLessThan(600);
  });
});
