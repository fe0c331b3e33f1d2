import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createRng } from '../../../actors/runtime/index.js';
import type { Rng } from '../../../actors/runtime/index.js';

const take = (r: Rng, n: number): number[] => Array.from({ length: n }, () => r.next());

describe('rng', () => {
  it('rng - same seed gives the same sequence; numeric and string seeds agree', () => {
    expect(take(createRng('fleet-1'), 50)).toEqual(take(createRng('fleet-1'), 50));
    expect(take(createRng(42), 10)).toEqual(take(createRng('42'), 10));
    expect(take(createRng('fleet-1'), 10)).not.toEqual(take(createRng('fleet-2'), 10));
  });

  it('rng - known first outputs are stable across versions (golden values)', () => {
    const r = createRng('golden');
    const first = [r.int(1_000_000), r.int(1_000_000), r.int(1_000_000)];
    // Pinned: changing the algorithm or seeding breaks recorded scenarios.
    expect(first).toEqual(GOLDEN);
  });

  it('rng - fork does not consume or shift the parent stream', () => {
    const a = createRng('seed');
    const b = createRng('seed');
    a.next();
    b.next();
    a.fork('device:1');
    a.fork('device:2').next();
    expect(take(a, 20)).toEqual(take(b, 20));
  });

  it('rng - forks are deterministic per label and independent of fork order and parent position', () => {
    const p1 = createRng('seed');
    const p2 = createRng('seed');
    take(p2, 7);
    const x1 = p1.fork('device:7');
    p2.fork('device:1');
    const x2 = p2.fork('device:7');
    expect(take(x1, 10)).toEqual(take(x2, 10));
    expect(take(p1.fork('device:7'), 5)).not.toEqual(take(p1.fork('device:8'), 5));
    expect(take(p1.fork('device:7'), 5)).not.toEqual(take(createRng('seed'), 5));
  });

  it('rng - next is in [0,1) and roughly uniform across 10 buckets', () => {
    const r = createRng('uniform');
    const n = 100_000;
    const buckets = new Array<number>(10).fill(0);
    let outOfRange = 0;
    for (let i = 0; i < n; i++) {
      const x = r.next();
      if (!(x >= 0 && x < 1)) outOfRange++;
      else buckets[Math.floor(x * 10)]!++;
    }
    expect(outOfRange).toBe(0);
    // chi-square with 9 degrees of freedom; 27.88 is the p=0.001 critical value
    const expected = n / 10;
    const chi2 = buckets.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(27.88);
  });

  it('rng - int stays in range and pick returns members (property)', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 2 ** 40 }), (seed, max) => {
        const r = createRng(seed);
        for (let i = 0; i < 20; i++) {
          const v = r.int(max);
          if (!(Number.isInteger(v) && v >= 0 && v < max)) return false;
        }
        const items = ['a', 'b', 'c'];
        return items.includes(r.pick(items));
      }),
    );
  });

  it('rng - bytes has the requested length and is deterministic', () => {
    expect(createRng(1).bytes(13)).toEqual(createRng(1).bytes(13));
    expect(createRng(1).bytes(13)).toHaveLength(13);
    expect(createRng(1).bytes(0)).toHaveLength(0);
  });

  it('rng - rejects invalid arguments', () => {
    const r = createRng('x');
    expect(() => r.int(0)).toThrow(RangeError);
    expect(() => r.int(1.5)).toThrow(RangeError);
    expect(() => r.pick([])).toThrow(RangeError);
  });
});

const GOLDEN = [530189, 587150, 452123];
