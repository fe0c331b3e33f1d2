import { describe, expect, it } from 'vitest';
import { checkSingleOwner } from '../../../loadgen/verdict/ownership.js';
import type { PartitionAppend } from '../../../loadgen/verdict/ownership.js';

const append = (seq: number, partition: number, owner: string, devices = 1, token = 0): PartitionAppend => ({
  seq,
  partition,
  owner,
  token,
  devices,
});

describe('verdict: single owner per partition', () => {
  it('verdict - handovers in sequence pass, whatever the order appends are given in', () => {
    const v = checkSingleOwner([
      append(5, 1, 'b', 0),
      append(1, 1, 'a', 0),
      append(2, 1, 'a'),
      append(6, 1, 'b'),
      append(3, 2, 'a'),
      append(9, 1, 'c', 0),
    ]);
    expect(v).toMatchObject({ pass: true, partitions: 2, appends: 6, handovers: 2, violations: [] });
  });

  it('verdict - an earlier owner appending after a takeover fails, with the evidence', () => {
    const v = checkSingleOwner([
      append(1, 7, 'a', 0),
      append(2, 7, 'a', 3),
      append(3, 7, 'b', 0),
      append(4, 7, 'a', 2),
      append(5, 8, 'a', 1),
    ]);
    expect(v.pass).toBe(false);
    expect(v.violations).toEqual([
      { partition: 7, seq: 4, staleOwner: 'a', newerOwner: 'b', newerSince: 3, devices: 2 },
    ]);
  });

  it('verdict - a shard taking a partition back in a new tenure passes; a write of its old tenure fails', () => {
    const back = [
      append(1, 0, 'a', 0, 1),
      append(2, 0, 'b', 0, 5),
      append(3, 0, 'a', 0, 9),
      append(4, 0, 'a', 1, 9),
    ];
    expect(checkSingleOwner(back)).toMatchObject({ pass: true, handovers: 2 });
    // The same history, then a write still carrying a's first tenure (a paused process waking up).
    const stale = checkSingleOwner([...back, append(5, 0, 'a', 2, 1)]);
    expect(stale.pass).toBe(false);
    expect(stale.violations).toEqual([
      { partition: 0, seq: 5, staleOwner: 'a', newerOwner: 'a', newerSince: 3, devices: 2 },
    ]);
  });
});
