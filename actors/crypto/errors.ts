/**
 * Named error classes for the crypto primitives. Every error carries the
 * underlying failure in `cause` so callers can log the root reason.
 */

/** Thrown when raw public-key bytes are not a valid uncompressed P-256 point. */
export class InvalidPublicKeyError extends Error {
  override readonly name = 'InvalidPublicKeyError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Thrown when a private scalar / key pair cannot be turned into a key object. */
export class InvalidPrivateKeyError extends Error {
  override readonly name = 'InvalidPrivateKeyError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
