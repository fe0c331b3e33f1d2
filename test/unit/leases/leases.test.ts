import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LEASE_CONFIG, LeaseManager, desiredOwner, plan } from '../../../services/leases/index.js';
import type {
  LeaseConfig,
  LeaseEntry,
  LeaseRecord,
  LeaseStore,
  MemberEntry,
} from '../../../services/leases/index.js';

const CFG: LeaseConfig = { partitions: 32, ttlMs: 6_000, renewBeforeMs: 4_000, skewMs: 0 };

/** A conditional key-value store in memory (the KV bucket's semantics), shared by all shards. */
class Backend {
  rev = 0;
  readonly leases = new Map<number, LeaseEntry>();
  readonly members = new Map<string, MemberEntry>();
  snapshot() {
    return { leases: new Map(this.leases), members: [...this.members.values()] };
  }
}

/** One shard's view: the current state, or (when `stale` says so) what it saw at its last tick. */
function storeFor(b: Backend, stale: () => boolean): LeaseStore {
  let last = b.snapshot();
  return {
    snapshot() {
      const now = b.snapshot();
      const view = stale() ? last : now;
      last = now;
      return view;
    },
    heartbeat(shard, expiresAtMs) {
      b.members.set(shard, { shard, expiresAtMs });
      return Promise.resolve();
    },
    write(partition, record: LeaseRecord, revision) {
      const had = b.leases.get(partition);
      if ((had?.revision ?? 0) !== revision) return Promise.resolve(null);
      const next = ++b.rev;
      b.leases.set(partition, { partition, revision: next, ...record });
      return Promise.resolve(next);
    },
    close: () => Promise.resolve(),
  };
}

describe('leases', () => {
  it('leases - rendezvous ownership is balanced and moves only the partitions of a shard that leaves', () => {
    const shards = ['shard-a', 'shard-b', 'shard-c'];
    const owners = Array.from({ length: 64 }, (_, p) => desiredOwner(p, shards));
    for (const s of shards) {
      const n = owners.filter((o) => o === s).length;
      expect(n, s).toBeGreaterThan(10);
      expect(n, s).toBeLessThan(35);
    }
    const after = Array.from({ length: 64 }, (_, p) => desiredOwner(p, ['shard-a', 'shard-c']));
    owners.forEach((o, p) => {
      if (o !== 'shard-b') expect(after[p]).toBe(o);
    });
    expect(desiredOwner(0, [])).toBeNull();
  });

  it('leases - plan: take free leases, renew near the deadline, never take a live lease, take a lapsed one after the skew', () => {
    const cfg = { ...CFG, partitions: 4, skewMs: 500 };
    const members: MemberEntry[] = [{ shard: 'a', expiresAtMs: 10_000 }];
    // Alone: everything free is taken with revision 0 (the key must not exist).
    expect(plan('a', new Map(), members, 0, cfg).map((x) => [x.kind, x.partition, x.revision])).toEqual([
      ['acquire', 0, 0],
      ['acquire', 1, 0],
      ['acquire', 2, 0],
      ['acquire', 3, 0],
    ]);
    const lease = (
      partition: number,
      owner: string | null,
      expiresAtMs: number,
      revision = 7,
    ): LeaseEntry => ({
      partition,
      owner,
      expiresAtMs,
      revision,
    });
    const held = new Map([0, 1, 2, 3].map((p) => [p, lease(p, 'a', 6_000)]));
    expect(plan('a', held, members, 1_000, cfg)).toEqual([]); // 5 s left: no renewal yet
    expect(plan('a', held, members, 2_500, cfg).map((x) => x.kind)).toEqual([
      'renew',
      'renew',
      'renew',
      'renew',
    ]);
    // Another shard's lease: untouched while valid, and until the skew has passed after it.
    const theirs = new Map([[0, lease(0, 'b', 6_000)]]);
    const solo = { ...cfg, partitions: 1 };
    expect(plan('a', theirs, members, 5_999, solo)).toEqual([]);
    expect(plan('a', theirs, members, 6_400, solo)).toEqual([]);
    expect(plan('a', theirs, members, 6_500, solo)).toEqual([{ kind: 'acquire', partition: 0, revision: 7 }]);
    // A released lease is taken at once, fenced by its revision.
    expect(plan('a', new Map([[0, lease(0, null, 0, 9)]]), members, 0, solo)).toEqual([
      { kind: 'acquire', partition: 0, revision: 9 },
    ]);
  });

  it('leases - a shard that joins gets its share: the others release what it ranks first for', async () => {
    const b = new Backend();
    let now = 0;
    const mk = (shard: string) =>
      new LeaseManager({ store: storeFor(b, () => false), shard, config: CFG, now: () => now });
    const a = mk('shard-a');
    await a.tick();
    expect(a.held().size).toBe(CFG.partitions);
    const c = mk('shard-c');
    await c.tick(); // announces itself; its partitions are still a's
    now += 1_000;
    await a.tick(); // a releases them
    await c.tick(); // c takes them
    const want = Array.from({ length: CFG.partitions }, (_, p) => desiredOwner(p, ['shard-a', 'shard-c']));
    expect([...c.held().keys()].sort((x, y) => x - y)).toEqual(
      want.flatMap((o, p) => (o === 'shard-c' ? [p] : [])),
    );
    expect(a.held().size + c.held().size).toBe(CFG.partitions);
  });

  it('leases - the fencing token names the tenure: renewals keep it, a new tenure gets a new one', async () => {
    const b = new Backend();
    let now = 0;
    const a = new LeaseManager({ store: storeFor(b, () => false), shard: 'a', config: CFG, now: () => now });
    await a.tick();
    const first = new Map(a.held());
    for (let i = 0; i < 5; i++) {
      now += CFG.ttlMs - CFG.renewBeforeMs + 1; // due for renewal every tick
      await a.tick();
    }
    expect(new Map(a.held())).toEqual(first);
    // Lapsed and taken again: a new tenure, a greater token.
    now += CFG.ttlMs + CFG.skewMs + 1;
    expect(a.held().size).toBe(0);
    await a.tick();
    for (const [p, token] of a.held()) expect(token, `partition ${p}`).toBeGreaterThan(first.get(p) ?? 0);
  });

  it('leases - whatever the order of ticks, deaths, clock steps and stale views, no partition ever has two holders, and live shards end up holding all', async () => {
    const step = fc.oneof(
      fc.record({
        kind: fc.constant('tick' as const),
        shard: fc.integer({ min: 0, max: 3 }),
        stale: fc.boolean(),
      }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 4_000 }) }),
      fc.record({ kind: fc.constant('kill' as const), shard: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('revive' as const), shard: fc.integer({ min: 0, max: 3 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 80 }), async (steps) => {
        const b = new Backend();
        let now = 0;
        let stale = false;
        let boots = 0;
        const names = ['s0', 's1', 's2', 's3'];
        const make = (shard: string) =>
          new LeaseManager({ store: storeFor(b, () => stale), shard, config: CFG, now: () => now });
        const managers = names.map(make);
        const alive = names.map(() => true);
        const check = () => {
          for (let p = 0; p < CFG.partitions; p++) {
            const holders = managers.filter((m) => m.held(now).has(p));
            expect(holders.length, `partition ${p} at ${now}`).toBeLessThanOrEqual(1);
          }
        };
        for (const s of steps) {
          if (s.kind === 'tick') {
            if (!alive[s.shard]) continue;
            stale = s.stale;
            await managers[s.shard]?.tick();
          } else if (s.kind === 'advance') now += s.ms;
          else if (s.kind === 'kill') alive[s.shard] = false;
          else if (!alive[s.shard]) {
            // A restarted process: a new incarnation (shard ID + boot), holding nothing yet.
            alive[s.shard] = true;
            managers[s.shard] = make(`${names[s.shard] ?? ''}-${++boots}`);
          }
          // A dead process holds nothing it acts on; only the living are checked.
          for (let i = 0; i < managers.length; i++) if (!alive[i]) managers[i] = make(`dead-${i}`);
          check();
        }
        // Then the living tick regularly: every partition ends with exactly one living holder.
        stale = false;
        if (!alive.some(Boolean)) return;
        for (let round = 0; round < 6; round++) {
          for (let i = 0; i < managers.length; i++) if (alive[i]) await managers[i]?.tick();
          now += 1_000;
        }
        for (let i = 0; i < managers.length; i++) if (alive[i]) await managers[i]?.tick();
        check();
        for (let p = 0; p < CFG.partitions; p++) {
          expect(managers.filter((m, i) => alive[i] && m.held(now).has(p)).length, `partition ${p}`).toBe(1);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('leases - the defaults leave time to renew twice before a lease lapses', () => {
    expect(DEFAULT_LEASE_CONFIG.ttlMs - DEFAULT_LEASE_CONFIG.renewBeforeMs).toBeLessThan(
      DEFAULT_LEASE_CONFIG.ttlMs / 2,
    );
    expect(DEFAULT_LEASE_CONFIG.renewBeforeMs).toBeGreaterThanOrEqual(2 * 1_000);
  });
});
