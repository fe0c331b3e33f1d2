import type { Journal, DeviceSnapshot, PartitionBatch } from '../journal/index.js';
import type { LeaseManager } from '../leases/index.js';
import type { ServiceMetrics } from '../metrics/index.js';

/** Why a shard stopped serving a partition (the `reason` of `sphere_partition_losses_total`). */
export type LossReason = 'released' | 'expired' | 'fenced';

export interface OwnershipOptions {
  readonly journal: Journal;
  /** This process incarnation (shard ID and boot), written into every partition append. */
  readonly incarnation: string;
  readonly shardId: string;
  readonly partitions: number;
  /** `null`: no other shard can exist (memory journal); this one serves every partition. */
  readonly leases: LeaseManager | null;
  /**
   * `false` only in the test-only unfenced mode: appends name no expected sequence and ignore
   * the lease's deadline, as a shard without fencing would, so that checkers can be shown to fail.
   */
  readonly fencing: boolean;
  readonly metrics: ServiceMetrics;
  readonly wallNow: () => number;
  /** Resolves once the shard's follower has applied the journal through `seq`. */
  readonly applied: (seq: number) => Promise<void>;
  /** The partition is this shard's from now on: open its subjects. */
  readonly onServe: (partition: number) => void;
  /** The partition is no longer this shard's: close its subjects. */
  readonly onStop: (partition: number) => void;
}

interface Served {
  readonly token: number;
  /** Sequence of this shard's last append to the partition's log (its fence for the next). */
  lastSeq: number;
  readonly queue: { snapshot: DeviceSnapshot; done: (stored: boolean) => void }[];
  writing: boolean;
}

/** Snapshots per append: a batch must stay under the journal's record limit (~2 KB each). */
const MAX_BATCH = 256;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Which partitions this shard serves, and the writer of their logs. A partition is served from
 * the moment its lease is held AND a takeover marker (an append without devices, fenced on the
 * last sequence this shard's follower saw in the partition's log) is stored AND the follower has
 * applied the journal up to that marker: the shard then knows every snapshot the previous owner
 * stored, and any later append by the previous owner is refused by the fence. Each partition's
 * snapshots are appended one batch at a time (group commit), each fenced on the previous one.
 */
export class PartitionOwnership {
  readonly #o: OwnershipOptions;
  readonly #served = new Map<number, Served>();
  readonly #acquiring = new Map<number, Promise<void>>();
  /** Last sequence of each partition's log as the follower saw it. */
  readonly #seen = new Map<number, number>();
  #closed = false;

  constructor(opts: OwnershipOptions) {
    this.#o = opts;
  }

  /** Partitions served now, with their fencing tokens. */
  served(): ReadonlyMap<number, number> {
    return new Map([...this.#served].map(([p, s]) => [p, s.token]));
  }

  isServed(partition: number): boolean {
    return this.#served.has(partition);
  }

  /**
   * Called by the follower for every partition append, in log order. `true`: another shard's
   * snapshots, to apply to this shard's replica; `false`: this shard's own (already applied).
   */
  /**
   * Something that is not a batch sits at `seq` in `partition`'s log: it still moves the log's
   * last sequence, so the next fenced append is refused once and the takeover that follows
   * starts after it.
   */
  skip(partition: number, seq: number): void {
    this.#seen.set(partition, seq);
  }

  observe(partition: number, seq: number, batch: PartitionBatch): boolean {
    this.#seen.set(partition, seq);
    if (batch.o === this.#o.incarnation) return false;
    if (this.#served.has(partition) && batch.devices.length > 0) this.#o.metrics.partitionForeignWrites.inc();
    return true;
  }

  /** Stores `snapshot` in its partition's log; `true` once stored while this shard serves it. */
  persist(partition: number, snapshot: DeviceSnapshot): Promise<boolean> {
    const s = this.#served.get(partition);
    if (s === undefined) return Promise.resolve(false);
    if (this.#o.fencing && this.#o.leases !== null && !this.#o.leases.holds(partition)) {
      this.#stop(partition, 'expired');
      return Promise.resolve(false);
    }
    return new Promise((done) => {
      s.queue.push({ snapshot, done });
      if (!s.writing) void this.#write(partition, s);
    });
  }

  async #write(partition: number, s: Served): Promise<void> {
    s.writing = true;
    while (s.queue.length > 0 && this.#served.get(partition) === s) {
      const batch = s.queue.splice(0, MAX_BATCH);
      let seq: number | null;
      try {
        seq = await this.#o.journal.appendPartition(
          partition,
          { o: this.#o.incarnation, token: s.token, devices: batch.map((b) => b.snapshot) },
          this.#o.fencing ? s.lastSeq : null,
        );
      } catch (e) {
        // Not acknowledged: maybe stored, maybe not. The next append's fence tells.
        this.#o.metrics.partitionWrites.inc({ result: 'error' });
        this.#complain(
          `partition ${partition}: append not acknowledged: ${e instanceof Error ? e.message : String(e)}`,
        );
        for (const b of batch) b.done(false);
        continue;
      }
      if (seq === null) {
        this.#o.metrics.partitionWrites.inc({ result: 'fenced' });
        for (const b of batch) b.done(false);
        this.#stop(partition, 'fenced');
        break;
      }
      this.#o.metrics.partitionWrites.inc({ result: 'ok' });
      s.lastSeq = seq;
      for (const b of batch) b.done(true);
    }
    s.writing = false;
  }

  /** Serves every partition at once (a shard on a memory journal is the only one). */
  async takeAll(): Promise<void> {
    await Promise.all(Array.from({ length: this.#o.partitions }, (_, p) => this.#take(p, 0)));
  }

  /** Renews and takes leases (one lease-manager tick), then serves what is held and stops the rest. */
  async tick(): Promise<void> {
    const leases = this.#o.leases;
    if (leases === null || this.#closed) return;
    try {
      await leases.tick();
    } catch (e) {
      console.error('shard: lease tick failed (NATS unreachable?):', e instanceof Error ? e.message : e);
    }
    const held = leases.held();
    for (const p of [...this.#served.keys()]) {
      if (!held.has(p) || held.get(p) !== this.#served.get(p)?.token) this.#stop(p, 'expired');
    }
    for (const [p, token] of held)
      if (!this.#served.has(p) && !this.#acquiring.has(p)) void this.#take(p, token);
  }

  /** Resolves once every takeover under way has finished (served, or given up). */
  async settled(): Promise<void> {
    await Promise.all(this.#acquiring.values());
  }

  /** Lost or gave up a lease: stop serving (pending appends answer `false`). */
  lost(partition: number, reason: LossReason): void {
    if (this.#served.has(partition)) this.#stop(partition, reason);
  }

  #take(partition: number, token: number): Promise<void> {
    const taking = this.#takeover(partition, token).finally(() => this.#acquiring.delete(partition));
    this.#acquiring.set(partition, taking);
    return taking;
  }

  async #takeover(partition: number, token: number): Promise<void> {
    const t0 = this.#o.wallNow();
    const stillMine = () =>
      !this.#closed && (this.#o.leases === null || this.#o.leases.held().get(partition) === token);
    let seq: number | null = null;
    while (seq === null) {
      if (!stillMine()) return;
      try {
        seq = await this.#o.journal.appendPartition(
          partition,
          { o: this.#o.incarnation, token, devices: [] },
          this.#o.fencing ? (this.#seen.get(partition) ?? 0) : null,
        );
      } catch (e) {
        this.#complain(
          `partition ${partition}: takeover marker not stored: ${e instanceof Error ? e.message : String(e)}`,
        );
        await sleep(500);
        continue;
      }
      // Refused: the follower has not yet seen the partition's latest append; let it catch up.
      if (seq === null) await sleep(50);
    }
    await this.#o.applied(seq);
    if (!stillMine()) return;
    this.#served.set(partition, { token, lastSeq: seq, queue: [], writing: false });
    this.#o.metrics.partitionAcquisitions.inc({ shard: this.#o.shardId });
    this.#o.metrics.partitionTakeover.observe((this.#o.wallNow() - t0) / 1000);
    this.#o.metrics.partitionsOwned.set({ shard: this.#o.shardId }, this.#served.size);
    this.#o.onServe(partition);
  }

  #quietUntil = 0;
  #suppressed = 0;
  /** Logs a journal error, at most one line a second (a NATS node dying fails every partition's append at once). */
  #complain(msg: string): void {
    const now = this.#o.wallNow();
    if (now < this.#quietUntil) {
      this.#suppressed++;
      return;
    }
    const more = this.#suppressed > 0 ? ` (and ${this.#suppressed} more since the last report)` : '';
    console.error(`shard: ${msg}${more}`);
    this.#suppressed = 0;
    this.#quietUntil = now + 1000;
  }

  #stop(partition: number, reason: LossReason): void {
    const s = this.#served.get(partition);
    if (s === undefined) return;
    this.#served.delete(partition);
    for (const b of s.queue.splice(0)) b.done(false);
    this.#o.metrics.partitionLosses.inc({ shard: this.#o.shardId, reason });
    this.#o.metrics.partitionsOwned.set({ shard: this.#o.shardId }, this.#served.size);
    this.#o.onStop(partition);
  }

  /** Stops serving everything and gives the leases back (a clean shutdown). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const p of [...this.#served.keys()]) this.#stop(p, 'released');
    await this.#o.leases?.releaseAll().catch(() => undefined);
  }
}
