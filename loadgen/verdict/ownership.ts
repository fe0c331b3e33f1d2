/**
 * Checker: no partition was acted for by two shards at once. Evidence is the partition logs:
 * every append names the shard incarnation that wrote it and its tenure's fencing token (the
 * lease revision that began the tenure; tenures of a partition get increasing tokens). Once a
 * newer tenure has appended (its takeover marker, at the latest), an append of an earlier tenure
 * means its owner still acted after the partition had moved: two owners at once. Fencing refuses exactly
 * those appends, so with fencing on the check passes, and with it off a paused or cut-off owner
 * that wakes up and writes makes it fail.
 */

/** One partition append, as read from the journal. */
export interface PartitionAppend {
  readonly seq: number;
  readonly partition: number;
  /** The writing shard's incarnation. */
  readonly owner: string;
  readonly token: number;
  readonly devices: number;
}

/** An append by an owner the partition had already moved away from. */
export interface OwnershipViolation {
  readonly partition: number;
  readonly seq: number;
  readonly staleOwner: string;
  /** The owner that had taken over before, and where its tenure began. */
  readonly newerOwner: string;
  readonly newerSince: number;
  readonly devices: number;
}

export interface OwnershipVerdict {
  readonly pass: boolean;
  readonly partitions: number;
  readonly appends: number;
  /** Owner changes seen (takeovers). */
  readonly handovers: number;
  readonly violations: readonly OwnershipViolation[];
}

/** Checks appends (any order; sorted by sequence here) for two owners acting at once. */
export function checkSingleOwner(appends: readonly PartitionAppend[]): OwnershipVerdict {
  const sorted = [...appends].sort((a, b) => a.seq - b.seq);
  const byPartition = new Map<
    number,
    { current: string; owner: string; token: number; since: number; past: Set<string> }
  >();
  const violations: OwnershipViolation[] = [];
  let handovers = 0;
  for (const a of sorted) {
    const tenure = `${a.owner}#${a.token}`;
    const p = byPartition.get(a.partition);
    if (p === undefined) {
      byPartition.set(a.partition, {
        current: tenure,
        owner: a.owner,
        token: a.token,
        since: a.seq,
        past: new Set(),
      });
      continue;
    }
    if (tenure === p.current) continue;
    if (p.past.has(tenure) || a.token < p.token) {
      violations.push({
        partition: a.partition,
        seq: a.seq,
        staleOwner: a.owner,
        newerOwner: p.owner,
        newerSince: p.since,
        devices: a.devices,
      });
      continue;
    }
    handovers++;
    p.past.add(p.current);
    Object.assign(p, { current: tenure, owner: a.owner, token: a.token, since: a.seq });
  }
  return {
    pass: violations.length === 0,
    partitions: byPartition.size,
    appends: sorted.length,
    handovers,
    violations,
  };
}
