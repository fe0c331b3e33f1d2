import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BoundedMap, WINDOW_BUCKETS, WindowCount } from '../../../services/detection/bounded.js';

describe('detection windows', () => {
  it('detection windows - a count covers the window and forgets what left it', () => {
    const w = new WindowCount(60_000);
    expect(w.add(0)).toBe(1);
    expect(w.add(59_999)).toBe(2);
    expect(w.add(60_000)).toBe(2); // the bucket of 0 left the window
    expect(w.add(200_000)).toBe(1);
    expect(w.newestMs).toBe(204_000);
  });

  it('detection windows - an event older than every kept bucket is dropped, not counted', () => {
    const w = new WindowCount(60_000);
    w.add(600_000);
    expect(w.add(0)).toBe(0);
    expect(w.add(599_000)).toBe(1); // out of order: counted, as of its own time
    expect(w.add(600_500)).toBe(3);
  });

  it('detection windows - negative times work like any other', () => {
    const w = new WindowCount(10_000);
    expect([w.add(-5), w.add(-1), w.add(3)]).toEqual([1, 2, 3]);
  });

  it('detection windows - never more than the exact window holds, at most one bucket less', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 600_000 }), { minLength: 1, maxLength: 300 }), (raw) => {
        const times = [...raw].sort((a, b) => a - b);
        const windowMs = 60_000;
        const bucket = windowMs / WINDOW_BUCKETS;
        const w = new WindowCount(windowMs);
        times.forEach((t, i) => {
          const counted = w.add(t);
          const seen = times.slice(0, i + 1);
          const exact = seen.filter((s) => s >= t - windowMs).length;
          const loose = seen.filter((s) => s >= t - windowMs + bucket).length;
          expect(counted).toBeLessThanOrEqual(exact);
          expect(counted).toBeGreaterThanOrEqual(loose);
        });
      }),
    );
  });

  it('detection windows - a bounded map keeps the most recently set entries', () => {
    const m = new BoundedMap<string, number>(2);
    m.set('a', 1);
    m.set('b', 2);
    m.set('a', 3); // a is now the most recent
    m.set('c', 4);
    expect([...m.entries()]).toEqual([
      ['a', 3],
      ['c', 4],
    ]);
    expect(m.evicted).toBe(1);
  });
});
