/** Hashing and DICE-style measurement chains (pure, @noble/hashes). */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

/** Length in bytes of a SHA-256 digest and of a measurement chain value. */
export const DIGEST_LENGTH = 32;

/** SHA-256 over the concatenation of all `parts` (no separators); fresh 32-byte array. */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = nobleSha256.create();
  for (const p of parts) h.update(p);
  return h.digest();
}

/**
 * One step of a measurement chain: SHA-256(chain || digest); `chain` must be 32 bytes.
 * @throws RangeError if `chain` is not 32 bytes.
 */
export function extendMeasurement(chain: Uint8Array, digest: Uint8Array): Uint8Array {
  if (chain.length !== DIGEST_LENGTH) {
    throw new RangeError(`measurement chain must be ${DIGEST_LENGTH} bytes, got ${chain.length}`);
  }
  return sha256(chain, digest);
}

/** The initial chain value: 32 zero bytes (fresh copy each call). */
export function initialMeasurementChain(): Uint8Array {
  return new Uint8Array(DIGEST_LENGTH);
}

/**
 * Folds {@link extendMeasurement} over `digests`, starting from 32 zero bytes.
 * An empty list yields the all-zero initial chain.
 */
export function measurementChain(digests: readonly Uint8Array[]): Uint8Array {
  let chain = initialMeasurementChain();
  for (const d of digests) chain = extendMeasurement(chain, d);
  return chain;
}
