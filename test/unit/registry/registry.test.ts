import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ALERT_SEVERITY,
  AlertLog,
  DeviceRegistry,
  deviceState,
  tokenHash,
} from '../../../services/registry/index.js';
import type { Alert, AlertQuery, DeviceRecord } from '../../../services/registry/index.js';
import { REJECT_CODES, parseDeviceId, parseTenantId } from '../../../proto/codec/index.js';
import type { DeviceId, RejectCode, TenantId } from '../../../proto/codec/index.js';
import { createRng } from '../../../actors/runtime/index.js';
import { generateKeyPairSync } from 'node:crypto';

/** A parsed P-256 public key, as the shard keeps per endorsed device. */
const parsedKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;

const TA = parseTenantId('t-000000000000000a') as TenantId;
const TB = parseTenantId('t-000000000000000b') as TenantId;
const DEV1 = '1'.repeat(128);
const DEV2 = '2'.repeat(128);

/** Journal positions: the log is fed in journal order, with gaps (other records sit between alerts). */
const nextSeq = new WeakMap<AlertLog, number>();

function raise(
  log: AlertLog,
  tenantId: TenantId | null,
  atMs: number,
  type: RejectCode = 'BAD_SIGNATURE',
  deviceId = DEV1,
): Alert {
  const seq = (nextSeq.get(log) ?? 0) + 1 + (atMs % 3);
  nextSeq.set(log, seq);
  const alert: Alert = {
    seq,
    id: `a-test-${seq}`,
    tenantId,
    type,
    severity: ALERT_SEVERITY[type],
    deviceId,
    atMs,
    message: `${type} at ${atMs}`,
    evidence: { k: 'v' },
  };
  expect(log.add(alert)).toBe(true);
  return alert;
}

function query(tenantId: TenantId | null, patch: Partial<AlertQuery> = {}): AlertQuery {
  return { tenantId, sinceMs: 0, afterSeq: 0, limit: 1000, ...patch };
}

/** Follows nextSeq until the end; returns every alert seen, page by page. */
function pageAll(log: AlertLog, q: AlertQuery): { alerts: Alert[]; pages: number } {
  const alerts: Alert[] = [];
  let afterSeq = q.afterSeq;
  let pages = 0;
  for (;;) {
    const page = log.list({ ...q, afterSeq });
    pages++;
    alerts.push(...page.alerts);
    if (page.nextSeq === null) return { alerts, pages };
    expect(page.nextSeq).toBeGreaterThan(afterSeq);
    afterSeq = page.nextSeq;
    if (pages > 10_000) throw new Error('paging does not terminate');
  }
}

describe('registry alert log', () => {
  it('alerts - an id already held is not added again (two shards detecting one thing store it once)', () => {
    const log = new AlertLog();
    const a = raise(log, TA, 1, 'BAD_SIGNATURE');
    expect(log.add({ ...a, seq: a.seq + 10 })).toBe(false);
    expect(log.count(TA)).toBe(1);
    expect(ALERT_SEVERITY.BAD_SIGNATURE).toBe('critical');
    expect(ALERT_SEVERITY.CLOCK_SKEW).toBe('low');
    for (const code of Object.values(REJECT_CODES)) expect(ALERT_SEVERITY[code]).toBeDefined();
  });

  it('alerts - subscribers of a tenant hear of its new alerts only, until they unsubscribe', () => {
    const log = new AlertLog();
    const heard: string[] = [];
    const stop = log.subscribe(TA, (a) => heard.push(a.id));
    const a1 = raise(log, TA, 1);
    raise(log, TB, 2);
    raise(log, null, 3);
    stop();
    raise(log, TA, 4);
    expect(heard).toEqual([a1.id]);
  });

  it('alerts - read walks ordinals and counts alerts dropped before the reader reached them', () => {
    const log = new AlertLog(3);
    const seqs = [1, 2, 3, 4, 5].map((i) => raise(log, TA, i).seq);
    // A reader at the very start missed the two dropped alerts.
    expect(log.read(TA, 1, 10)).toEqual({ alerts: log.list(query(TA)).alerts, missed: 2, next: 6 });
    // Positioned after a kept alert: exact, nothing missed.
    const from = log.ordinalAfter(TA, seqs[2]!);
    expect(log.read(TA, from, 10).alerts.map((a) => a.seq)).toEqual(seqs.slice(3));
    expect(log.read(TA, from, 10).missed).toBe(0);
    // After the newest: nothing yet; the next alert is read from there.
    const end = log.ordinalAfter(TA, Infinity);
    expect(log.read(TA, end, 10)).toEqual({ alerts: [], missed: 0, next: end });
    const a6 = raise(log, TA, 6);
    expect(log.read(TA, end, 10).alerts).toEqual([a6]);
    // Positioned inside the dropped range: reading starts at the oldest dropped (an upper bound).
    expect(log.read(TA, log.ordinalAfter(TA, seqs[0]!), 10).missed).toBe(3);
  });

  it("alerts - a tenant's list never contains another tenant's alerts", () => {
    const log = new AlertLog();
    for (let i = 0; i < 30; i++) raise(log, [TA, TB, null][i % 3]!, i);
    const a = log.list(query(TA)).alerts;
    const b = log.list(query(TB)).alerts;
    const none = log.list(query(null)).alerts;
    expect(a).toHaveLength(10);
    expect(b).toHaveLength(10);
    expect(none).toHaveLength(10);
    expect(a.every((x) => x.tenantId === TA)).toBe(true);
    expect(b.every((x) => x.tenantId === TB)).toBe(true);
    expect(none.every((x) => x.tenantId === null)).toBe(true);
    expect(log.count(TA)).toBe(10);
    const other = parseTenantId('t-00000000000000ff') as TenantId;
    expect(log.list(query(other))).toEqual({ alerts: [], nextSeq: null });
    expect(log.count(other)).toBe(0);
  });

  it('alerts - paging with afterSeq/nextSeq returns every alert exactly once, oldest first', () => {
    const log = new AlertLog();
    const mine: number[] = [];
    for (let i = 0; i < 47; i++) {
      const a = raise(log, i % 4 === 0 ? TB : TA, i);
      if (a.tenantId === TA) mine.push(a.seq);
    }
    for (const limit of [1, 2, 5, 7, 35, 100]) {
      const { alerts, pages } = pageAll(log, query(TA, { limit }));
      expect(
        alerts.map((a) => a.seq),
        `limit ${limit}`,
      ).toEqual(mine);
      expect(pages).toBeGreaterThanOrEqual(Math.ceil(mine.length / limit));
      expect(log.list(query(TA, { limit })).alerts.length).toBe(Math.min(limit, mine.length));
    }
  });

  it('alerts - the last page reports nextSeq null', () => {
    const log = new AlertLog();
    for (let i = 0; i < 4; i++) raise(log, TA, i);
    const p1 = log.list(query(TA, { limit: 2 }));
    expect(p1.alerts).toHaveLength(2);
    expect(p1.nextSeq).toBe(p1.alerts[1]!.seq);
    const p2 = log.list(query(TA, { limit: 2, afterSeq: p1.nextSeq! }));
    expect(p2.alerts).toHaveLength(2);
    expect(p2.nextSeq).toBeNull();
  });

  it('alerts - filters by deviceId, type and sinceMs (inclusive), and paging still sees each match once', () => {
    const log = new AlertLog();
    const expected: number[] = [];
    for (let i = 0; i < 60; i++) {
      const dev = i % 2 === 0 ? DEV1 : DEV2;
      const type: RejectCode = i % 3 === 0 ? 'NONCE_REUSED' : 'BAD_SIGNATURE';
      const a = raise(log, TA, i * 10, type, dev);
      if (dev === DEV2 && type === 'NONCE_REUSED' && a.atMs >= 150) expected.push(a.seq);
    }
    const q = query(TA, { deviceId: DEV2, type: 'NONCE_REUSED', sinceMs: 150 });
    expect(log.list(q).alerts.map((a) => a.seq)).toEqual(expected);
    for (const limit of [1, 3])
      expect(pageAll(log, { ...q, limit }).alerts.map((a) => a.seq)).toEqual(expected);

    const since = log.list(query(TA, { sinceMs: 300 })).alerts;
    expect(since[0]!.atMs).toBe(300);
    expect(since.every((a) => a.atMs >= 300)).toBe(true);
    expect(log.list(query(TA, { deviceId: DEV1 })).alerts.every((a) => a.deviceId === DEV1)).toBe(true);
    expect(log.list(query(TA, { type: 'CLOCK_SKEW' })).alerts).toEqual([]);
  });

  it('alerts - capacity drops the oldest alerts of that tenant only and counts drops', () => {
    const log = new AlertLog(3);
    const seqs = [1, 2, 3, 4, 5].map((i) => raise(log, TA, i).seq);
    raise(log, TB, 99);
    expect(log.count(TA)).toBe(3);
    expect(log.list(query(TA)).alerts.map((a) => a.seq)).toEqual(seqs.slice(2));
    expect(log.count(TB)).toBe(1);
    expect(log.dropped).toBe(2);
    // paging from before the dropped range starts at the oldest kept alert
    expect(pageAll(log, query(TA, { limit: 1 })).alerts.map((a) => a.seq)).toEqual(seqs.slice(2));
  });

  it('alerts - paging returns each matching alert exactly once for random logs and limits', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ t: fc.integer({ min: 0, max: 2 }), dev: fc.boolean(), at: fc.nat({ max: 1000 }) }),
          {
            maxLength: 120,
          },
        ),
        fc.integer({ min: 1, max: 20 }),
        fc.option(fc.boolean(), { nil: undefined }),
        fc.nat({ max: 1000 }),
        (items, limit, devFilter, sinceMs) => {
          const log = new AlertLog();
          const tenants = [TA, TB, null] as const;
          for (const it of items) raise(log, tenants[it.t]!, it.at, 'BAD_SIGNATURE', it.dev ? DEV1 : DEV2);
          const deviceId = devFilter === undefined ? undefined : devFilter ? DEV1 : DEV2;
          const q: AlertQuery = {
            ...query(TA, { limit, sinceMs }),
            ...(deviceId === undefined ? {} : { deviceId }),
          };
          const all = log.list({ ...q, limit: 100_000 }).alerts;
          const paged = pageAll(log, q).alerts;
          expect(paged.map((a) => a.seq)).toEqual(all.map((a) => a.seq));
          expect(new Set(paged.map((a) => a.seq)).size).toBe(paged.length);
          for (const a of paged) {
            expect(a.tenantId).toBe(TA);
            expect(a.atMs).toBeGreaterThanOrEqual(sinceMs);
            if (deviceId !== undefined) expect(a.deviceId).toBe(deviceId);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('registry device state', () => {
  const rng = createRng('registry');
  const id = parseDeviceId(Buffer.from(rng.bytes(64)).toString('hex')) as DeviceId;

  function record(patch: Partial<DeviceRecord> = {}): DeviceRecord {
    const reg = new DeviceRegistry();
    reg.endorse(id, rng.bytes(65), parsedKey);
    return Object.assign(reg.get(id)!, patch);
  }
  const certs = (notAfterMs: number): DeviceRecord['certificates'] => ({
    update: new Uint8Array(1),
    client: new Uint8Array(1),
    notAfterMs,
  });
  const ok = { atMs: 100, ok: true, code: 'OK' as const, message: '' };
  const failed = { atMs: 200, ok: false, code: 'MEASUREMENT_MISMATCH' as const, message: 'tampered' };

  it('device-state - an endorsed, unclaimed device is UNCLAIMED whatever else it holds', () => {
    expect(deviceState(record(), 0)).toBe('UNCLAIMED');
    expect(deviceState(record({ lastAttestation: ok, certificates: certs(10_000) }), 0)).toBe('UNCLAIMED');
  });

  it('device-state - a claimed device that never attested is CLAIMED', () => {
    expect(deviceState(record({ tenantId: TA }), 0)).toBe('CLAIMED');
  });

  it('device-state - ATTESTED while certificates are valid, EXPIRED from notAfter on', () => {
    const r = record({ tenantId: TA, lastAttestation: ok, certificates: certs(10_000) });
    expect(deviceState(r, 9_999)).toBe('ATTESTED');
    expect(deviceState(r, 10_000)).toBe('EXPIRED');
    expect(deviceState(r, 50_000)).toBe('EXPIRED');
  });

  it('device-state - a failed attestation with still-valid certificates stays ATTESTED, else FAILED', () => {
    expect(
      deviceState(record({ tenantId: TA, lastAttestation: failed, certificates: certs(10_000) }), 5_000),
    ).toBe('ATTESTED');
    expect(
      deviceState(record({ tenantId: TA, lastAttestation: failed, certificates: certs(10_000) }), 10_000),
    ).toBe('FAILED');
    expect(deviceState(record({ tenantId: TA, lastAttestation: failed, certificates: null }), 0)).toBe(
      'FAILED',
    );
  });

  it('device-state - a successful attestation without certificates reads EXPIRED', () => {
    expect(deviceState(record({ tenantId: TA, lastAttestation: ok, certificates: null }), 0)).toBe('EXPIRED');
  });

  it('device-registry - endorse registers once with a blank record; a second endorse is refused', () => {
    const reg = new DeviceRegistry();
    const key = rng.bytes(65);
    expect(reg.endorse(id, key, parsedKey)).toBe(true);
    expect(reg.endorse(id, rng.bytes(65), parsedKey)).toBe(false);
    expect(reg.size).toBe(1);
    const r = reg.get(id)!;
    expect(r.attestationPublicKey).toBe(key);
    expect(r.tenantId).toBeNull();
    expect(r.lastAttestation).toBeNull();
    expect(r.certificates).toBeNull();
    expect(r.bootId).toBeNull();
    expect(r.bootCount).toBe(0);
    expect(r.compromised).toBe(false);
    expect([...reg.values()]).toEqual([r]);
    expect(reg.get(parseDeviceId('0'.repeat(128)) as DeviceId)).toBeUndefined();
  });

  it('tenants - tokenHash is hex SHA-256 and distinguishes tokens', () => {
    expect(tokenHash('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(tokenHash('a')).not.toBe(tokenHash('b'));
  });
});
