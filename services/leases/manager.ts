import { connect } from 'nats';
import type { KV, NatsConnection } from 'nats';
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

const leaseKey = (p: number) => `lease.${p}`;
const memberKey = (shard: string) => `member.${shard}`;
const encode = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/**
 * A lease store in a JetStream KV bucket (history 1). A watch keeps a local copy of every lease
 * and member, so a tick reads nothing over the network; conditional writes (`create`, `update`
 * with the expected revision) make the copy's lag harmless: a stale view only loses a race.
 */
export async function openKvLeaseStore(opts: {
  servers: string;
  bucket: string;
  connectionName: string;
  /** Replicas of the bucket (R3 on a 3-node cluster). */
  replicas?: number;
}): Promise<LeaseStore> {
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
  const watch = await kv.watch({ key: '>' });
  let ready!: () => void;
  const initial = new Promise<void>((r) => (ready = r));
  void (async () => {
    for await (const e of watch) {
      if (e.key.startsWith('lease.')) {
        const partition = Number(e.key.slice('lease.'.length));
        if (e.operation !== 'PUT') leases.delete(partition);
        else {
          const r = JSON.parse(new TextDecoder().decode(e.value)) as LeaseRecord;
          seen(partition, { partition, revision: e.revision, owner: r.owner, expiresAtMs: r.expiresAtMs });
        }
      } else if (e.key.startsWith('member.')) {
        const shard = e.key.slice('member.'.length);
        if (e.operation !== 'PUT') members.delete(shard);
        else {
          const r = JSON.parse(new TextDecoder().decode(e.value)) as { expiresAtMs: number };
          members.set(shard, { shard, expiresAtMs: r.expiresAtMs });
        }
      }
      if (e.delta === 0) ready();
    }
  })().catch(() => undefined);
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
        // Someone wrote first (wrong last sequence), or the write did not reach the server:
        // either way this shard did not get what it asked for.
        return null;
      }
    },
    async close() {
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
