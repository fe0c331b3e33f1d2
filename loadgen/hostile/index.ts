/**
 * Hostile traffic (a scenario's `attacks:`): attackers that impersonate other devices, replay
 * captured requests, flood past their request budget, send malformed protobuf, and an intruder
 * tenant reaching for another tenant's devices; each attempt must be refused with its code and,
 * when the service knows the sender, alerted to the sender's tenant.
 */
export { alertReaders, countTenantAlerts, operatorEndpoints } from './alerts.js';
export type { AlertReadOptions } from './alerts.js';
export {
  NO_DEPLOYMENT,
  guessedKeySession,
  isSealedOp,
  madeUpSession,
  malformedMessage,
  requestBody,
  sizeLimit,
  withNumericDeviceId,
} from './forge.js';
export type { MalformedVariant, SealedOp } from './forge.js';
export {
  PAST_THE_SESSION_CODES,
  TENANT_ALERTED_CODES,
  UNATTRIBUTED_CODES,
  alertDemand,
  alertKey,
  judgeHostile,
} from './judge.js';
export type { AlertDemand, AlertsFound, AttemptOutcome, AttemptRecord } from './judge.js';
export { ATTACK_VARIANTS, NO_DATA, VARIANT_CONTRACTS, expectedCodesOf, planAttacks } from './plan.js';
export type { AttackOp, AttackVariant, PlannedAttempt, VariantContract } from './plan.js';
export { HostileTraffic, attackerFirmware, prepareHostile } from './traffic.js';
export type { AttackerFirmware, HostileOptions } from './traffic.js';
