/**
 * Front door of actors/tuf: the device-side TUF 1.0 metadata and target verifier,
 * pure over JSON bytes (no I/O, injected time, typed results, never throws).
 */
export {
  TUF_ERROR_CODES,
  createTufClientState,
  updateMetadata,
  verifyTarget,
  verifyTargetDigest,
  type TufClientState,
  type TufError,
  type TufErrorCode,
  type TufJson,
  type TufTargetInfo,
  type TufUpdateFiles,
} from './client.js';
