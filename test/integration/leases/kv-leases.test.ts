/**
 * Partition leases in a JetStream KV bucket on a real nats-server: shards share the partitions,
 * a shard that stops renewing loses its partitions to the others after the lease time, one that
 * joins gets its share, and a write fenced by an old revision is refused.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { LeaseManager, desiredOwner, openKvLeaseStore } from '../../../services/leases/index.js';
import type { LeaseConfig, LeaseStore } from '../../../services/leases/index.js';
import { useNatsServer } from '../../fixtures/nats.js';

const nats = useNatsServer({ jetstream: true });
const CFG: LeaseConfig = { partitions: 16, ttlMs: 1_500, renewBeforeMs: 1_000, skewMs: 100 };
const stores: LeaseStore[] = [];
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
});

async function shard(name: string, bucket: string): Promise<{ m: LeaseManager; store: LeaseStore }> {
  const store = await openKvLeaseStore({ servers: nats().url, bucket, connectionName: name });
  stores.push(store);
  return { m: new LeaseManager({ store, shard: name, config: CFG, now: () => Date.now() }), store };
}

/** Ticks every live manager every 200 ms until `done` holds (at most ~10 s); returns whether it did. */
async function tickUntil(ms: readonly LeaseManager[], done: () => boolean): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    await Promise.all(ms.map((m) => m.tick()));
    if (done()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return done();
}

const owned = (ms: readonly LeaseManager[]) => ms.map((m) => [...m.held().keys()]);
const disjointAndComplete = (ms: readonly LeaseManager[]) => {
  const all = owned(ms).flat();
  return all.length === CFG.partitions && new Set(all).size === CFG.partitions;
};

describe('leases over JetStream KV', () => {
  it('leases - three shards share the partitions; a dead one loses them to the others; a new one gets its share', async () => {
    const [a, b, c] = await Promise.all([
      shard('a-1', 'leases-1'),
      shard('b-1', 'leases-1'),
      shard('c-1', 'leases-1'),
    ]);
    if (a === undefined || b === undefined || c === undefined) throw new Error('no shards');
    // Everyone announces itself in the first tick; the first to tick may take everything, then
    // hands over what the others rank first for.
    const balanced = () =>
      disjointAndComplete([a.m, b.m, c.m]) && owned([a.m, b.m, c.m]).every((held) => held.length > 0);
    expect(await tickUntil([a.m, b.m, c.m], balanced)).toBe(true);

    // c dies (stops renewing, releases nothing): a and b take its partitions once its leases lapse.
    const cHeld = [...c.m.held().keys()];
    const diedAt = Date.now();
    expect(await tickUntil([a.m, b.m], () => disjointAndComplete([a.m, b.m]))).toBe(true);
    // Not before c's leases ran out: nobody acted for them while c might still have.
    expect(Date.now() - diedAt).toBeGreaterThanOrEqual(CFG.ttlMs - CFG.renewBeforeMs);
    expect(owned([a.m, b.m]).flat()).toEqual(expect.arrayContaining(cHeld));

    // A new incarnation joins: the others hand over what it ranks first for.
    const d = await shard('c-3', 'leases-1');
    const mine = Array.from({ length: CFG.partitions }, (_, p) => p).filter(
      (p) => desiredOwner(p, ['a-1', 'b-1', 'c-3']) === 'c-3',
    );
    expect(mine.length).toBeGreaterThan(0);
    expect(
      await tickUntil(
        [a.m, b.m, d.m],
        () =>
          disjointAndComplete([a.m, b.m, d.m]) &&
          [...d.m.held().keys()].sort((x, y) => x - y).join() === mine.join(),
      ),
    ).toBe(true);
  });

  it('leases - a write fenced by an old revision is refused (a zombie owner cannot renew)', async () => {
    const a = await shard('zombie-1', 'leases-2');
    await a.m.tick();
    const lease = a.store.snapshot().leases.get(0);
    if (lease === undefined) throw new Error('no lease for partition 0');
    const next = await a.store.write(
      0,
      { owner: 'zombie-1', expiresAtMs: Date.now() + 1_000 },
      lease.revision,
    );
    expect(next).toBeGreaterThan(lease.revision);
    // The old revision no longer fences anything: the same write again is refused.
    expect(
      await a.store.write(0, { owner: 'zombie-1', expiresAtMs: Date.now() + 1_000 }, lease.revision),
    ).toBeNull();
    // And creating a lease that exists is refused too.
    expect(await a.store.write(0, { owner: 'someone', expiresAtMs: Date.now() + 1_000 }, 0)).toBeNull();
  });
});
