import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deriveP256Key, deviceIdFromPublicKey } from '../../../actors/crypto/index.js';
import {
  CertificateInputError,
  Oid,
  assembleCertificate,
  buildDeviceTbs,
  createRootCa,
  createTenantCa,
  der,
  encodeSpki,
  signTbs,
  type DeviceTbsInput,
} from '../../../services/certificates/index.js';

const T0 = Date.UTC(2026, 2, 1);
const root = createRootCa({ commonName: 'Root', notBeforeMs: T0, validityMs: 1e11 });
const tenant = createTenantCa(root, { tenantId: 'tenant-x', name: 'X', notBeforeMs: T0 });

/** Straightforward reference encoding with the generic DER helpers (slow, obviously correct). */
function referenceTbs(i: DeviceTbsInput): Uint8Array {
  const attr = (id: string, v: string) => der.set(der.sequence(der.oid(id), der.utf8String(v)));
  const ext = (id: string, critical: boolean, v: Uint8Array) =>
    critical
      ? der.sequence(der.oid(id), der.boolean(true), der.octetString(v))
      : der.sequence(der.oid(id), der.octetString(v));
  const ski = createHash('sha1').update(i.subjectPublicKey).digest();
  return der.sequence(
    der.explicit(0, der.integerFromNumber(2)),
    der.integerFromBytes(i.serial),
    der.sequence(der.oid(Oid.ecdsaWithSha256)),
    i.issuer.subjectDer,
    der.sequence(der.x509Time(i.notBeforeMs), der.x509Time(i.notAfterMs)),
    der.sequence(
      attr(Oid.organizationName, i.tenantId),
      attr(Oid.organizationalUnitName, i.kind),
      attr(Oid.commonName, i.deviceId),
    ),
    encodeSpki(i.subjectPublicKey),
    der.explicit(
      3,
      der.sequence(
        ext(Oid.basicConstraints, false, der.sequence()),
        ext(Oid.keyUsage, true, der.namedBitString([0])),
        ext(Oid.extKeyUsage, false, der.sequence(der.oid(Oid.clientAuth))),
        ext(Oid.subjectKeyIdentifier, false, der.octetString(ski)),
        ext(
          Oid.authorityKeyIdentifier,
          false,
          der.sequence(der.implicit(0, Buffer.from(i.issuer.keyId, 'hex'))),
        ),
        ext(
          Oid.subjectAltName,
          false,
          der.sequence(der.implicit(6, Buffer.from(`urn:sphere:device:${i.deviceId}`, 'latin1'))),
        ),
      ),
    ),
  );
}

describe('certificates device tbs', () => {
  it('device tbs - fast builder is byte-identical to the reference encoding', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 300 }),
        fc.constantFrom('update' as const, 'client' as const),
        fc.uint8Array({ minLength: 1, maxLength: 20 }),
        fc.integer({ min: 0, max: 80 * 365 }),
        (secret, tenantId, kind, serial, days) => {
          const dev = deriveP256Key(secret, 'tbs');
          const notBeforeMs = Date.UTC(1990, 0, 1) + days * 86_400_000 + 1234;
          const input: DeviceTbsInput = {
            issuer: { subjectDer: tenant.subjectDer, keyId: tenant.keyId },
            subjectPublicKey: dev.publicKey,
            deviceId: deviceIdFromPublicKey(dev.publicKey),
            tenantId,
            kind,
            serial,
            notBeforeMs,
            notAfterMs: notBeforeMs + 86_400_000,
          };
          expect(Buffer.from(buildDeviceTbs(input)).toString('hex')).toBe(
            Buffer.from(referenceTbs(input)).toString('hex'),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('device tbs - different issuers with cached parts stay distinct', () => {
    const other = createTenantCa(root, { tenantId: 'tenant-y', name: 'Y', notBeforeMs: T0 });
    const dev = deriveP256Key(randomBytes(32), 'tbs');
    for (const ca of [tenant, other, tenant]) {
      const tbs = buildDeviceTbs({
        issuer: ca,
        subjectPublicKey: dev.publicKey,
        deviceId: deviceIdFromPublicKey(dev.publicKey),
        tenantId: 't',
        kind: 'update',
        serial: Uint8Array.of(1, 2, 3),
        notBeforeMs: T0,
        notAfterMs: T0 + 1000_000,
      });
      const cert = new X509Certificate(assembleCertificate(tbs, signTbs(tbs, ca.privateKey)));
      expect(cert.checkIssued(new X509Certificate(ca.certificateDer))).toBe(true);
    }
  });

  it('device tbs - rejects malformed inputs with CertificateInputError', () => {
    const dev = deriveP256Key(randomBytes(32), 'tbs');
    const ok: DeviceTbsInput = {
      issuer: tenant,
      subjectPublicKey: dev.publicKey,
      deviceId: deviceIdFromPublicKey(dev.publicKey),
      tenantId: 't',
      kind: 'client',
      serial: Uint8Array.of(1),
      notBeforeMs: T0,
      notAfterMs: T0 + 1000,
    };
    const bad: Partial<DeviceTbsInput>[] = [
      { subjectPublicKey: dev.publicKey.subarray(1) },
      { deviceId: 'AB'.repeat(64) },
      { deviceId: 'ab' },
      { serial: new Uint8Array(0) },
      { serial: new Uint8Array(21) },
      { notAfterMs: T0 },
      { kind: 'server' as never },
      { issuer: { subjectDer: tenant.subjectDer, keyId: 'zz' } },
    ];
    expect(() => buildDeviceTbs(ok)).not.toThrow();
    for (const b of bad) expect(() => buildDeviceTbs({ ...ok, ...b })).toThrow(CertificateInputError);
  });
});
