/**
 * The journal on a real nats-server (JetStream), and the memory journal held to the same
 * contract: one genesis however many shards race to write it, every follower sees the same
 * entries in the same order, and a partition append naming a stale last sequence is refused.
 */
import { describe, expect, it } from 'vitest';
import { memoryJournal, openJetStreamJournal } from '../../../services/journal/index.js';
import type { Journal, JournalEntry, JournalRecord } from '../../../services/journal/index.js';
import { checkSingleOwner } from '../../../loadgen/verdict/ownership.js';
import { useNatsServer } from '../../fixtures/nats.js';

const nats = useNatsServer({ jetstream: true });

const genesis = (anchor: number): Extract<JournalRecord, { t: 'genesis' }> => ({
  t: 'genesis',
  rootCa: {
    certificateDer: '',
    certificatePem: '',
    subjectDer: '',
    keyId: `k${anchor}`,
    privateKeyPkcs8: '',
    publicKey: '',
  },
  anchorWallMs: anchor,
  anchorSimMs: anchor,
  timeScale: 1,
});

/** Follows `j` until it has seen `n` entries. */
async function entries(j: Journal, n: number): Promise<JournalEntry[]> {
  const seen: JournalEntry[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const f = j.follow((e) => {
    seen.push(e);
    if (seen.length === n) done();
  });
  await all;
  f.stop();
  return seen;
}

/** The contract, run against two handles on one journal (two shards' connections). */
async function contract(a: Journal, b: Journal): Promise<void> {
  // Two shards start on an empty journal: exactly one genesis wins, both read it.
  const won = await Promise.all([a.begin(genesis(1)), b.begin(genesis(2))]);
  expect(won.filter(Boolean)).toHaveLength(1);
  const first = await b.first();
  expect(first?.t === 'genesis' && first.anchorWallMs).toBe(won[0] === true ? 1 : 2);

  // Interleaved appends from both: every follower sees one order, with the writers' ids.
  await Promise.all([
    a.append({ t: 'boot', shardId: 'a', atWallMs: 1 }, 'a-1'),
    b.append({ t: 'boot', shardId: 'b', atWallMs: 1 }, 'b-1'),
    a.append({ t: 'claim', tenantId: 't-1', deviceIds: [] }, 'a-2'),
  ]);
  // Partition 3: a takes over (log empty), appends; b takes over fenced on a's last append.
  const m1 = await a.appendPartition(3, { o: 'a', token: 1, devices: [] }, 0);
  expect(m1).not.toBeNull();
  const a2 = await a.appendPartition(3, { o: 'a', token: 1, devices: [] }, m1);
  expect(a2).not.toBeNull();
  // a repeats that append (as if its answer was lost): stored once, answered with its sequence.
  expect(await a.appendPartition(3, { o: 'a', token: 1, devices: [] }, m1)).toBe(a2);
  // b has not seen a2: refused, then accepted once it names a2.
  expect(await b.appendPartition(3, { o: 'b', token: 2, devices: [] }, m1)).toBeNull();
  const m2 = await b.appendPartition(3, { o: 'b', token: 2, devices: [] }, a2);
  expect(m2).not.toBeNull();
  // a, paused through all that, wakes and appends on its old fence: refused.
  expect(await a.appendPartition(3, { o: 'a', token: 1, devices: [] }, a2)).toBeNull();
  // Partitions fence independently.
  expect(await a.appendPartition(4, { o: 'a', token: 3, devices: [] }, 0)).not.toBeNull();
  // The unfenced mode (tests only) is not refused.
  expect(await a.appendPartition(3, { o: 'a', token: 1, devices: [] }, null)).not.toBeNull();

  const [seenA, seenB] = await Promise.all([entries(a, 9), entries(b, 9)]);
  expect(seenA.map((e) => e.seq)).toEqual(seenB.map((e) => e.seq));
  expect(seenA.map((e) => e.seq)).toEqual([...seenA.map((e) => e.seq)].sort((x, y) => x - y));
  const ids = seenA.flatMap((e) => (e.kind === 'service' ? [e.id] : []));
  expect(ids.slice(1).sort()).toEqual(['a-1', 'a-2', 'b-1']);
  const p3 = seenA.flatMap((e) => (e.kind === 'partition' && e.partition === 3 ? [e.batch.o] : []));
  expect(p3).toEqual(['a', 'a', 'b', 'a']);
  // The ownership checker reads this history: the refused stale append left no trace, the
  // unfenced one (last) is caught as a write of a's tenure after b took over.
  const appends = seenA.flatMap((e) =>
    e.kind === 'partition'
      ? [{ seq: e.seq, partition: e.partition, owner: e.batch.o, token: e.batch.token, devices: 0 }]
      : [],
  );
  expect(checkSingleOwner(appends.slice(0, -1)).pass).toBe(true);
  const caught = checkSingleOwner(appends);
  expect(caught.violations.map((v) => [v.partition, v.staleOwner, v.newerOwner])).toEqual([[3, 'a', 'b']]);

  // A follower started late still gets everything, then what is appended after.
  const late: JournalEntry[] = [];
  const f = b.follow((e) => void late.push(e));
  await f.caughtUp;
  expect(late).toHaveLength(9);
  await a.append({ t: 'boot', shardId: 'a', atWallMs: 2 }, 'a-3');
  await expect.poll(() => late.length).toBe(10);
  f.stop();
}

describe('journal', () => {
  it('journal - JetStream: one genesis, one order for every follower, stale partition appends refused', async () => {
    const name = `journal-${Date.now().toString(36)}`;
    const a = await openJetStreamJournal({ servers: nats().url, name, connectionName: 'a' });
    const b = await openJetStreamJournal({ servers: nats().url, name, connectionName: 'b' });
    try {
      await contract(a, b);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('journal - memory: the same contract', async () => {
    const j = memoryJournal();
    await contract(j, j);
  });
});
