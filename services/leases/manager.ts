import { connect } from 'nats';
import type { KV, KvEntry, NatsConnection } from 'nats';
import { natsServers } from '../../actors/runtime/index.js';
import { plan } from './logic.js';
import type { LeaseAction, LeaseConfig, LeaseEntry, LeaseRecord, MemberEntry } from './logic.js';

/**
 * Where leases and memberships live. Writes of leases are conditional on a revision (0: the key
 * must not exist yet); a write that lost the race resolves `null`.
 */
export interface LeaseStore {
  /** The latest leases and members this store has seen (its own successful writes included). */
  snapshot(): { leases: ReadonlyMap<number, LeaseEntry>; members: readonly MemberEntry[] };
  /** Renews `shard`'s membership until `expiresAtMs` (one writer per member key: unconditional). */
  heartbeat(shard: string, expiresAtMs: number): Promise<void>;
  /** Writes `record` for `partition` if its revision is still `revision`; the new revision, or `null`. */
  write(partition: number, record: LeaseRecord, revision: number): Promise<number | null>;
  close(): Promise<void>;
}

/**
 * A value in the lease bucket that is not a lease or membership record (any client allowed to
 * write the bucket can put one). The watch skips it and goes on; see {@link openKvLeaseStore}.
 */
export interface BadLeaseValue {
  readonly key: string;
  readonly revision: number;
  /** `lease` or `member`, by key. */
  readonly kind: 'lease' | 'member';
  readonly problem: string;
}

const leaseKey = (p: number) => `lease.${p}`;
const memberKey = (shard: string) => `member.${shard}`;
const encode = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

const decoder = new TextDecoder();
/** First wait before the lease watch is opened again, doubling up to the second. */
const WATCH_RETRY_MS = 100;
const MAX_WATCH_RETRY_MS = 2_000;

/** Calls an observer; one that throws must not stop the watch. */
function report<T>(observer: (v: T) => void, v: T): void {
  try {
    observer(v);
  } catch {
    // ignored: observers are for metrics and logs
  }
}

/** The JSON object in `bytes`, or what is wrong with it. */
function readObject(bytes: Uint8Array): Record<string, unknown> | string {
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(bytes));
  } catch {
    return `not JSON (${bytes.length} bytes)`;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  return v as Record<string, unknown>;
}

/** The lease record in `bytes`, or what is wrong with it. */
function readLease(bytes: Uint8Array): LeaseRecord | string {
  const r = readObject(bytes);
  if (typeof r === 'string') return r;
  const { owner, expiresAtMs } = r;
  if (owner !== null && typeof owner !== 'string') return 'owner is neither a string nor null';
  if (typeof expiresAtMs !== 'number' || !Number.isFinite(expiresAtMs)) return 'expiresAtMs is not a number';
  return { owner, expiresAtMs };
}

/** The membership record in `bytes`, or what is wrong with it. */
function readMember(bytes: Uint8Array): { expiresAtMs: number } | string {
  const r = readObject(bytes);
  if (typeof r === 'string') return r;
  const { expiresAtMs } = r;
  if (typeof expiresAtMs !== 'number' || !Number.isFinite(expiresAtMs)) return 'expiresAtMs is not a number';
  return { expiresAtMs };
}

/**
 * A lease store in a JetStream KV bucket (history 1). A watch keeps a local copy of every lease
 * and member, so a tick reads nothing over the network; conditional writes (`create`, `update`
 * with the expected revision) make the copy's lag harmless: a stale view only loses a race.
 *
 * A value that is not a record is reported to `onBadValue` and the watch goes on. A bad member
 * value leaves the member as it was. A bad lease value leaves owner and deadline as they were
 * (released when there were none) but takes its revision: the holder's next renewal, or a taker
 * after the deadline, overwrites it, fenced as usual.
 */
export async function openKvLeaseStore(opts: {
  servers: string;
  bucket: string;
  connectionName: string;
  /** Replicas of the bucket (R3 on a 3-node cluster). */
  replicas?: number;
  /** Called for each value in the bucket that is not a lease or membership record (skipped). */
  onBadValue?: (bad: BadLeaseValue) => void;
  /** Called with the cause each time the watch ended (or failed to reopen) and is opened again. */
  onWatchRestart?: (cause: unknown) => void;
}): Promise<LeaseStore> {
  const onBadValue = opts.onBadValue ?? (() => undefined);
  const onWatchRestart = opts.onWatchRestart ?? (() => undefined);
  const nc: NatsConnection = await connect({
    servers: natsServers(opts.servers),
    name: opts.connectionName,
    // A lease holder that gave up reconnecting could never renew nor release: reconnect forever.
    maxReconnectAttempts: -1,
  });
  let kv: KV;
  try {
    kv = await nc.jetstream().views.kv(opts.bucket, { history: 1, replicas: opts.replicas ?? 1 });
  } catch (e) {
    await nc.close();
    throw new Error(
      `cannot open the lease bucket "${opts.bucket}": ${e instanceof Error ? e.message : String(e)} (is JetStream enabled on the NATS server?)`,
    );
  }
  const leases = new Map<number, LeaseEntry>();
  const members = new Map<string, MemberEntry>();
  const seen = (partition: number, entry: LeaseEntry) => {
    const had = leases.get(partition);
    if (had === undefined || had.revision < entry.revision) leases.set(partition, entry);
  };
  let watch: Awaited<ReturnType<KV['watch']>> = await kv.watch({ key: '>' });
  let closed = false;
  let ready!: () => void;
  const initial = new Promise<void>((r) => (ready = r));
  const bad = (e: { key: string; revision: number }, kind: BadLeaseValue['kind'], problem: string) =>
    report(onBadValue, { key: e.key, revision: e.revision, kind, problem });
  const apply = (e: KvEntry): void => {
    if (e.key.startsWith('lease.')) {
      const partition = Number(e.key.slice('lease.'.length));
      if (e.operation !== 'PUT') leases.delete(partition);
      else {
        const r = readLease(e.value);
        if (typeof r === 'string') {
          bad(e, 'lease', r);
          const had = leases.get(partition);
          seen(partition, {
            partition,
            revision: e.revision,
            owner: had?.owner ?? null,
            expiresAtMs: had?.expiresAtMs ?? 0,
          });
        } else seen(partition, { partition, revision: e.revision, ...r });
      }
    } else if (e.key.startsWith('member.')) {
      const shard = e.key.slice('member.'.length);
      if (e.operation !== 'PUT') members.delete(shard);
      else {
        const r = readMember(e.value);
        if (typeof r === 'string') bad(e, 'member', r);
        else members.set(shard, { shard, expiresAtMs: r.expiresAtMs });
      }
    }
    if (e.delta === 0) ready();
  };
  // The watch ends when its (ordered, unreplicated) consumer is lost with a NATS node or a
  // JetStream leader election it could not outlive. Without it the copy would freeze: every
  // conditional write would then fail on stale revisions and the shard would never hold a lease
  // again. So it is opened again (it starts with the latest value of every key) until `close`.
  void (async () => {
    for (let waitMs = WATCH_RETRY_MS; !closed;) {
      let cause: unknown = 'the watch ended';
      try {
        for await (const e of watch) {
          apply(e);
          waitMs = WATCH_RETRY_MS;
        }
      } catch (e) {
        cause = e;
      }
      while (!closed) {
        report(onWatchRestart, cause);
        await new Promise((r) => setTimeout(r, waitMs));
        waitMs = Math.min(2 * waitMs, MAX_WATCH_RETRY_MS);
        if (closed) return;
        try {
          watch = await kv.watch({ key: '>' });
          break;
        } catch (e) {
          cause = e;
        }
      }
    }
  })();
  // An empty bucket sends nothing before the live updates: do not wait for a first entry then.
  const status = await kv.status();
  if (status.values === 0) ready();
  await initial;

  return {
    snapshot: () => ({ leases, members: [...members.values()] }),
    async heartbeat(shard, expiresAtMs) {
      await kv.put(memberKey(shard), encode({ expiresAtMs }));
      members.set(shard, { shard, expiresAtMs });
    },
    async write(partition, record, revision) {
      try {
        const next =
          revision === 0
            ? await kv.create(leaseKey(partition), encode(record))
            : await kv.update(leaseKey(partition), encode(record), revision);
        seen(partition, { partition, revision: next, ...record });
        return next;
      } catch {
        // Someone wrote first (wrong last sequence), or the write did not reach the server, or it
        // did and its answer was lost: either way this shard did not get what it asked for. Read
        // the lease back, so that the next write is fenced on its current revision even while
        // the watch lags (a stalled watch would otherwise fail every later write of this lease).
        const current = await kv.get(leaseKey(partition)).catch(() => null);
        if (current !== null) apply(current);
        return null;
      }
    },
    async close() {
      closed = true;
      watch.stop();
      await nc.close();
    },
  };
}

/** What a lease manager reports (for metrics and the run's history). */
export type LeaseEvent =
  | { readonly kind: 'acquired'; readonly partition: number; readonly token: number }
  | { readonly kind: 'released'; readonly partition: number }
  /** The shard stopped holding a partition it did not give up: a renewal lost, or it ran out. */
  | { readonly kind: 'lost'; readonly partition: number; readonly reason: 'fenced' | 'expired' };

/**
 * Runs `plan` for one shard process against a store. `shard` names this process incarnation
 * (shard ID and boot, e.g. `shard-0-7f3a`): a restarted process must not inherit the leases of
 * the one before, which may still be alive behind a partition. Call `tick` regularly (every second or so, well
 * inside `ttlMs - renewBeforeMs`). `held(now)` is what the shard may act for, each partition with
 * its fencing token (the lease revision).
 */
export class LeaseManager {
  readonly #store: LeaseStore;
  readonly #shard: string;
  readonly #cfg: LeaseConfig;
  readonly #now: () => number;
  readonly #observe: (e: LeaseEvent) => void;
  readonly #ignoreDeadlines: boolean;
  /** Partition → what this shard wrote last (only its own, successful writes). */
  readonly #mine = new Map<number, { token: number; expiresAtMs: number }>();

  constructor(opts: {
    store: LeaseStore;
    shard: string;
    config: LeaseConfig;
    now: () => number;
    observe?: (e: LeaseEvent) => void;
    /**
     * TEST ONLY (the shard's --unsafe-no-fencing): trust a lease past its deadline until a renewal
     * is refused, as a naive implementation would. A paused or cut-off holder then acts after
     * another shard took over, which the chaos verdict must catch.
     */
    unsafeIgnoreDeadlines?: boolean;
  }) {
    this.#ignoreDeadlines = opts.unsafeIgnoreDeadlines === true;
    this.#store = opts.store;
    this.#shard = opts.shard;
    this.#cfg = opts.config;
    this.#now = opts.now;
    this.#observe = opts.observe ?? (() => undefined);
  }

  /**
   * Partitions this shard may act for at `nowMs`, with their fencing tokens (the lease revision
   * that began this shard's tenure; renewals keep it).
   */
  held(nowMs = this.#now()): Map<number, number> {
    const out = new Map<number, number>();
    for (const [p, m] of this.#mine) if (this.#ignoreDeadlines || nowMs < m.expiresAtMs) out.set(p, m.token);
    return out;
  }

  /** Whether this shard may act for `partition` at `nowMs` (what `held` has, without building it). */
  holds(partition: number, nowMs = this.#now()): boolean {
    const m = this.#mine.get(partition);
    return m !== undefined && (this.#ignoreDeadlines || nowMs < m.expiresAtMs);
  }

  /** Renews membership, then carries out this tick's plan. Never throws for a lost race. */
  async tick(): Promise<void> {
    const now = this.#now();
    for (const [p, m] of this.#mine) {
      if (now >= m.expiresAtMs && !this.#ignoreDeadlines) {
        this.#mine.delete(p);
        this.#observe({ kind: 'lost', partition: p, reason: 'expired' });
      }
    }
    await this.#store.heartbeat(this.#shard, now + this.#cfg.ttlMs);
    const { leases, members } = this.#store.snapshot();
    if (this.#ignoreDeadlines)
      // The naive holder learns it lost a lease only by reading that someone else has it.
      for (const p of [...this.#mine.keys()])
        if (leases.get(p)?.owner !== this.#shard && this.#mine.delete(p))
          this.#observe({ kind: 'lost', partition: p, reason: 'fenced' });
    const actions = plan(this.#shard, leases, members, now, this.#cfg);
    await Promise.all(actions.map((a) => this.#apply(a, now)));
  }

  async #apply(a: LeaseAction, now: number): Promise<void> {
    const record: LeaseRecord =
      a.kind === 'release'
        ? { owner: null, expiresAtMs: 0 }
        : { owner: this.#shard, expiresAtMs: now + this.#cfg.ttlMs };
    if (a.kind === 'release') {
      // Stop acting before the write is sent; if it fails, the lease lapses at its deadline.
      this.#mine.delete(a.partition);
      this.#observe({ kind: 'released', partition: a.partition });
      await this.#store.write(a.partition, record, a.revision);
      return;
    }
    const token = await this.#store.write(a.partition, record, a.revision);
    if (token === null) {
      if (a.kind === 'renew' && this.#mine.delete(a.partition))
        this.#observe({ kind: 'lost', partition: a.partition, reason: 'fenced' });
      return;
    }
    // The fencing token names the tenure: the revision that acquired it, kept through renewals.
    const had = this.#mine.get(a.partition);
    this.#mine.set(a.partition, { token: had?.token ?? token, expiresAtMs: record.expiresAtMs });
    if (had === undefined) this.#observe({ kind: 'acquired', partition: a.partition, token });
  }

  /** Gives up every held lease (a clean shutdown: others take them at once, not at expiry). */
  async releaseAll(): Promise<void> {
    const { leases } = this.#store.snapshot();
    const mine = [...this.#mine.keys()];
    await Promise.all(
      mine.map((p) =>
        this.#apply({ kind: 'release', partition: p, revision: leases.get(p)?.revision ?? 0 }, this.#now()),
      ),
    );
  }
}
