import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';

/**
 * Partition ownership by lease, as pure logic (issue 4). The device space is split into a fixed
 * number of partitions; any number of shard processes share them. Each shard announces itself
 * with a membership record that it renews; each partition has a lease record naming its owner
 * until a deadline. Both live in a JetStream KV bucket, and every write is conditional on the
 * revision the writer last read, so two shards can never both think they won the same lease: the
 * KV revision of a shard's lease is its **fencing token**, and anything the shard writes for the
 * partition carries it, so a writer holding an older token is refused.
 *
 * Who should own a partition is rendezvous hashing over the live shards: stable (a partition
 * moves only when its owner leaves, or when a shard joins that ranks higher for it), balanced
 * (each shard gets ~partitions/shards), and computed by everyone alike without coordination.
 *
 * One `plan` step per tick: renew what the shard holds and should keep, release what another live
 * shard should own now (rebalancing after a join), and take free or expired leases it should own.
 * A shard that cannot renew in time stops acting for the partition at its deadline, before anyone
 * else can take it (the taker waits for the deadline too); clocks of the processes are assumed to
 * be within `skewMs` of each other.
 */

/** A partition lease as stored: who owns it, until when (wall ms). `owner: null` = released. */
export interface LeaseRecord {
  readonly owner: string | null;
  readonly expiresAtMs: number;
}

/** A lease as read from the store, with the revision that fences it. */
export interface LeaseEntry extends LeaseRecord {
  readonly partition: number;
  readonly revision: number;
}

/** A shard's membership record as read: alive until `expiresAtMs` unless renewed. */
export interface MemberEntry {
  readonly shard: string;
  readonly expiresAtMs: number;
}

export interface LeaseConfig {
  readonly partitions: number;
  /** How long a lease (and a membership) lasts after each renewal. */
  readonly ttlMs: number;
  /** Renew when less than this is left (so a renewal can fail once and be retried in time). */
  readonly renewBeforeMs: number;
  /** Largest clock difference between shard processes; takers wait this much past a deadline. */
  readonly skewMs: number;
}

export const DEFAULT_LEASE_CONFIG: LeaseConfig = {
  partitions: 64,
  ttlMs: 6_000,
  renewBeforeMs: 4_000,
  skewMs: 500,
};

/** What a shard should write this tick; each write is conditional on `revision` (0: key must be new). */
export type LeaseAction =
  | { readonly kind: 'acquire'; readonly partition: number; readonly revision: number }
  | { readonly kind: 'renew'; readonly partition: number; readonly revision: number }
  | { readonly kind: 'release'; readonly partition: number; readonly revision: number };

/** Rendezvous weight of `shard` for `partition` (highest wins); a stable 48-bit number. */
export function rendezvousWeight(partition: number, shard: string): number {
  const h = sha256(utf8ToBytes(`${partition}/${shard}`));
  let w = 0;
  for (let i = 0; i < 6; i++) w = w * 256 + (h[i] ?? 0);
  return w;
}

/** The live shard that should own `partition` (`null` when none is live). Ties break by name. */
export function desiredOwner(partition: number, live: readonly string[]): string | null {
  let best: string | null = null;
  let bestWeight = -1;
  for (const shard of live) {
    const w = rendezvousWeight(partition, shard);
    if (w > bestWeight || (w === bestWeight && best !== null && shard < best)) {
      best = shard;
      bestWeight = w;
    }
  }
  return best;
}

/** Shards whose membership has not expired at `nowMs`, sorted. */
export function liveShards(members: readonly MemberEntry[], nowMs: number): string[] {
  return members
    .filter((m) => m.expiresAtMs > nowMs)
    .map((m) => m.shard)
    .sort();
}

/** Whether `shard` may act for the partition of `lease` at `nowMs` (its own, unexpired lease). */
export function holds(lease: LeaseEntry | undefined, shard: string, nowMs: number): boolean {
  return lease !== undefined && lease.owner === shard && nowMs < lease.expiresAtMs;
}

/**
 * This tick's writes for `shard`, from the leases and members it just read. `self` must be among
 * the live members (a shard first renews its own membership). Pure.
 */
export function plan(
  shard: string,
  leases: ReadonlyMap<number, LeaseEntry>,
  members: readonly MemberEntry[],
  nowMs: number,
  cfg: LeaseConfig,
): LeaseAction[] {
  const live = liveShards(members, nowMs);
  if (!live.includes(shard)) live.push(shard);
  const actions: LeaseAction[] = [];
  for (let p = 0; p < cfg.partitions; p++) {
    const lease = leases.get(p);
    const want = desiredOwner(p, live) === shard;
    if (lease !== undefined && holds(lease, shard, nowMs)) {
      if (!want) {
        // Another live shard ranks higher (it joined): hand over now rather than at expiry.
        actions.push({ kind: 'release', partition: p, revision: lease.revision });
      } else if (lease.expiresAtMs - nowMs <= cfg.renewBeforeMs) {
        actions.push({ kind: 'renew', partition: p, revision: lease.revision });
      }
      continue;
    }
    if (!want) continue;
    if (lease === undefined) {
      actions.push({ kind: 'acquire', partition: p, revision: 0 });
    } else if (lease.owner === null || lease.owner === shard || nowMs >= lease.expiresAtMs + cfg.skewMs) {
      // Released, its own lapsed lease, or its owner missed the deadline (plus any clock skew):
      // take it, fenced by the revision read (a concurrent taker makes this write fail).
      actions.push({ kind: 'acquire', partition: p, revision: lease.revision });
    }
  }
  return actions;
}
