/**
 * Crypto pool against real worker threads. Workers run the compiled module, so
 * `npm run build` (tsc -> dist/) must have run first; `npm test` does that.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deriveP256Key,
  deviceIdFromPublicKey,
  privateKeyFromScalar,
  signP1363,
} from '../../../actors/crypto/index.js';
import {
  assembleCertificate,
  buildDeviceTbs,
  createRootCa,
  createTenantCa,
  randomSerial,
} from '../../../services/certificates/index.js';
import {
  CryptoPoolError,
  createCryptoPool,
  defaultWorkerFile,
  runCryptoOnlyLimit,
  type CryptoPool,
  type CryptoPoolMeter,
  type VerifyIssueItem,
} from '../../../services/crypto-pool/index.js';

const T0 = Date.UTC(2026, 0, 1);
const root = createRootCa({ commonName: 'Pool Root', notBeforeMs: T0, validityMs: 1e11 });
const tenant = createTenantCa(root, { tenantId: 'tenant-pool', name: 'Pool Tenant', notBeforeMs: T0 });

/** Records metric activity so the test can check the pool reports through a Meter. */
function recordingMeter() {
  const seen = new Map<string, number[]>();
  const rec = (name: string) => (v?: number) => seen.set(name, [...(seen.get(name) ?? []), v ?? 1]);
  const meter: CryptoPoolMeter = {
    counter: (o) => ({ inc: rec(o.name) }),
    gauge: (o) => ({ set: rec(o.name) }),
    histogram: (o) => ({ observe: rec(o.name) }),
  };
  return { meter, seen };
}

function device(i: number) {
  const k = deriveP256Key(Buffer.from(`pool-device-${i}`), 'attestation');
  return {
    ...k,
    key: privateKeyFromScalar(k.privateScalar, k.publicKey),
    id: deviceIdFromPublicKey(k.publicKey),
  };
}

function tbsFor(dev: ReturnType<typeof device>, kind: 'update' | 'client'): Uint8Array {
  return buildDeviceTbs({
    issuer: tenant,
    subjectPublicKey: dev.publicKey,
    deviceId: dev.id,
    tenantId: 'tenant-pool',
    kind,
    serial: randomSerial((n) => randomBytes(n)),
    notBeforeMs: T0,
    notAfterMs: T0 + 86_400_000,
  });
}

describe('crypto-pool integration', () => {
  let pool: CryptoPool;
  const metrics = recordingMeter();

  beforeAll(() => {
    pool = createCryptoPool({ workers: 2, batchSize: 16, maxBatchDelayMs: 1, meter: metrics.meter });
    pool.registerCaKey(tenant.keyId, tenant.privateKeyPkcs8);
  });
  afterAll(async () => {
    await pool.close();
  });

  it('crypto-pool - verifies a mix of valid and invalid signatures across batches', async () => {
    const devices = Array.from({ length: 10 }, (_, i) => device(i));
    const cases = Array.from({ length: 100 }, (_, i) => {
      const dev = devices[i % devices.length]!;
      const data = randomBytes(300);
      const signature = signP1363(dev.key, data);
      const mode = i % 4; // 0 valid, 1 tampered data, 2 wrong key, 3 valid again
      const item: VerifyIssueItem = {
        publicKey: mode === 2 ? devices[(i + 1) % devices.length]!.publicKey : dev.publicKey,
        data: mode === 1 ? Buffer.concat([data, Buffer.of(0)]) : data,
        signature,
        tbs: [],
      };
      return { item, expected: mode === 0 || mode === 3 };
    });
    const results = await Promise.all(cases.map((c) => pool.verifyAndIssue(c.item)));
    results.forEach((r, i) => {
      expect(r.signatureValid, `item ${i}`).toBe(cases[i]!.expected);
      expect(r.signatures).toEqual([]);
    });
    const s = pool.stats();
    expect(s.batches).toBeGreaterThanOrEqual(7); // 100 items / 16 per batch
    expect(s.completed).toBeGreaterThanOrEqual(100);
    expect(s.queued).toBe(0);
    expect(metrics.seen.get('sphere_crypto_pool_batch_size')?.some((n) => n === 16)).toBe(true);
    expect(metrics.seen.get('sphere_crypto_pool_tasks_total')?.length).toBeGreaterThanOrEqual(7);
    expect(metrics.seen.has('sphere_crypto_pool_queue_depth')).toBe(true);
    expect(s.utilization).toBeGreaterThan(0);
    expect(s.utilization).toBeLessThanOrEqual(1);
  });

  it('crypto-pool - signs TBS only for valid signatures and the certificates verify against the CA', async () => {
    const ca = new X509Certificate(tenant.certificateDer);
    const jobs = Array.from({ length: 40 }, (_, i) => {
      const dev = device(100 + i);
      const data = randomBytes(300);
      const tbs = [tbsFor(dev, 'update'), tbsFor(dev, 'client')];
      const valid = i % 5 !== 0;
      const signature = valid ? signP1363(dev.key, data) : new Uint8Array(64).fill(1);
      return {
        dev,
        tbs,
        valid,
        p: pool.verifyAndIssue({ publicKey: dev.publicKey, data, signature, tbs, caKeyId: tenant.keyId }),
      };
    });
    for (const j of jobs) {
      const r = await j.p;
      expect(r.signatureValid).toBe(j.valid);
      if (!j.valid) {
        expect(r.signatures).toEqual([]);
        continue;
      }
      expect(r.signatures).toHaveLength(2);
      r.signatures.forEach((sig, k) => {
        const cert = new X509Certificate(assembleCertificate(j.tbs[k]!, sig));
        expect(cert.verify(ca.publicKey)).toBe(true);
        expect(cert.checkIssued(ca)).toBe(true);
        expect(cert.subject).toContain(j.dev.id);
      });
    }
  });

  it('crypto-pool - survives garbage input without throwing', async () => {
    const dev = device(999);
    const data = randomBytes(50);
    const good = signP1363(dev.key, data);
    const offCurve = Uint8Array.from(dev.publicKey);
    offCurve[64] = (offCurve[64] ?? 0) ^ 1;
    const garbage: VerifyIssueItem[] = [
      { publicKey: new Uint8Array(0), data, signature: good, tbs: [] },
      { publicKey: dev.publicKey.subarray(0, 64), data, signature: good, tbs: [] },
      { publicKey: offCurve, data, signature: good, tbs: [] },
      { publicKey: new Uint8Array(65), data, signature: good, tbs: [] },
      { publicKey: dev.publicKey, data, signature: good.subarray(0, 63), tbs: [] },
      { publicKey: dev.publicKey, data, signature: new Uint8Array(200), tbs: [] },
      { publicKey: dev.publicKey, data, signature: new Uint8Array(64), tbs: [] },
      {
        publicKey: dev.publicKey,
        data,
        signature: new Uint8Array(64).fill(0xff),
        tbs: [randomBytes(10)],
        caKeyId: tenant.keyId,
      },
      { publicKey: null, data: 'nope', signature: 42, tbs: undefined } as unknown as VerifyIssueItem,
    ];
    const results = await Promise.all(garbage.map((g) => pool.verifyAndIssue(g)));
    for (const r of results) expect(r).toEqual({ signatureValid: false, signatures: [] });
    // The same pool still works afterwards, and valid items in the same batch are unaffected.
    const ok = await pool.verifyAndIssue({ publicKey: dev.publicKey, data, signature: good, tbs: [] });
    expect(ok.signatureValid).toBe(true);
  });

  it('crypto-pool - rejects an unregistered CA key with a named error', async () => {
    const dev = device(7);
    const data = randomBytes(20);
    await expect(
      pool.verifyAndIssue({
        publicKey: dev.publicKey,
        data,
        signature: signP1363(dev.key, data),
        tbs: [data],
        caKeyId: 'nope',
      }),
    ).rejects.toBeInstanceOf(CryptoPoolError);
  });

  it('crypto-pool - crypto-only limit runs the four signature operations and a session key wrap and unwrap per attestation', async () => {
    const r = await runCryptoOnlyLimit({ pool, attestations: 256, batchSize: 64 });
    expect(r.ops).toEqual({ signs: 3 * 256, verifies: 256, sessions: 256 });
    expect(r.attestationsPerSecond).toBeGreaterThan(0);
    expect(r.elapsedMs).toBeGreaterThan(0);
  });

  it('crypto-pool - close flushes pending items, then rejects new ones', async () => {
    const m2 = recordingMeter();
    const p2 = createCryptoPool({ workers: 1, batchSize: 1000, maxBatchDelayMs: 10_000, meter: m2.meter });
    const dev = device(3);
    const data = randomBytes(10);
    const pending = p2.verifyAndIssue({
      publicKey: dev.publicKey,
      data,
      signature: signP1363(dev.key, data),
      tbs: [],
    });
    await p2.close();
    await expect(pending).resolves.toEqual({ signatureValid: true, signatures: [] });
    expect(m2.seen.get('sphere_crypto_pool_batch_size')).toEqual([1]);
    expect(m2.seen.get('sphere_crypto_pool_utilization')?.length).toBe(1);
    expect(p2.stats()).toMatchObject({ queued: 0, inFlightBatches: 0, completed: 1, batches: 1 });
    await expect(
      p2.verifyAndIssue({ publicKey: dev.publicKey, data, signature: new Uint8Array(64), tbs: [] }),
    ).rejects.toMatchObject({
      code: 'closed',
    });
  });

  it('crypto-pool - resolves the compiled worker from sources and from dist', () => {
    expect(defaultWorkerFile('file:///repo/services/crypto-pool/pool.ts')).toBe(
      '/repo/dist/services/crypto-pool/worker.js',
    );
    expect(defaultWorkerFile('file:///repo/dist/services/crypto-pool/pool.js')).toBe(
      '/repo/dist/services/crypto-pool/worker.js',
    );
    expect(() => createCryptoPool({ workers: 1, workerFile: '/nonexistent/worker.js' })).toThrow(
      CryptoPoolError,
    );
  });
});
