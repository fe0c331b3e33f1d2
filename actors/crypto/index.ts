/**
 * Front door of actors/crypto: hashing, measurement chains, DICE-style P-256
 * key derivation, device IDs, and interoperable native / pure-JS ECDSA.
 * Other folders import only from this file.
 */
export {
  DIGEST_LENGTH,
  sha256,
  extendMeasurement,
  initialMeasurementChain,
  measurementChain,
} from './hash.js';
export { deviceIdFromPublicKey, isDeviceId } from './device-id.js';
export {
  P256_ORDER,
  deriveP256Key,
  deriveP256Scalar,
  publicKeyFromRaw,
  privateKeyFromScalar,
  rawPublicKeyOf,
  type RawP256KeyPair,
} from './keys.js';
export {
  P1363_SIGNATURE_LENGTH,
  signP1363,
  verifyP1363,
  signDer,
  verifyDer,
  nobleSignP1363,
  nobleVerifyP1363,
  nobleVerifyDer,
} from './ecdsa.js';
export { InvalidPublicKeyError, InvalidPrivateKeyError } from './errors.js';
export {
  REQUEST_MAC_BYTES,
  SESSION_ID_BYTES,
  SESSION_KEY_BYTES,
  deriveSessionKey,
  macEqual,
  newSessionId,
  requestMac,
  sessionExpiry,
  unwrapSessionKey,
  wrapSessionKey,
  type WrappedSessionKey,
} from './session.js';
