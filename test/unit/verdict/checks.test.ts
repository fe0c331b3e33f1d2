import { describe, expect, it } from 'vitest';
import { memoryJournal } from '../../../services/journal/journal.js';
import type { DeviceSnapshot, JournalRecord } from '../../../services/journal/records.js';
import { HistoryRecorder } from '../../../loadgen/runner/history.js';
import type { HistoryDevice, RunHistory } from '../../../loadgen/runner/history.js';
import type { RolloutSummary } from '../../../loadgen/report/index.js';
import { parseScenarioYaml } from '../../../loadgen/scenario/index.js';
import {
  MAX_EVIDENCE,
  StoredHistoryBuilder,
  certKey,
  checkErrorBudgets,
  checkHealthyAttested,
  checkNoCertForFailedEvidence,
  checkOwnership,
  checkRecovery,
  checkStoredOnce,
  errorBudgets,
  judge,
  readStoredHistory,
  renderVerdict,
  reportKey,
} from '../../../loadgen/verdict/index.js';
import type { FaultSpan, StoredHistory } from '../../../loadgen/verdict/index.js';

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

/** A wall clock the test moves by hand. */
function clock(startMs = 1_700_000_000_000): { now: () => number; set: (sinceStartMs: number) => void } {
  let t = startMs;
  return { now: () => t, set: (ms) => (t = startMs + ms) };
}

const device = (id: string, over: Partial<HistoryDevice> = {}): HistoryDevice => ({
  id,
  fault: null,
  twin: false,
  poweredOn: true,
  attested: true,
  certified: 1,
  lastOkAtMs: 1_000,
  outages: [],
  ...over,
});

const history = (over: Partial<RunHistory> = {}): RunHistory => ({
  version: 1,
  startedAtWallMs: 0,
  endedAtWallMs: 10_000,
  devices: [],
  certified: [],
  reports: [],
  buckets: [],
  ...over,
});

const emptyStored = (over: Partial<StoredHistory> = {}): StoredHistory => ({
  appends: [],
  attestations: new Map(),
  certsOnFailure: [],
  reports: new Map(),
  ...over,
});

const rollout = (over: Partial<RolloutSummary> = {}): RolloutSummary => ({
  name: 'app',
  deploymentId: 'dep-1',
  image: { id: 'img', kind: 'app', name: 'blinky', version: '1.1.0' },
  group: 'Production',
  devices: 100,
  startAtMs: 0,
  state: 'completed',
  currentWave: 3,
  totalWaves: 3,
  waves: [],
  failures: 0,
  attempted: 100,
  haltReason: null,
  expect: null,
  expectationMet: null,
  error: null,
  ...over,
});

const snapshot = (d: string, over: Partial<DeviceSnapshot> = {}): DeviceSnapshot => ({
  d,
  bootId: 'boot-1',
  bootCount: 1,
  os: '25.10',
  sv: 5,
  compromised: false,
  ok: 1,
  failed: 0,
  seenMs: 0,
  last: { atMs: 0, ok: true, code: 'OK', message: '' },
  certs: { update: 'dXBk', client: 'Y2xp', notAfterMs: 1_000 },
  apps: {},
  nonce: 'bm9uY2U=',
  ...over,
});

const deviceReport = (deployment: string, deviceId: string, reportId: string): JournalRecord => ({
  t: 'rollout',
  id: deployment,
  msg: JSON.stringify({ type: 'rollout.device-report', deviceId, reportId, outcome: 'succeeded' }),
  atMs: 0,
});

// ---------------------------------------------------------------------------------------------
// The history the devices saw
// ---------------------------------------------------------------------------------------------

describe('verdict: HistoryRecorder', () => {
  const fleet = [
    { id: 'dev-0', fault: null, twin: false },
    { id: 'dev-1', fault: 'tamperedKernel' as const, twin: false },
  ];

  it('history - counts outcomes in the wall second they happened', () => {
    const c = clock();
    const r = new HistoryRecorder(fleet, c.now);
    c.set(200);
    r.certified(0, 5_000);
    c.set(999);
    r.failed(1, 'MEASUREMENT_MISMATCH');
    c.set(1_000);
    r.failed(0, null);
    c.set(2_500);
    r.failed(0, 'OVERLOADED');
    r.reportAcked(0, { deployment: 'dep-1', reportId: 'r1', outcome: 'succeeded' });
    c.set(3_100);
    const h = r.finish(() => false);
    expect(h.buckets).toEqual([
      { s: 0, ok: 1, rejected: 1, unavailable: 0, reports: 0 },
      { s: 1, ok: 0, rejected: 0, unavailable: 1, reports: 0 },
      { s: 2, ok: 0, rejected: 0, unavailable: 1, reports: 1 },
      // finish() opens the bucket of the end time, so the timeline spans the whole run.
      { s: 3, ok: 0, rejected: 0, unavailable: 0, reports: 0 },
    ]);
    expect(h.startedAtWallMs).toBe(1_700_000_000_000);
    expect(h.endedAtWallMs).toBe(1_700_000_003_100);
    expect(h.certified).toEqual([['dev-0', 5_000]]);
    expect(h.reports).toEqual([
      { device: 'dev-0', deployment: 'dep-1', reportId: 'r1', outcome: 'succeeded' },
    ]);
  });

  it('history - an unanswered or OVERLOADED attempt opens an outage, the next certificate closes it', () => {
    const c = clock();
    const r = new HistoryRecorder(fleet, c.now);
    c.set(1_000);
    r.certified(0, 1);
    c.set(4_000);
    r.failed(0, null);
    c.set(5_000);
    r.failed(0, 'OVERLOADED'); // still the same outage
    expect(r.finish(() => true).devices[0]?.outages).toEqual([[4_000, null]]);
    c.set(7_500);
    r.certified(0, 2);
    c.set(9_000);
    r.failed(0, 'OVERLOADED'); // a new one, never closed
    const d = r.finish(() => true).devices[0];
    expect(d?.outages).toEqual([
      [4_000, 7_500],
      [9_000, null],
    ]);
    expect(d?.certified).toBe(2);
    expect(d?.lastOkAtMs).toBe(7_500);
  });

  it('history - a rejection is a verdict, not an outage', () => {
    const c = clock();
    const r = new HistoryRecorder(fleet, c.now);
    c.set(1_000);
    r.failed(0, 'NONCE_STALE');
    r.failed(1, 'MEASUREMENT_MISMATCH');
    const h = r.finish(() => false);
    expect(h.devices.map((d) => d.outages)).toEqual([[], []]);
    expect(h.buckets[1]).toMatchObject({ rejected: 2, unavailable: 0 });
  });

  it('history - finish() asks each device whether it holds a valid certificate; poweredOn is recorded', () => {
    const c = clock();
    const r = new HistoryRecorder(fleet, c.now);
    r.poweredOn(1);
    const h = r.finish((i) => i === 0);
    expect(h.devices.map((d) => [d.id, d.fault, d.attested, d.poweredOn, d.certified, d.lastOkAtMs])).toEqual(
      [
        ['dev-0', null, true, false, 0, null],
        ['dev-1', 'tamperedKernel', false, true, 0, null],
      ],
    );
    expect(() => r.certified(7, 1)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// What the service stored
// ---------------------------------------------------------------------------------------------

describe('verdict: stored history from the journal', () => {
  it('stored - partition appends, attestations and failed attestations carrying a new certificate', async () => {
    const j = memoryJournal();
    await j.appendPartition(3, { o: 'shard-a', token: 7, devices: [] }, 0);
    await j.appendPartition(
      3,
      {
        o: 'shard-a',
        token: 7,
        devices: [
          snapshot('d1', { certs: { update: 'u', client: 'c', notAfterMs: 1_000 } }),
          snapshot('d2', { certs: { update: 'u', client: 'c', notAfterMs: 2_000 } }),
        ],
      },
      1,
    );
    // d1 again, same certificate recorded twice (a duplicate store).
    await j.appendPartition(
      3,
      {
        o: 'shard-a',
        token: 7,
        devices: [snapshot('d1', { certs: { update: 'u', client: 'c', notAfterMs: 1_000 } })],
      },
      2,
    );
    // No nonce: a snapshot carrying state on (a newer cert for d3), not an attestation.
    await j.appendPartition(
      4,
      {
        o: 'shard-b',
        token: 2,
        devices: [snapshot('d3', { nonce: null, certs: { update: 'u', client: 'c', notAfterMs: 9_000 } })],
      },
      0,
    );
    // d3 fails with the certificate it already had: no new certificate, fine.
    await j.appendPartition(
      4,
      {
        o: 'shard-b',
        token: 2,
        devices: [
          snapshot('d3', {
            last: { atMs: 1, ok: false, code: 'NONCE_STALE', message: '' },
            certs: { update: 'u', client: 'c', notAfterMs: 9_000 },
          }),
        ],
      },
      4,
    );
    // d2 fails but its snapshot carries a certificate newer than the one it had: flagged.
    const bad = await j.appendPartition(
      3,
      {
        o: 'shard-a',
        token: 7,
        devices: [
          snapshot('d2', {
            last: { atMs: 2, ok: false, code: 'MEASUREMENT_MISMATCH', message: 'kernel' },
            certs: { update: 'u', client: 'c', notAfterMs: 3_000 },
          }),
        ],
      },
      3,
    );
    // An ok outcome without certificates and one without an outcome record nothing.
    await j.appendPartition(
      5,
      { o: 'shard-c', token: 1, devices: [snapshot('d4', { certs: null }), snapshot('d5', { last: null })] },
      0,
    );

    const s = await readStoredHistory(j);
    expect(s.appends).toEqual([
      { seq: 1, partition: 3, owner: 'shard-a', token: 7, devices: 0 },
      { seq: 2, partition: 3, owner: 'shard-a', token: 7, devices: 2 },
      { seq: 3, partition: 3, owner: 'shard-a', token: 7, devices: 1 },
      { seq: 4, partition: 4, owner: 'shard-b', token: 2, devices: 1 },
      { seq: 5, partition: 4, owner: 'shard-b', token: 2, devices: 1 },
      { seq: 6, partition: 3, owner: 'shard-a', token: 7, devices: 1 },
      { seq: 7, partition: 5, owner: 'shard-c', token: 1, devices: 2 },
    ]);
    expect(bad).toBe(6);
    const at = (seq: number) => ({ seq, owner: 'shard-a', token: 7, nonce: 'bm9uY2U=' });
    expect([...s.attestations]).toEqual([
      [certKey('d1', 1_000), [at(2), at(3)]],
      [certKey('d2', 2_000), [at(2)]],
    ]);
    expect(s.certsOnFailure).toEqual([
      { device: 'd2', seq: 6, code: 'MEASUREMENT_MISMATCH', notAfterMs: 3_000 },
    ]);
    expect(s.reports.size).toBe(0);
  });

  it('stored - device update reports are counted by deployment/device/reportId; other records ignored', async () => {
    const j = memoryJournal();
    await j.append({ t: 'boot', shardId: 'shard-0', atWallMs: 1 }, 'b1');
    await j.append(deviceReport('dep-1', 'd1', 'r1'), 'x1');
    await j.append(deviceReport('dep-1', 'd1', 'r1'), 'x2'); // stored twice (different ids)
    await j.append(deviceReport('dep-1', 'd1', 'r1'), 'x2'); // same id: deduplicated by the journal
    await j.append(deviceReport('dep-2', 'd1', 'r1'), 'x3');
    await j.append(
      { t: 'rollout', id: 'dep-1', msg: JSON.stringify({ type: 'rollout.tick' }), atMs: 0 },
      'x4',
    );
    await j.append({ t: 'rollout', id: 'dep-1', msg: 'not json', atMs: 0 }, 'x5');
    const s = await readStoredHistory(j);
    expect([...s.reports]).toEqual([
      [reportKey('dep-1', 'd1', 'r1'), 2],
      [reportKey('dep-2', 'd1', 'r1'), 1],
    ]);
    expect(reportKey('dep-1', 'd1', 'r1')).toBe('dep-1/d1/r1');
    expect(s.appends).toEqual([]);
    expect(s.attestations.size).toBe(0);
  });

  it('stored - an empty journal reads as an empty history; the builder folds entries one at a time', async () => {
    expect(await readStoredHistory(memoryJournal())).toEqual(emptyStored());
    const b = new StoredHistoryBuilder();
    b.add({ kind: 'partition', seq: 9, partition: 0, batch: { o: 'o', token: 1, devices: [snapshot('d')] } });
    b.add({ kind: 'service', seq: 10, id: 'i', record: deviceReport('dep', 'd', 'r') });
    expect(b.history.attestations.get(certKey('d', 1_000))).toEqual([
      { seq: 9, owner: 'o', token: 1, nonce: 'bm9uY2U=' },
    ]);
    expect(b.history.reports.get(reportKey('dep', 'd', 'r'))).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Checkers
// ---------------------------------------------------------------------------------------------

describe('verdict: checkers', () => {
  it('healthy-attested - only healthy powered-on devices count; a missing one fails with evidence', () => {
    const devices = [
      device('a'),
      device('b', { attested: false, certified: 2, lastOkAtMs: 12_345 }),
      device('c', { attested: false, poweredOn: false }),
      device('d', { attested: false, fault: 'unendorsed', certified: 0 }),
      device('e', { attested: false, certified: 0, lastOkAtMs: null }),
    ];
    const c = checkHealthyAttested(history({ devices }));
    expect(c.pass).toBe(false);
    expect(c.id).toBe('healthy-attested');
    expect(c.summary).toBe('1 of 3 healthy devices hold a valid certificate at the end');
    expect(c.evidence).toEqual([
      'b: no valid certificate (certified 2×, last at 12.3 s)',
      'e: no valid certificate (certified 0×, last at never)',
    ]);
    const ok = checkHealthyAttested(history({ devices: devices.slice(0, 1) }));
    expect(ok).toMatchObject({ pass: true, evidence: [] });
  });

  it('healthy-attested - evidence is capped, with how many more', () => {
    const devices = Array.from({ length: MAX_EVIDENCE + 3 }, (_, i) => device(`d${i}`, { attested: false }));
    const c = checkHealthyAttested(history({ devices }));
    expect(c.evidence).toHaveLength(MAX_EVIDENCE + 1);
    expect(c.evidence.at(-1)).toBe('... and 3 more');
  });

  it('no-cert-for-failed-evidence - a certified tamperedKernel device fails; a certified clonedKey does not count', () => {
    const base = [
      device('cloned', { fault: 'clonedKey', certified: 3 }),
      device('replay', { fault: 'replay', certified: 1 }),
      device('unendorsed', { fault: 'unendorsed', certified: 0 }),
      device('healthy', { certified: 4 }),
    ];
    const clean = checkNoCertForFailedEvidence(history({ devices: base }), emptyStored());
    expect(clean.pass).toBe(true);
    expect(clean.summary).toContain('1 devices whose evidence always fails');
    expect(clean.summary).toContain('0 certified');
    expect(clean.summary).toContain('0 failed attestations stored with a new certificate');

    const bad = checkNoCertForFailedEvidence(
      history({ devices: [...base, device('tk', { fault: 'tamperedKernel', certified: 2 })] }),
      null,
    );
    expect(bad.pass).toBe(false);
    expect(bad.evidence).toEqual(['tk (tamperedKernel): received certificates 2×']);
    expect(bad.summary).toContain('journal not read');
  });

  it('no-cert-for-failed-evidence - a stored failed attestation with a new certificate fails', () => {
    const stored = emptyStored({
      certsOnFailure: [{ device: 'd9', seq: 41, code: 'MEASUREMENT_MISMATCH', notAfterMs: 5 }],
    });
    const c = checkNoCertForFailedEvidence(history({ devices: [device('d9')] }), stored);
    expect(c.pass).toBe(false);
    expect(c.evidence).toEqual([
      'd9: attestation failed (MEASUREMENT_MISMATCH) but journal seq 41 stored a new certificate',
    ]);
  });

  it('error-budget - a count budget reached by a completed rollout fails; a halted one passes', () => {
    const budgets = [{ name: 'app', count: 5 }];
    const completed = checkErrorBudgets(
      [rollout({ failures: 5, state: 'completed', currentWave: 3 })],
      budgets,
    );
    expect(completed.pass).toBe(false);
    expect(completed.evidence).toEqual([
      'app: 5 failures of 100 reached its budget (count 5) but it is completed in wave 3/3',
    ]);
    expect(completed.summary).toBe('1 rollouts, 1 reached their error budget, 0 of those halted');

    const halted = checkErrorBudgets([rollout({ failures: 7, state: 'halted' })], budgets);
    expect(halted).toMatchObject({ pass: true, evidence: [] });
    expect(halted.summary).toBe('1 rollouts, 1 reached their error budget, 1 of those halted');
    expect(checkErrorBudgets([rollout({ failures: 7, state: 'cancelled' })], budgets).pass).toBe(true);

    // Below the budget: nothing to say whatever the state.
    const under = checkErrorBudgets([rollout({ failures: 4, state: 'running' })], budgets);
    expect(under).toMatchObject({
      pass: true,
      summary: '1 rollouts, 0 reached their error budget, 0 of those halted',
    });
  });

  it('error-budget - a share budget counts failures over attempted; unstarted and unbudgeted rollouts are skipped', () => {
    const budgets = [{ name: 'app', share: 0.2 }, { name: 'never' }];
    const over = checkErrorBudgets(
      [
        rollout({ failures: 2, attempted: 10, state: 'running', currentWave: 1 }),
        rollout({ name: 'never', failures: 100, state: 'completed' }),
        rollout({ name: 'other', failures: 100, state: 'completed' }),
        rollout({ name: 'app', deploymentId: null, state: 'not-started', failures: 9, attempted: 9 }),
      ],
      budgets,
    );
    expect(over.pass).toBe(false);
    expect(over.evidence).toEqual([
      'app: 2 failures of 10 reached its budget (share 0.2) but it is running in wave 1/3',
    ]);
    expect(over.summary).toBe('3 rollouts, 1 reached their error budget, 0 of those halted');
    expect(
      checkErrorBudgets([rollout({ failures: 1, attempted: 10, state: 'completed' })], budgets).pass,
    ).toBe(true);
    expect(checkErrorBudgets([rollout({ failures: 0, attempted: 0 })], budgets).pass).toBe(true);
    const both = checkErrorBudgets(
      [rollout({ failures: 9, attempted: 10 })],
      [{ name: 'app', count: 50, share: 0.5 }],
    );
    expect(both.evidence[0]).toContain('(count 50, share 0.5)');
  });

  it('error-budget - budgets come from the scenario rollouts', () => {
    const s = parseScenarioYaml(`name: b
duration: 1h
fleet:
  size: 100
images:
  - { id: next, kind: app, name: blinky, version: "1.1.0", size: 1KiB }
rollouts:
  - { name: both, image: next, group: Production, waves: ["100%"], successThreshold: 0.9, errorCondition: { count: 5, share: 20% } }
  - { name: share, image: next, group: Production, waves: ["100%"], successThreshold: 0.9, errorCondition: { share: 0.1 } }
`);
    expect(errorBudgets(s)).toEqual([
      { name: 'both', count: 5, share: 0.2 },
      { name: 'share', count: undefined, share: 0.1 },
    ]);
    // A share-only budget is not a count budget of 0.
    const c = checkErrorBudgets([rollout({ name: 'share', failures: 1, attempted: 100 })], errorBudgets(s));
    expect(c.pass).toBe(true);
  });

  it('stored-once - acknowledged but not stored is lost, stored twice is a duplicate, once passes', () => {
    const h = history({
      certified: [
        ['d1', 1_000],
        ['d2', 2_000],
        ['d3', 3_000],
      ],
      reports: [
        { device: 'd1', deployment: 'dep', reportId: 'r1', outcome: 'succeeded' },
        { device: 'd2', deployment: 'dep', reportId: 'r2', outcome: 'failed' },
        { device: 'd3', deployment: 'dep', reportId: 'r3', outcome: 'rolled-back' },
      ],
    });
    const stored = emptyStored({
      attestations: new Map([
        [certKey('d1', 1_000), [{ seq: 1, owner: 'shard-a', token: 1, nonce: 'n1' }]],
        [
          certKey('d2', 2_000),
          [
            { seq: 2, owner: 'shard-a', token: 1, nonce: 'n2' },
            { seq: 5, owner: 'shard-b', token: 2, nonce: 'n2' },
          ],
        ],
        [certKey('d3', 9_999), [{ seq: 3, owner: 'shard-a', token: 1, nonce: 'n3' }]],
      ]),
      reports: new Map([
        [reportKey('dep', 'd1', 'r1'), 1],
        [reportKey('dep', 'd3', 'r3'), 3],
      ]),
    });
    const c = checkStoredOnce(h, stored);
    expect(c.pass).toBe(false);
    expect(c.summary).toBe('3 certificates and 3 update reports acknowledged: 2 lost, 2 stored twice');
    expect(c.evidence).toEqual([
      'd2: certificate valid until 2000 acknowledged, stored 2×: seq 2 by shard-a (token 1, nonce n2), seq 5 by shard-b (token 2, nonce n2)',
      'd3: certificate valid until 3000 acknowledged, not in any partition log',
      'd2: report r2 (failed) to dep acknowledged, not in the journal',
      'd3: report r3 (rolled-back) to dep acknowledged, stored 3×',
    ]);
    const once = checkStoredOnce(history({ certified: [['d1', 1_000]], reports: [h.reports[0]!] }), stored);
    expect(once).toMatchObject({ pass: true, evidence: [] });
  });

  it('single-owner - wraps the ownership checker over the stored appends', () => {
    const c = checkOwnership(
      emptyStored({
        appends: [
          { seq: 1, partition: 0, owner: 'a', token: 1, devices: 0 },
          { seq: 2, partition: 0, owner: 'b', token: 2, devices: 0 },
          { seq: 3, partition: 0, owner: 'a', token: 1, devices: 4 },
        ],
      }),
    );
    expect(c.pass).toBe(false);
    expect(c.evidence).toEqual(['partition 0: seq 3 written by a (4 devices) after b took over at seq 2']);
  });

  it('recovery - affected devices and time to re-attest after the heal', () => {
    const fault: FaultSpan = { id: 'f0', label: 'partition shard-0 | nats', startMs: 10_000, endMs: 20_000 };
    const devices = [
      device('early', { outages: [[12_000, 21_000]] }), // 1 s after the heal
      device('before', { outages: [[8_000, 23_000]] }), // began before the fault: 3 s
      device('during', { outages: [[15_000, 18_000]] }), // back before the heal: 0
      device('late', { outages: [[19_999, 30_000]] }), // 10 s
      device('over', { outages: [[2_000, 9_999]] }), // ended before the fault: not affected
      device('after', { outages: [[20_001, 25_000]] }), // began after the heal: not affected
      device('hostile', { fault: 'tamperedKernel', outages: [[12_000, null]] }), // not healthy: ignored
      device('fine'),
    ];
    const { check, recoveries } = checkRecovery(history({ devices }), [fault]);
    expect(check.pass).toBe(true);
    expect(recoveries).toEqual([
      {
        fault: 'partition shard-0 | nats',
        fromMs: 20_000,
        affected: 4,
        recovered: 4,
        p50Ms: 1_000,
        p99Ms: 10_000,
        maxMs: 10_000,
      },
    ]);
    expect(check.summary).toBe('1 faults, 4 device outages, worst p99 time to re-attest after a heal 10.0 s');
  });

  it('recovery - a fault never healed owns the outages only until the next fault starts', () => {
    const faults: FaultSpan[] = [
      { id: 'f0', label: 'kill shard-1', startMs: 10_000, endMs: null },
      { id: 'f1', label: 'partition devices | nats', startMs: 20_000, endMs: 25_000 },
    ];
    const devices = [
      device('x', { outages: [[12_000, 14_000]] }), // during the kill only: 4 s after it
      device('y', { outages: [[21_000, 26_000]] }), // began after the partition started: the partition's
      device('z', { outages: [[19_000, 22_000]] }), // open across both
    ];
    const { recoveries } = checkRecovery(history({ devices }), faults);
    expect(recoveries.map((r) => [r.fault, r.fromMs, r.affected, r.maxMs])).toEqual([
      ['kill shard-1', 10_000, 2, 12_000],
      ['partition devices | nats', 25_000, 2, 1_000],
    ]);
    expect(recoveries[0]?.p50Ms).toBe(4_000);
    expect(recoveries[1]?.p50Ms).toBe(0);
  });

  it('recovery - a shard fault carries its takeover time to its recovery; other faults have none', () => {
    const { recoveries } = checkRecovery(history(), [
      { id: 'f0', label: 'kill shard-1', startMs: 1_000, endMs: 2_000, takeoverMs: 4_200 },
      { id: 'f1', label: 'pause shard-2', startMs: 3_000, endMs: 4_000, takeoverMs: null },
      { id: 'f2', label: 'latency devices | nats', startMs: 5_000, endMs: 6_000 },
    ]);
    expect(recoveries.map((r) => r.takeoverMs)).toEqual([4_200, null, undefined]);
    expect('takeoverMs' in (recoveries[2] ?? {})).toBe(false);
  });

  it('recovery - a device that never got service back fails; a fault never healed counts from its start', () => {
    const faults: FaultSpan[] = [
      { id: 'f1', label: 'kill shard-1', startMs: 30_000, endMs: null },
      { id: 'f2', label: 'pause nats-0', startMs: 5_000, endMs: 6_000 },
    ];
    const devices = [
      device('a', { outages: [[31_000, 34_500]] }),
      device('b', { outages: [[40_000, null]] }),
      device('c', { outages: [[29_000, 30_500]] }),
    ];
    const { check, recoveries } = checkRecovery(history({ devices }), faults);
    expect(check.pass).toBe(false);
    expect(check.evidence).toEqual(['b: lost service at 40.0 s during "kill shard-1" and never got it back']);
    expect(recoveries[0]).toEqual({
      fault: 'kill shard-1',
      fromMs: 30_000,
      affected: 3,
      recovered: 2,
      p50Ms: 500,
      p99Ms: 4_500,
      maxMs: 4_500,
    });
    expect(recoveries[1]).toEqual({
      fault: 'pause nats-0',
      fromMs: 6_000,
      affected: 0,
      recovered: 0,
      p50Ms: null,
      p99Ms: null,
      maxMs: null,
    });
  });
});

// ---------------------------------------------------------------------------------------------
// The verdict
// ---------------------------------------------------------------------------------------------

describe('verdict: judge and render', () => {
  const bucket = (s: number, ok: number, unavailable = 0, rejected = 0, reports = 0) => ({
    s,
    ok,
    unavailable,
    rejected,
    reports,
  });

  const good = (): { h: RunHistory; stored: StoredHistory } => ({
    h: history({
      devices: [device('d1', { outages: [[3_000, 6_500]] }), device('d2')],
      certified: [['d1', 1_000]],
      buckets: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((s) =>
        bucket(s, s + 1, s === 4 ? 2 : 0, 0, s === 9 ? 3 : 0),
      ),
    }),
    stored: emptyStored({
      attestations: new Map([[certKey('d1', 1_000), [{ seq: 1, owner: 'shard-0', token: 1, nonce: 'n' }]]]),
    }),
  });
  const faults: FaultSpan[] = [
    { id: 'f0', label: 'kill shard-0', startMs: 2_500, endMs: 6_000 },
    { id: 'f1', label: 'latency devices | nats', startMs: 9_000, endMs: null },
  ];

  it('judge - every check passing passes, in a fixed order', () => {
    const { h, stored } = good();
    const v = judge({
      history: h,
      stored,
      summary: { rollouts: [] },
      budgets: [],
      faults: faults.slice(0, 1),
    });
    expect(v.pass).toBe(true);
    expect(v.checks.map((c) => [c.id, c.pass])).toEqual([
      ['healthy-attested', true],
      ['single-owner', true],
      ['no-cert-for-failed-evidence', true],
      ['error-budget', true],
      ['stored-once', true],
      ['recovery', true],
    ]);
    expect(v.recoveries).toEqual([
      { fault: 'kill shard-0', fromMs: 6_000, affected: 1, recovered: 1, p50Ms: 500, p99Ms: 500, maxMs: 500 },
    ]);
  });

  it('judge - one failing check fails the verdict; without a journal its checks fail', () => {
    const { h, stored } = good();
    const failing = judge({
      history: h,
      stored,
      summary: { rollouts: [rollout({ failures: 10, state: 'completed' })] },
      budgets: [{ name: 'app', count: 1 }],
      faults: [],
    });
    expect(failing.pass).toBe(false);
    expect(failing.checks.filter((c) => !c.pass).map((c) => c.id)).toEqual(['error-budget']);

    const blind = judge({ history: h, stored: null, summary: { rollouts: [] }, budgets: [], faults: [] });
    expect(blind.pass).toBe(false);
    expect(blind.checks.filter((c) => !c.pass).map((c) => c.id)).toEqual(['single-owner', 'stored-once']);
    expect(blind.checks.find((c) => c.id === 'stored-once')?.summary).toContain('kept no journal');
  });

  it('timeline - rows of rowSeconds with average rates and fault marks', () => {
    const { h, stored } = good();
    const v = judge({ history: h, stored, summary: { rollouts: [] }, budgets: [], faults, rowSeconds: 4 });
    expect(v.timeline.map((r) => [r.fromS, r.toS])).toEqual([
      [0, 4],
      [4, 8],
      [8, 10],
    ]);
    // ok per second: (1+2+3+4)/4, (5+6+7+8)/4, (9+10)/2.
    expect(v.timeline.map((r) => r.okPerS)).toEqual([2.5, 6.5, 9.5]);
    expect(v.timeline.map((r) => r.unavailablePerS)).toEqual([0, 0.5, 0]);
    expect(v.timeline.map((r) => r.reportsPerS)).toEqual([0, 0, 1.5]);
    expect(v.timeline.map((r) => r.faults)).toEqual([
      ['+kill shard-0'],
      ['-kill shard-0'],
      ['+latency devices | nats'],
    ]);
  });

  it('timeline - a fault spanning a whole row is marked with a space; default rows are about 30', () => {
    const h = history({ buckets: Array.from({ length: 90 }, (_, s) => bucket(s, 1)) });
    const v = judge({
      history: h,
      stored: emptyStored(),
      summary: { rollouts: [] },
      budgets: [],
      faults: [{ id: 'f0', label: 'partition', startMs: 1_000, endMs: 8_500 }],
    });
    expect(v.timeline).toHaveLength(30);
    expect(v.timeline.slice(0, 4).map((r) => r.faults)).toEqual([
      ['+partition'],
      [' partition'],
      ['-partition'],
      [],
    ]);
  });

  it('render - a line per check with its mark, summary and evidence, then recovery and timeline', () => {
    const { h, stored } = good();
    const v = judge({
      history: {
        ...h,
        devices: [...h.devices, device('d3', { attested: false, certified: 0, lastOkAtMs: null })],
      },
      stored,
      summary: { rollouts: [] },
      budgets: [],
      faults,
      rowSeconds: 5,
    });
    const text = renderVerdict(v);
    const lines = text.split('\n');
    expect(lines[0]).toBe('Verdict  ✗ FAIL');
    expect(lines).toContain('  ✗ every healthy device ends attested');
    expect(lines).toContain('      2 of 3 healthy devices hold a valid certificate at the end');
    expect(lines).toContain('      · d3: no valid certificate (certified 0×, last at never)');
    expect(lines).toContain('  ✓ no partition owned by two shards at once');
    expect(text).toContain('Recovery (healthy devices');
    expect(
      lines.some((l) => /^ {4}kill shard-0 +\s+6\.0s\s+1\s+1\s+0\.5s\s+0\.5s\s+0\.5s(\s|$)/.test(l)),
    ).toBe(true);
    expect(text).toContain('Timeline (wall seconds');
    expect(lines.some((l) => l.includes('0-5s') && l.includes('+kill shard-0'))).toBe(true);
    expect(
      lines.some((l) => l.includes('5-10s') && l.includes('-kill shard-0, +latency devices | nats')),
    ).toBe(true);

    const takeover = renderVerdict(
      judge({
        history: good().h,
        stored: good().stored,
        summary: { rollouts: [] },
        budgets: [],
        faults: [
          { ...faults[0]!, takeoverMs: 7_250 },
          { ...faults[1]!, takeoverMs: null },
        ],
      }),
    ).split('\n');
    expect(takeover.some((l) => /^ {4}kill shard-0 .* 7\.3s$/.test(l))).toBe(true);
    expect(takeover.some((l) => /^ {4}latency devices \| nats .* never$/.test(l))).toBe(true);

    const passing = renderVerdict(
      judge({ history: good().h, stored: good().stored, summary: { rollouts: [] }, budgets: [], faults: [] }),
    );
    expect(passing.split('\n')[0]).toBe('Verdict  ✓ PASS');
    expect(passing).not.toContain('✗');
    expect(passing).not.toContain('Recovery');
  });
});
