/**
 * The KV lease store under conditions its happy path never meets: values in the bucket that are
 * not records (anyone allowed to write the bucket can put one) are reported to `onBadValue` and
 * skipped, the watch keeps going, and a garbled lease is overwritten by its holder's next fenced
 * renewal; and a write refused while the watch lags (its consumer lost with a NATS node) reads
 * the lease back, so the next write is fenced on the current revision.
 */
import { connect } from 'nats';
import type { KV, NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseManager, openKvLeaseStore } from '../../../services/leases/index.js';
import type { BadLeaseValue, LeaseConfig, LeaseStore } from '../../../services/leases/index.js';
import { useNatsServer } from '../../fixtures/nats.js';

const nats = useNatsServer({ jetstream: true });
const CFG: LeaseConfig = { partitions: 4, ttlMs: 1_500, renewBeforeMs: 1_000, skewMs: 100 };
const BUCKET = 'leases-bad';
const utf8 = new TextEncoder();

let nc: NatsConnection;
let kv: KV;
const stores: LeaseStore[] = [];
beforeAll(async () => {
  nc = await connect({ servers: nats().url });
  kv = await nc.jetstream().views.kv(BUCKET, { history: 1 });
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await nc.close();
});

async function until(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) await new Promise((r) => setTimeout(r, 50));
  if (!done()) throw new Error(`timed out waiting for ${what}`);
}

describe('leases - the KV store off the happy path', () => {
  it('leases - the watch counts each bad lease and member value, keeps going, and the holder overwrites a garbled lease', async () => {
    const bad: BadLeaseValue[] = [];
    const store = await openKvLeaseStore({
      servers: nats().url,
      bucket: BUCKET,
      connectionName: 'bad-values',
      onBadValue: (b) => bad.push(b),
    });
    stores.push(store);
    const m = new LeaseManager({ store, shard: 'a-1', config: CFG, now: () => Date.now() });
    await m.tick();
    expect([...m.held().keys()].sort()).toEqual([0, 1, 2, 3]);
    const before = store.snapshot().leases.get(2);
    if (before === undefined) throw new Error('no lease 2');

    // Garbage on a held lease, on a member, and JSON of the wrong shape: each is reported once.
    const r1 = await kv.put('lease.2', utf8.encode('{not json'));
    const r2 = await kv.put('member.rogue', utf8.encode('null'));
    const r3 = await kv.put('lease.3', utf8.encode('{"owner":5,"expiresAtMs":1}'));
    // A valid record written after them is still seen: the watch did not stop.
    await kv.put('member.late', utf8.encode(JSON.stringify({ expiresAtMs: Date.now() + 60_000 })));
    await until('the late member', () => store.snapshot().members.some((x) => x.shard === 'late'));

    expect(bad).toEqual([
      { key: 'lease.2', revision: r1, kind: 'lease', problem: 'not JSON (9 bytes)' },
      { key: 'member.rogue', revision: r2, kind: 'member', problem: 'not a JSON object' },
      { key: 'lease.3', revision: r3, kind: 'lease', problem: 'owner is neither a string nor null' },
    ]);
    // The garbled lease keeps its owner and deadline in the view, with the new revision.
    expect(store.snapshot().leases.get(2)).toEqual({ ...before, revision: r1 });
    expect(store.snapshot().members.some((x) => x.shard === 'rogue')).toBe(false);

    // The holder's renewals are fenced on the garbage's revision and overwrite it.
    await until(
      'renewal time',
      () => (store.snapshot().leases.get(2)?.expiresAtMs ?? 0) - Date.now() <= 1_000,
    );
    await m.tick();
    expect(m.holds(2)).toBe(true);
    expect(m.holds(3)).toBe(true);
    for (const key of ['lease.2', 'lease.3']) {
      const e = await kv.get(key);
      expect(JSON.parse(new TextDecoder().decode(e?.value)), key).toMatchObject({ owner: 'a-1' });
    }
    expect(bad).toHaveLength(3);
  });

  it('leases - a write refused while the watch lags reads the lease back, and the next one wins', async () => {
    const store = await openKvLeaseStore({
      servers: nats().url,
      bucket: 'leases-lag',
      connectionName: 'lag',
    });
    stores.push(store);
    const rev = await store.write(0, { owner: 'a-1', expiresAtMs: Date.now() + 60_000 }, 0);
    if (rev === null) throw new Error('first write refused');
    // Take the watch's consumer away: nats.js notices only after missed heartbeats (seconds).
    const jsm = await nc.jetstreamManager();
    for (const c of await jsm.consumers.list('KV_leases-lag').next())
      await jsm.consumers.delete('KV_leases-lag', c.name);
    // Another writer moves the lease on; this store's copy does not see it.
    const lagKv = await nc.jetstream().views.kv('leases-lag');
    const theirs = await lagKv.update(
      'lease.0',
      utf8.encode(JSON.stringify({ owner: 'b-1', expiresAtMs: 1 })),
      rev,
    );
    expect(store.snapshot().leases.get(0)?.revision).toBe(rev);

    // Fenced on the stale revision: refused, and the copy now holds the current one.
    expect(await store.write(0, { owner: 'a-1', expiresAtMs: 2 }, rev)).toBeNull();
    expect(store.snapshot().leases.get(0)).toEqual({
      partition: 0,
      revision: theirs,
      owner: 'b-1',
      expiresAtMs: 1,
    });
    const next = await store.write(0, { owner: 'a-1', expiresAtMs: 3 }, theirs);
    expect(next).toBeGreaterThan(theirs);
  });
});
