import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deriveP256Key, deviceIdFromPublicKey } from '../../../actors/crypto/index.js';
import {
  type CaIdentity,
  type DeviceCertKind,
  assembleCertificate,
  buildDeviceTbs,
  createRootCa,
  createTenantCa,
  randomSerial,
  signTbs,
  toPem,
} from '../../../services/certificates/index.js';

const DAY = 24 * 3600 * 1000;
const T0 = Date.UTC(2025, 0, 1);
const root = createRootCa({ commonName: 'Sphere Fleet Root CA', notBeforeMs: T0, validityMs: 3650 * DAY });
const tenantA = createTenantCa(root, {
  tenantId: '3f1c2a4e-0000-4000-8000-00000000000a',
  name: 'Tenant A',
  notBeforeMs: T0,
});
const tenantB = createTenantCa(root, {
  tenantId: '3f1c2a4e-0000-4000-8000-00000000000b',
  name: 'Tenant B',
  notBeforeMs: T0,
});

const dir = mkdtempSync(join(tmpdir(), 'sphere-x509-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function write(pemOrDer: string | Uint8Array): string {
  const path = join(dir, `f${fileNo++}.pem`);
  writeFileSync(path, typeof pemOrDer === 'string' ? pemOrDer : toPem(pemOrDer, 'CERTIFICATE'));
  return path;
}
const rootPath = write(root.certificatePem);
const tenantAPath = write(tenantA.certificatePem);

/** Runs `openssl verify`; returns combined output and whether it exited 0. */
function opensslVerify(
  certDer: Uint8Array,
  atMs: number,
  untrusted = tenantAPath,
): { ok: boolean; out: string } {
  const certPath = write(certDer);
  const args = [
    'verify',
    '-attime',
    String(Math.floor(atMs / 1000)),
    '-CAfile',
    rootPath,
    '-untrusted',
    untrusted,
    certPath,
  ];
  try {
    const out = execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { ok: true, out };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

function deviceCert(issuer: CaIdentity, kind: DeviceCertKind, notBeforeMs = T0 + DAY, life = DAY) {
  const dev = deriveP256Key(randomBytes(32), 'device');
  const deviceId = deviceIdFromPublicKey(dev.publicKey);
  const tbs = buildDeviceTbs({
    issuer,
    subjectPublicKey: dev.publicKey,
    deviceId,
    tenantId: 'tenant-a',
    kind,
    serial: randomSerial((n) => randomBytes(n)),
    notBeforeMs,
    notAfterMs: notBeforeMs + life,
  });
  const der = assembleCertificate(tbs, signTbs(tbs, issuer.privateKey));
  return { der, tbs, deviceId, dev };
}

describe('certificates openssl', () => {
  it('openssl - verifies update and client device certificates through the tenant CA', () => {
    for (const kind of ['update', 'client'] as const) {
      const { der } = deviceCert(tenantA, kind);
      const r = opensslVerify(der, T0 + DAY + 3600_000);
      expect(r.out).toContain('OK');
      expect(r.ok, r.out).toBe(true);
    }
  });

  it('openssl - rejects a certificate used after notAfter', () => {
    const { der } = deviceCert(tenantA, 'client');
    const r = opensslVerify(der, T0 + 3 * DAY);
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/expired/i);
  });

  it('openssl - rejects a certificate signed by another tenant CA', () => {
    const { der } = deviceCert(tenantB, 'client');
    // Tenant A offered as intermediate: issuer name/AKI mismatch, no chain.
    expect(opensslVerify(der, T0 + DAY + 1000).ok).toBe(false);
    // Tenant B's key but tenant A's issuer fields: bad signature.
    const dev = deriveP256Key(randomBytes(32), 'x');
    const tbs = buildDeviceTbs({
      issuer: tenantA,
      subjectPublicKey: dev.publicKey,
      deviceId: deviceIdFromPublicKey(dev.publicKey),
      tenantId: 't',
      kind: 'update',
      serial: randomSerial((n) => randomBytes(n)),
      notBeforeMs: T0 + DAY,
      notAfterMs: T0 + 2 * DAY,
    });
    const forged = assembleCertificate(tbs, signTbs(tbs, tenantB.privateKey));
    const r = opensslVerify(forged, T0 + DAY + 1000);
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/signature/i);
  });

  it('openssl - rejects a certificate whose TBS was tampered after signing', () => {
    const { tbs, dev } = deviceCert(tenantA, 'update');
    const sig = signTbs(tbs, tenantA.privateKey);
    expect(opensslVerify(assembleCertificate(tbs, sig), T0 + DAY + 1000).ok).toBe(true);
    const tampered = Uint8Array.from(tbs);
    // Flip the last bit of the subject public key's X coordinate (DER structure stays intact).
    const idx = Buffer.from(tbs).indexOf(Buffer.from(dev.publicKey)) + 32;
    expect(idx).toBeGreaterThan(32);
    tampered[idx] = (tampered[idx] ?? 0) ^ 0x01;
    const r = opensslVerify(assembleCertificate(tampered, sig), T0 + DAY + 1000);
    expect(r.ok).toBe(false);
  });

  it('openssl - x509 -text parses root, tenant and both device certificate kinds', () => {
    const certs = [
      root.certificateDer,
      tenantA.certificateDer,
      deviceCert(tenantA, 'update').der,
      deviceCert(tenantA, 'client').der,
    ];
    for (const der of certs) {
      const out = execFileSync('openssl', ['x509', '-noout', '-text', '-in', write(der)], {
        encoding: 'utf8',
      });
      expect(out).toContain('ecdsa-with-SHA256');
      expect(out).toContain('X509v3 Subject Key Identifier');
      expect(out).toContain('X509v3 Authority Key Identifier');
    }
    const devText = execFileSync(
      'openssl',
      ['x509', '-noout', '-text', '-in', write(deviceCert(tenantA, 'client').der)],
      { encoding: 'utf8' },
    );
    expect(devText).toContain('URI:urn:sphere:device:');
    expect(devText).toContain('TLS Web Client Authentication');
    expect(devText).toContain('CA:FALSE');
    expect(devText).toMatch(/Key Usage: critical\s+Digital Signature/);
    const rootText = execFileSync('openssl', ['x509', '-noout', '-text', '-in', rootPath], {
      encoding: 'utf8',
    });
    expect(rootText).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    expect(rootText).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
  });
});

describe('certificates node X509Certificate', () => {
  it('x509 - device certificate chains, names the device and carries exact validity', () => {
    const notBefore = T0 + 5 * DAY + 1234; // sub-second part is truncated
    const { der, deviceId, dev } = deviceCert(tenantA, 'client', notBefore, 2 * DAY);
    const cert = new X509Certificate(der);
    const ca = new X509Certificate(tenantA.certificateDer);
    const rootCert = new X509Certificate(root.certificateDer);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.verify(rootCert.publicKey)).toBe(false);
    expect(ca.checkIssued(rootCert)).toBe(true);
    expect(ca.verify(rootCert.publicKey)).toBe(true);
    expect(rootCert.verify(rootCert.publicKey)).toBe(true);
    expect(cert.subject).toContain(`CN=${deviceId}`);
    expect(cert.subject).toContain('OU=client');
    expect(cert.subjectAltName).toBe(`URI:urn:sphere:device:${deviceId}`);
    expect(new Date(cert.validFrom).getTime()).toBe(Math.floor(notBefore / 1000) * 1000);
    expect(new Date(cert.validTo).getTime()).toBe(Math.floor((notBefore + 2 * DAY) / 1000) * 1000);
    expect(cert.ca).toBe(false);
    expect(ca.ca).toBe(true);
    expect(rootCert.ca).toBe(true);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // node's keyUsage lists extKeyUsage OIDs
    const spki = cert.publicKey.export({ format: 'der', type: 'spki' });
    expect(Buffer.from(spki.subarray(-65)).equals(Buffer.from(dev.publicKey))).toBe(true);
  });

  it('x509 - tenant CA default lifetime is two years and the PEM round-trips', () => {
    const ca = new X509Certificate(tenantA.certificatePem);
    expect(new Date(ca.validTo).getTime() - new Date(ca.validFrom).getTime()).toBe(730 * DAY);
    expect(Buffer.from(ca.raw).equals(Buffer.from(tenantA.certificateDer))).toBe(true);
    expect(ca.issuer).toBe('CN=Sphere Fleet Root CA');
    // The exported pkcs8 and raw public key belong together.
    const pub = createPublicKey(
      createPrivateKey({ key: Buffer.from(tenantA.privateKeyPkcs8), format: 'der', type: 'pkcs8' }),
    );
    expect(
      pub.export({ format: 'der', type: 'spki' }).subarray(-65).equals(Buffer.from(tenantA.publicKey)),
    ).toBe(true);
  });

  it('x509 - dates from 2050 on use GeneralizedTime and still verify', () => {
    const late = createRootCa({
      commonName: 'Late Root',
      notBeforeMs: Date.UTC(2049, 11, 31),
      validityMs: 10 * DAY,
    });
    const cert = new X509Certificate(late.certificateDer);
    expect(new Date(cert.validTo).getUTCFullYear()).toBe(2050);
    expect(cert.verify(cert.publicKey)).toBe(true);
  });
});
