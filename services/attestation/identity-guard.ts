import type { EvidenceMsg } from '../../proto/codec/index.js';

/** The boot identity last accepted for a device; only valid after one attestation succeeded. */
export interface AcceptedBoot {
  readonly bootId: string | null;
  readonly bootCount: number;
}

/**
 * Cloned-key detection. The security core's boot counter only grows, and each boot draws a
 * fresh boot ID; so evidence from a genuine device either repeats the accepted boot (same count,
 * same ID: a re-attestation) or shows a later boot (higher count). A second device holding the
 * same key shows a count that is not higher with a different boot ID.
 */
export function isDuplicateIdentity(
  accepted: AcceptedBoot,
  evidence: EvidenceMsg,
  bootIdHex: string,
): boolean {
  if (accepted.bootId === null) return false;
  if (evidence.bootCount > accepted.bootCount) return false;
  return !(evidence.bootCount === accepted.bootCount && bootIdHex === accepted.bootId);
}
