import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { p256 } from '@noble/curves/nist.js';
import {
  InvalidPublicKeyError,
  P256_ORDER,
  deriveP256Key,
  deviceIdFromPublicKey,
  extendMeasurement,
  isDeviceId,
  measurementChain,
  nobleSignP1363,
  nobleVerifyDer,
  nobleVerifyP1363,
  privateKeyFromScalar,
  publicKeyFromRaw,
  rawPublicKeyOf,
  sha256,
  signDer,
  signP1363,
  verifyDer,
  verifyP1363,
} from '../../../actors/crypto/index.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const toBig = (b: Uint8Array): bigint => BigInt('0x' + hex(b));

describe('crypto hashing', () => {
  it('hashing - sha256 of concatenated parts equals node sha256', () => {
    const a = randomBytes(100);
    const b = randomBytes(7);
    const expected = createHash('sha256')
      .update(Buffer.concat([a, b]))
      .digest();
    expect(hex(sha256(a, b))).toBe(hex(expected));
    expect(hex(sha256())).toBe(createHash('sha256').digest('hex'));
  });

  it('hashing - measurement chain starts from 32 zero bytes and folds extendMeasurement', () => {
    const d1 = sha256(new TextEncoder().encode('bootloader'));
    const d2 = sha256(new TextEncoder().encode('os'));
    const step1 = createHash('sha256')
      .update(Buffer.concat([Buffer.alloc(32), d1]))
      .digest();
    const step2 = createHash('sha256')
      .update(Buffer.concat([step1, d2]))
      .digest();
    expect(hex(measurementChain([d1, d2]))).toBe(hex(step2));
    expect(hex(extendMeasurement(new Uint8Array(32), d1))).toBe(hex(step1));
    expect(measurementChain([])).toEqual(new Uint8Array(32));
    // Order matters.
    expect(hex(measurementChain([d2, d1]))).not.toBe(hex(step2));
  });

  it('hashing - extendMeasurement rejects a chain that is not 32 bytes', () => {
    expect(() => extendMeasurement(new Uint8Array(31), new Uint8Array(32))).toThrow(RangeError);
  });
});

describe('crypto key derivation', () => {
  it('derivation - deterministic, in range, and native public key equals noble', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.string(), (secret, info) => {
        const a = deriveP256Key(secret, info);
        const b = deriveP256Key(secret, info);
        expect(a.privateScalar).toEqual(b.privateScalar);
        expect(a.publicKey).toEqual(b.publicKey);
        expect(a.privateScalar.length).toBe(32);
        const d = toBig(a.privateScalar);
        expect(d >= 1n && d <= P256_ORDER - 1n).toBe(true);
        expect(hex(a.publicKey)).toBe(hex(p256.getPublicKey(a.privateScalar, false)));
      }),
      { numRuns: 200 },
    );
  });

  it('derivation - different info or secret gives a different key', () => {
    const secret = randomBytes(32);
    const a = deriveP256Key(secret, 'device-identity');
    const b = deriveP256Key(secret, 'device-attestation');
    const c = deriveP256Key(randomBytes(32), 'device-identity');
    expect(hex(a.privateScalar)).not.toBe(hex(b.privateScalar));
    expect(hex(a.privateScalar)).not.toBe(hex(c.privateScalar));
  });

  it('derivation - known answer stays stable across releases', () => {
    // Pinned so an accidental change of salt/length/reduction is caught (devices would change identity).
    const k = deriveP256Key(new Uint8Array(32).fill(1), 'sphere/device-id');
    expect(hex(k.privateScalar)).toMatchInlineSnapshot(
      `"1fdd8c5dcf14a0322ac60fc04e90989515cab533ead5970e63efccaf5faec442"`,
    );
  });
});

describe('crypto device id', () => {
  it('device id - is lowercase hex SHA-512 of the raw public key, 128 chars', () => {
    const { publicKey } = deriveP256Key(randomBytes(32), 'id');
    const id = deviceIdFromPublicKey(publicKey);
    expect(id).toBe(createHash('sha512').update(publicKey).digest('hex'));
    expect(id).toMatch(/^[0-9a-f]{128}$/);
    expect(isDeviceId(id)).toBe(true);
  });

  it('device id - validator rejects wrong length, uppercase and non-strings', () => {
    const id = 'ab'.repeat(64);
    expect(isDeviceId(id)).toBe(true);
    expect(isDeviceId(id.slice(1))).toBe(false);
    expect(isDeviceId(id + 'a')).toBe(false);
    expect(isDeviceId(id.toUpperCase())).toBe(false);
    expect(isDeviceId('g'.repeat(128))).toBe(false);
    expect(isDeviceId(42)).toBe(false);
    expect(() => deviceIdFromPublicKey(new Uint8Array(64))).toThrow(RangeError);
  });
});

describe('crypto key objects', () => {
  it('key objects - publicKeyFromRaw rejects bad length, prefix and off-curve points with a named error', () => {
    const { publicKey } = deriveP256Key(randomBytes(32), 'k');
    expect(publicKeyFromRaw(publicKey).asymmetricKeyType).toBe('ec');
    const offCurve = Uint8Array.from(publicKey);
    offCurve[64] = (offCurve[64] ?? 0) ^ 1;
    const compressed = Uint8Array.from(publicKey);
    compressed[0] = 0x02;
    for (const bad of [publicKey.subarray(0, 64), compressed, offCurve, new Uint8Array(65)]) {
      expect(() => publicKeyFromRaw(bad)).toThrow(InvalidPublicKeyError);
    }
    try {
      publicKeyFromRaw(offCurve);
    } catch (e) {
      expect((e as Error).cause).toBeDefined();
    }
  });

  it('key objects - privateKeyFromScalar round-trips to the same public key', () => {
    const k = deriveP256Key(randomBytes(32), 'k');
    const priv = privateKeyFromScalar(k.privateScalar, k.publicKey);
    expect(hex(rawPublicKeyOf(priv))).toBe(hex(k.publicKey));
    expect(hex(rawPublicKeyOf(publicKeyFromRaw(k.publicKey)))).toBe(hex(k.publicKey));
  });
});

describe('crypto ecdsa cross-implementation', () => {
  it('ecdsa - native signatures verify with noble and noble signatures verify natively', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 512 }),
        (secret, msg) => {
          const k = deriveP256Key(secret, 'ecdsa');
          const priv = privateKeyFromScalar(k.privateScalar, k.publicKey);
          const pub = publicKeyFromRaw(k.publicKey);
          const nativeSig = signP1363(priv, msg);
          expect(nativeSig.length).toBe(64);
          expect(verifyP1363(pub, msg, nativeSig)).toBe(true);
          expect(nobleVerifyP1363(k.publicKey, msg, nativeSig)).toBe(true);
          const nobleSig = nobleSignP1363(k.privateScalar, msg);
          expect(nobleVerifyP1363(k.publicKey, msg, nobleSig)).toBe(true);
          expect(verifyP1363(pub, msg, nobleSig)).toBe(true);
          // DER variants agree as well.
          const der = signDer(priv, msg);
          expect(verifyDer(pub, msg, der)).toBe(true);
          expect(nobleVerifyDer(k.publicKey, msg, der)).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('ecdsa - high-S signatures (as OpenSSL emits) are accepted by both implementations', () => {
    const k = deriveP256Key(randomBytes(32), 'highs');
    const msg = randomBytes(300);
    const low = nobleSignP1363(k.privateScalar, msg);
    const s = toBig(low.subarray(32));
    const highS = Buffer.from((P256_ORDER - s).toString(16).padStart(64, '0'), 'hex');
    const high = new Uint8Array([...low.subarray(0, 32), ...highS]);
    expect(nobleVerifyP1363(k.publicKey, msg, high)).toBe(true);
    expect(verifyP1363(publicKeyFromRaw(k.publicKey), msg, high)).toBe(true);
  });

  it('ecdsa - tampered message or signature fails on both implementations', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat(), (msg, pos) => {
        const k = deriveP256Key(randomBytes(32), 't');
        const pub = publicKeyFromRaw(k.publicKey);
        const sig = nobleSignP1363(k.privateScalar, msg);
        const badMsg = Uint8Array.from(msg);
        badMsg[pos % msg.length] = (badMsg[pos % msg.length] ?? 0) ^ 0x01;
        const badSig = Uint8Array.from(sig);
        badSig[pos % 64] = (badSig[pos % 64] ?? 0) ^ 0x80;
        expect(verifyP1363(pub, badMsg, sig)).toBe(false);
        expect(nobleVerifyP1363(k.publicKey, badMsg, sig)).toBe(false);
        expect(verifyP1363(pub, msg, badSig)).toBe(false);
        expect(nobleVerifyP1363(k.publicKey, msg, badSig)).toBe(false);
      }),
      { numRuns: 50 },
    );
  });

  it('ecdsa - verification never throws on garbage', () => {
    const k = deriveP256Key(randomBytes(32), 'g');
    const pub = publicKeyFromRaw(k.publicKey);
    const rsaPub = generateKeyPairSync('ed25519').publicKey;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 70 }), (sig, key) => {
        expect(verifyP1363(pub, new Uint8Array(3), sig)).toBe(false);
        expect(verifyDer(pub, new Uint8Array(3), sig)).toBe(false);
        expect(nobleVerifyP1363(k.publicKey, new Uint8Array(3), sig)).toBe(false);
        expect(nobleVerifyDer(k.publicKey, new Uint8Array(3), sig)).toBe(false);
        expect(nobleVerifyP1363(key, new Uint8Array(3), new Uint8Array(64).fill(1))).toBe(false);
      }),
      { numRuns: 300 },
    );
    expect(verifyP1363(rsaPub, new Uint8Array(3), new Uint8Array(64).fill(7))).toBe(false);
    expect(verifyP1363(pub, new Uint8Array(3), new Uint8Array(64))).toBe(false);
    expect(nobleVerifyP1363(k.publicKey, new Uint8Array(3), new Uint8Array(64))).toBe(false);
  });
});
