import { BOOT_STAGES, OS_RELEASES, osImages } from '../../actors/security-core/index.js';
import { measurementChain } from '../../actors/crypto/index.js';
import type { EvidenceMsg, Rejection } from '../../proto/codec/index.js';
import { REJECT_CODES } from '../../proto/codec/index.js';

/** Known-good measurements of one OS build (the RATS "reference values"). */
export interface OsReference {
  readonly version: string;
  readonly securityVersion: number;
  /** Digests of BOOT_STAGES, in order, as hex. */
  readonly stages: readonly string[];
}

/** Reference values by OS version. */
export type ReferenceValues = ReadonlyMap<string, OsReference>;

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');

/** Reference values for every OS build in the catalog. */
export function defaultReferenceValues(): ReferenceValues {
  return new Map(
    OS_RELEASES.map((r) => [
      r.version,
      {
        version: r.version,
        securityVersion: r.securityVersion,
        stages: osImages(r.version).map((m) => hex(m.digest)),
      },
    ]),
  );
}

/**
 * The OS stages of `evidence` whose digest is not the reference of its claimed build (every
 * stage when the build is unknown), digest as hex: what threat detection compares across the
 * fleet. Empty for evidence that matches.
 */
export function unknownMeasurements(
  evidence: EvidenceMsg,
  references: ReferenceValues,
): Array<{ stage: string; digestHex: string }> {
  const ref = references.get(evidence.osVersion);
  const out: Array<{ stage: string; digestHex: string }> = [];
  for (let i = 0; i < BOOT_STAGES.length; i++) {
    const got = evidence.measurements[i];
    if (got === undefined) continue;
    const digestHex = hex(got.digest);
    if (ref?.stages[i] !== digestHex) out.push({ stage: got.stage, digestHex });
  }
  return out;
}

/**
 * Appraises evidence against reference values and policy (after its signature was checked):
 * the measurement list must be the boot stages in order followed by apps, its chain must
 * recompute to the signed chain value, every OS stage must match the build's reference, the
 * claimed security version must be the build's, and that version must meet the minimum.
 * Returns `null` when the software is trusted and current.
 */
export function appraise(
  evidence: EvidenceMsg,
  references: ReferenceValues,
  minSecurityVersion: number,
): Rejection | null {
  const ref = references.get(evidence.osVersion);
  if (ref === undefined) {
    return mismatch(
      `OS version ${evidence.osVersion} is not a known build; update the device to a released OS`,
    );
  }
  const m = evidence.measurements;
  for (let i = 0; i < BOOT_STAGES.length; i++) {
    const got = m[i];
    if (got === undefined || got.stage !== BOOT_STAGES[i]) {
      return mismatch(`measurement ${i} must be stage "${BOOT_STAGES[i]}", got "${got?.stage ?? 'nothing'}"`);
    }
    if (hex(got.digest) !== ref.stages[i]) {
      return mismatch(
        `stage "${got.stage}" does not match the reference for OS ${ref.version}: the image was modified`,
      );
    }
  }
  for (let i = BOOT_STAGES.length; i < m.length; i++) {
    if (!m[i]?.stage.startsWith('app:'))
      return mismatch(`measurement ${i} must be an app stage ("app:<name>")`);
  }
  const chain = measurementChain(m.map((x) => x.digest));
  if (hex(chain) !== hex(evidence.measurementChain)) {
    return mismatch('measurement chain does not recompute from the listed measurements');
  }
  if (evidence.securityVersion !== ref.securityVersion) {
    return mismatch(
      `OS ${ref.version} has security version ${ref.securityVersion}, evidence claims ${evidence.securityVersion}`,
    );
  }
  if (ref.securityVersion < minSecurityVersion) {
    return {
      code: REJECT_CODES.BELOW_MIN_VERSION,
      message: `OS ${ref.version} (security version ${ref.securityVersion}) is below the minimum ${minSecurityVersion}; the device must take an OS update`,
    };
  }
  return null;
}

function mismatch(message: string): Rejection {
  return { code: REJECT_CODES.MEASUREMENT_MISMATCH, message };
}
