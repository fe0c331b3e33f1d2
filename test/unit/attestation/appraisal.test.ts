import { describe, expect, it } from 'vitest';
import {
  appraise,
  defaultReferenceValues,
  isDuplicateIdentity,
} from '../../../services/attestation/index.js';
import type { AcceptedBoot } from '../../../services/attestation/index.js';
import {
  BOOT_STAGES,
  OS_RELEASES,
  appImage,
  buildEvidence,
  manufactureIdentity,
  osImages,
  recordBoot,
  tamperedKernelDigest,
} from '../../../actors/security-core/index.js';
import type { ImageMeasurement } from '../../../actors/security-core/index.js';
import { extendMeasurement, measurementChain } from '../../../actors/crypto/index.js';
import { createRng } from '../../../actors/runtime/index.js';
import type { EvidenceMsg } from '../../../proto/codec/index.js';

const identity = manufactureIdentity('appraisal-device');
const rng = createRng('appraisal');
const refs = defaultReferenceValues();
const MIN = 3;

/** Evidence as a core that booted `images` would produce it. */
function evidenceFor(
  osVersion: string,
  securityVersion: number,
  images: readonly ImageMeasurement[],
): EvidenceMsg {
  const state = recordBoot(
    {
      deviceId: identity.deviceId,
      attestationPublicKey: identity.attestationPublicKey,
      clientPublicKey: identity.clientPublicKey,
      bootCount: 0,
    },
    images,
    osVersion,
    securityVersion,
    rng.bytes(16),
    extendMeasurement,
  );
  const e = buildEvidence(state, rng.bytes(32), 1_000);
  if (e === null) throw new Error('core did not boot');
  return e;
}

function genuine(version = '25.10'): EvidenceMsg {
  const sv = OS_RELEASES.find((r) => r.version === version)!.securityVersion;
  return evidenceFor(version, sv, osImages(version));
}

/** Replaces the measurement list and recomputes the chain so only the list is wrong. */
function withMeasurements(e: EvidenceMsg, ms: readonly ImageMeasurement[]): EvidenceMsg {
  return { ...e, measurements: ms, measurementChain: measurementChain(ms.map((m) => m.digest)) };
}

describe('attestation appraisal', () => {
  it('appraise - reference values cover every OS release with its security version and stage digests', () => {
    expect([...refs.keys()].sort()).toEqual(OS_RELEASES.map((r) => r.version).sort());
    for (const r of OS_RELEASES) {
      const ref = refs.get(r.version)!;
      expect(ref.securityVersion).toBe(r.securityVersion);
      expect(ref.stages).toEqual(osImages(r.version).map((m) => Buffer.from(m.digest).toString('hex')));
    }
  });

  it('appraise - genuine evidence for every OS at or above the minimum is accepted', () => {
    const accepted = OS_RELEASES.filter((r) => r.securityVersion >= MIN);
    expect(accepted.length).toBeGreaterThan(0);
    for (const r of accepted) expect(appraise(genuine(r.version), refs, MIN), r.version).toBeNull();
    // with minimum 0 every release passes
    for (const r of OS_RELEASES) expect(appraise(genuine(r.version), refs, 0), r.version).toBeNull();
  });

  it('appraise - OS 23.05 (security version 1) below minimum 3 is BELOW_MIN_VERSION', () => {
    const r = appraise(genuine('23.05'), refs, 3);
    expect(r?.code).toBe('BELOW_MIN_VERSION');
    expect(r?.message).toContain('23.05');
  });

  it('appraise - the minimum is inclusive', () => {
    expect(appraise(genuine('24.10'), refs, 3)).toBeNull();
    expect(appraise(genuine('24.10'), refs, 4)?.code).toBe('BELOW_MIN_VERSION');
  });

  it('appraise - a tampered kernel is MEASUREMENT_MISMATCH naming the stage', () => {
    for (const r of OS_RELEASES) {
      const images = osImages(r.version).map((m) =>
        m.stage === 'kernel' ? { stage: m.stage, digest: tamperedKernelDigest(r.version) } : m,
      );
      const res = appraise(evidenceFor(r.version, r.securityVersion, images), refs, 0);
      expect(res?.code, r.version).toBe('MEASUREMENT_MISMATCH');
      expect(res?.message).toContain('"kernel"');
    }
  });

  it('appraise - images of another OS build claimed as this build are MEASUREMENT_MISMATCH', () => {
    const res = appraise(evidenceFor('25.10', 5, osImages('24.10')), refs, MIN);
    expect(res?.code).toBe('MEASUREMENT_MISMATCH');
  });

  it('appraise - stages out of order are MEASUREMENT_MISMATCH even with a consistent chain', () => {
    const ms = osImages('25.10');
    const swapped = [ms[0]!, ms[2]!, ms[1]!, ms[3]!, ms[4]!];
    const res = appraise(withMeasurements(genuine(), swapped), refs, MIN);
    expect(res?.code).toBe('MEASUREMENT_MISMATCH');
    expect(res?.message).toContain('measurement 1');
  });

  it('appraise - a missing boot stage is MEASUREMENT_MISMATCH', () => {
    const res = appraise(withMeasurements(genuine(), osImages('25.10').slice(0, 4)), refs, MIN);
    expect(res?.code).toBe('MEASUREMENT_MISMATCH');
    expect(res?.message).toContain('nothing');
  });

  it('appraise - a chain that does not recompute from the measurements is MEASUREMENT_MISMATCH', () => {
    const e = genuine();
    const chain = Uint8Array.from(e.measurementChain);
    chain[0]! ^= 1;
    const res = appraise({ ...e, measurementChain: chain }, refs, MIN);
    expect(res?.code).toBe('MEASUREMENT_MISMATCH');
    expect(res?.message).toContain('chain');
  });

  it('appraise - a claimed security version differing from the catalog is MEASUREMENT_MISMATCH', () => {
    for (const claimed of [4, 6, 99]) {
      const res = appraise({ ...genuine('25.10'), securityVersion: claimed }, refs, MIN);
      expect(res?.code, String(claimed)).toBe('MEASUREMENT_MISMATCH');
      expect(res?.message).toContain(String(claimed));
    }
    // claiming a higher version does not lift an old OS over the minimum
    const res = appraise({ ...genuine('23.05'), securityVersion: 5 }, refs, MIN);
    expect(res?.code).toBe('MEASUREMENT_MISMATCH');
  });

  it('appraise - an unknown OS version is MEASUREMENT_MISMATCH', () => {
    const res = appraise({ ...genuine('25.10'), osVersion: '26.04' }, refs, MIN);
    expect(res?.code).toBe('MEASUREMENT_MISMATCH');
    expect(res?.message).toContain('26.04');
    expect(appraise(genuine('25.10'), new Map(), 0)?.code).toBe('MEASUREMENT_MISMATCH');
  });

  it('appraise - app stages after the OS stages are accepted', () => {
    const images = [
      ...osImages('25.10'),
      appImage({ name: 'blink', version: '1.2' }),
      appImage({ name: 'telemetry', version: '0.9' }),
    ];
    expect(appraise(evidenceFor('25.10', 5, images), refs, MIN)).toBeNull();
  });

  it('appraise - a non-app stage after the OS stages is rejected', () => {
    const extra = [...osImages('25.10'), { stage: 'debug-shell', digest: rng.bytes(32) }];
    const res = appraise(evidenceFor('25.10', 5, extra), refs, MIN);
    expect(res?.code).toBe('MEASUREMENT_MISMATCH');
    expect(res?.message).toContain('measurement 5');
    const afterApp = [
      ...osImages('25.10'),
      appImage({ name: 'a', version: '1' }),
      { stage: 'kernel', digest: rng.bytes(32) },
    ];
    expect(appraise(evidenceFor('25.10', 5, afterApp), refs, MIN)?.code).toBe('MEASUREMENT_MISMATCH');
  });

  it('appraise - an app stage in place of an OS stage is rejected', () => {
    const ms = osImages('25.10');
    const images = [...ms.slice(0, 4), appImage({ name: 'os-services', version: '1' })];
    const res = appraise(evidenceFor('25.10', 5, images), refs, MIN);
    expect(res?.code).toBe('MEASUREMENT_MISMATCH');
    expect(res?.message).toContain(`"${BOOT_STAGES[4]}"`);
  });
});

describe('attestation identity guard', () => {
  const BOOT = 'aa'.repeat(16);
  const OTHER = 'bb'.repeat(16);
  const ev = (bootCount: number): EvidenceMsg => ({ ...genuine(), bootCount });
  const accepted: AcceptedBoot = { bootId: BOOT, bootCount: 5 };

  it('identity-guard - the first attestation is never a duplicate', () => {
    expect(isDuplicateIdentity({ bootId: null, bootCount: 0 }, ev(1), BOOT)).toBe(false);
    expect(isDuplicateIdentity({ bootId: null, bootCount: 9 }, ev(1), OTHER)).toBe(false);
  });

  it('identity-guard - re-attesting the same boot is not a duplicate', () => {
    expect(isDuplicateIdentity(accepted, ev(5), BOOT)).toBe(false);
  });

  it('identity-guard - a higher boot count is a later boot, not a duplicate', () => {
    expect(isDuplicateIdentity(accepted, ev(6), OTHER)).toBe(false);
    expect(isDuplicateIdentity(accepted, ev(6), BOOT)).toBe(false);
  });

  it('identity-guard - the same count with a different boot ID is a duplicate', () => {
    expect(isDuplicateIdentity(accepted, ev(5), OTHER)).toBe(true);
  });

  it('identity-guard - a lower boot count is a duplicate, whatever the boot ID', () => {
    expect(isDuplicateIdentity(accepted, ev(4), OTHER)).toBe(true);
    expect(isDuplicateIdentity(accepted, ev(4), BOOT)).toBe(true);
    expect(isDuplicateIdentity(accepted, ev(0), OTHER)).toBe(true);
  });
});
