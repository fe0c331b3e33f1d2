/** Attestation decisions: policy, challenge nonces, appraisal against reference values, clone detection. */
export { DEFAULT_POLICY } from './policy.js';
export type { AttestationPolicy } from './policy.js';
export { NonceBook } from './nonces.js';
export { REPLAY_WINDOW, SessionBook } from './sessions.js';
export type { SessionVerdict } from './sessions.js';
export type { NonceCheck } from './nonces.js';
export { appraise, defaultReferenceValues, unknownMeasurements } from './appraisal.js';
export type { OsReference, ReferenceValues } from './appraisal.js';
export { isDuplicateIdentity } from './identity-guard.js';
export type { AcceptedBoot } from './identity-guard.js';
