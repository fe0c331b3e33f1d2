/**
 * P-256 key material: DICE-style deterministic derivation and conversion of
 * raw SEC1 bytes into parsed native `KeyObject`s (parse once, reuse many times:
 * re-parsing per operation roughly triples the cost of a signature).
 */
import { createECDH, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { InvalidPrivateKeyError, InvalidPublicKeyError } from './errors.js';

/** Order n of the P-256 base point. */
export const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

/** HKDF salt that domain-separates device key derivation from other HKDF uses. */
const DERIVE_SALT = new TextEncoder().encode('sphere-fleet/dice/p256/v1');
const TEXT = new TextEncoder();

/** A derived P-256 key pair in raw form. */
export interface RawP256KeyPair {
  /** Private scalar d, 32 bytes big-endian, 1 <= d <= n-1. */
  readonly privateScalar: Uint8Array;
  /** Public key d*G, 65-byte uncompressed SEC1 (0x04 || X || Y). */
  readonly publicKey: Uint8Array;
}

function bytesToBigInt(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex'));
}

function bigIntTo32(n: bigint): Uint8Array {
  return Uint8Array.from(Buffer.from(n.toString(16).padStart(64, '0'), 'hex'));
}

/** The private scalar of {@link deriveP256Key} alone (32 bytes, big-endian), for callers with their own ECDH. */
export function deriveP256Scalar(secret: Uint8Array, info: string): Uint8Array {
  const okm = hkdf(sha256, secret, DERIVE_SALT, TEXT.encode(info), 48);
  return bigIntTo32((bytesToBigInt(okm) % (P256_ORDER - 1n)) + 1n);
}

/**
 * Deterministically derives a P-256 key pair from a device secret (DICE CDI-style).
 *
 * Method (FIPS 186-5 A.2.1 "extra random bits"): 48 bytes are drawn from
 * HKDF-SHA256(ikm = secret, salt = "sphere-fleet/dice/p256/v1", info = UTF-8 info),
 * read as a big-endian integer c, and d = (c mod (n-1)) + 1. This always lands
 * in [1, n-1] without a retry loop; the modular bias is below 2^-128.
 *
 * The public key is computed with native ECDH (OpenSSL), ~50x faster than pure JS,
 * because thousands of devices are derived at startup.
 * Same (secret, info) always yields the same pair; different `info` gives independent keys.
 */
export function deriveP256Key(secret: Uint8Array, info: string): RawP256KeyPair {
  const privateScalar = deriveP256Scalar(secret, info);
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(privateScalar);
  const publicKey = Uint8Array.from(ecdh.getPublicKey());
  return { privateScalar, publicKey };
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64url');
}

function checkRawPublicShape(pub65: Uint8Array): void {
  if (!(pub65 instanceof Uint8Array) || pub65.length !== 65 || pub65[0] !== 0x04) {
    throw new InvalidPublicKeyError(
      `public key must be 65-byte uncompressed SEC1 with 0x04 prefix (got ${pub65 instanceof Uint8Array ? pub65.length : typeof pub65} bytes)`,
    );
  }
}

/**
 * Parses a raw uncompressed P-256 public key into a native `KeyObject`.
 * Validates length (65), the 0x04 prefix, and curve membership (OpenSSL rejects
 * off-curve points on JWK import).
 * @throws InvalidPublicKeyError (with `cause`) for any malformed key.
 */
export function publicKeyFromRaw(pub65: Uint8Array): KeyObject {
  checkRawPublicShape(pub65);
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: b64url(pub65.subarray(1, 33)), y: b64url(pub65.subarray(33, 65)) },
      format: 'jwk',
    });
  } catch (cause) {
    throw new InvalidPublicKeyError('public key is not a point on P-256', { cause });
  }
}

/**
 * Builds a native private `KeyObject` from scalar `d` (32 bytes) and its public key.
 * The caller must pass the matching public key (e.g. from {@link deriveP256Key});
 * OpenSSL checks the pair is consistent and the point is valid.
 * @throws InvalidPrivateKeyError (with `cause`) when the inputs are malformed or mismatched.
 */
export function privateKeyFromScalar(d: Uint8Array, pub65: Uint8Array): KeyObject {
  if (d.length !== 32) throw new InvalidPrivateKeyError(`private scalar must be 32 bytes, got ${d.length}`);
  try {
    checkRawPublicShape(pub65);
    return createPrivateKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        d: b64url(d),
        x: b64url(pub65.subarray(1, 33)),
        y: b64url(pub65.subarray(33, 65)),
      },
      format: 'jwk',
    });
  } catch (cause) {
    throw new InvalidPrivateKeyError('cannot build P-256 private key from scalar', { cause });
  }
}

/**
 * Raw 65-byte uncompressed public key of a native EC P-256 `KeyObject`
 * (public or private).
 */
export function rawPublicKeyOf(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' });
  if (jwk.crv !== 'P-256' || jwk.x === undefined || jwk.y === undefined) {
    throw new InvalidPublicKeyError('key is not an EC P-256 key');
  }
  const out = new Uint8Array(65);
  out[0] = 0x04;
  out.set(Buffer.from(jwk.x, 'base64url'), 1);
  out.set(Buffer.from(jwk.y, 'base64url'), 33);
  return out;
}
