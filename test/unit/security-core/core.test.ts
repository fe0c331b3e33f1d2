import { describe, expect, it } from 'vitest';
import {
  BOOT_STAGES,
  OS_RELEASES,
  appImage,
  buildEvidence,
  imageDigest,
  manufactureIdentity,
  osImages,
  osRelease,
  publicIdentity,
  recordBoot,
  tamperedKernelDigest,
} from '../../../actors/security-core/index.js';
import type { CoreBootState, ManufacturedIdentity } from '../../../actors/security-core/index.js';
import {
  deriveP256Key,
  extendMeasurement,
  measurementChain,
  publicKeyFromRaw,
  sha256,
  signP1363,
  verifyP1363,
} from '../../../actors/crypto/index.js';
import { decodeEvidence, encodeEvidence } from '../../../proto/codec/index.js';
import { createRng } from '../../../actors/runtime/index.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function coreState(id: ManufacturedIdentity): CoreBootState {
  return {
    deviceId: id.deviceId,
    attestationPublicKey: id.attestationPublicKey,
    clientPublicKey: id.clientPublicKey,
    bootCount: 0,
  };
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) !== -1;
}

/** The private scalars exactly as manufactureIdentity derives them. */
function privateScalars(seed: string): Uint8Array[] {
  const uds = sha256(new TextEncoder().encode(`sphere-uds/${seed}`));
  return [
    deriveP256Key(uds, 'sphere/dice/attestation-key').privateScalar,
    deriveP256Key(uds, 'sphere/dice/client-key').privateScalar,
  ];
}

describe('security-core identity', () => {
  it('security-core - the same seed manufactures the same device ID and keys', () => {
    const a = manufactureIdentity('device-1');
    const b = manufactureIdentity('device-1');
    expect(a.deviceId).toBe(b.deviceId);
    expect(hex(a.attestationPublicKey)).toBe(hex(b.attestationPublicKey));
    expect(hex(a.clientPublicKey)).toBe(hex(b.clientPublicKey));
    // the private keys agree too: a signature by one verifies with the other's public key
    const msg = new TextEncoder().encode('clone');
    expect(verifyP1363(publicKeyFromRaw(b.attestationPublicKey), msg, signP1363(a.attestationKey, msg))).toBe(
      true,
    );
  });

  it('security-core - different seeds give different IDs and keys', () => {
    const a = manufactureIdentity('device-1');
    const b = manufactureIdentity('device-2');
    expect(a.deviceId).not.toBe(b.deviceId);
    expect(hex(a.attestationPublicKey)).not.toBe(hex(b.attestationPublicKey));
    expect(hex(a.clientPublicKey)).not.toBe(hex(b.clientPublicKey));
  });

  it('security-core - attestation and client keys of one device are distinct', () => {
    const a = manufactureIdentity('device-3');
    expect(hex(a.attestationPublicKey)).not.toBe(hex(a.clientPublicKey));
    expect(a.attestationPublicKey.length).toBe(65);
    expect(a.attestationPublicKey[0]).toBe(4);
    expect(a.clientPublicKey.length).toBe(65);
    expect(a.clientPublicKey[0]).toBe(4);
  });

  it('security-core - the device ID is 128 lowercase hex characters', () => {
    for (const seed of ['a', 'b', 'seed with spaces', '']) {
      expect(manufactureIdentity(seed).deviceId).toMatch(/^[0-9a-f]{128}$/);
    }
  });

  it('security-core - publicIdentity carries no key objects', () => {
    const id = manufactureIdentity('device-4');
    const pub = publicIdentity(id);
    expect(Object.keys(pub).sort()).toEqual(['attestationPublicKey', 'clientPublicKey', 'deviceId']);
  });
});

describe('security-core measured boot', () => {
  const id = manufactureIdentity('boot-device');
  const rng = createRng('security-core-boot');

  it('security-core - buildEvidence before the first boot returns null', () => {
    expect(buildEvidence(coreState(id), rng.bytes(32), 1000)).toBeNull();
  });

  it('security-core - each boot increments the boot count and draws the given boot ID', () => {
    let s = coreState(id);
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const bootId = rng.bytes(16);
      s = recordBoot(s, osImages('25.10'), '25.10', 5, bootId, extendMeasurement);
      expect(s.bootCount).toBe(i);
      expect(hex(s.boot!.bootId)).toBe(hex(bootId));
      ids.push(hex(bootId));
    }
    expect(new Set(ids).size).toBe(3);
  });

  it('security-core - recordBoot does not mutate the previous state', () => {
    const s0 = coreState(id);
    const s1 = recordBoot(s0, osImages('25.10'), '25.10', 5, rng.bytes(16), extendMeasurement);
    expect(s0.bootCount).toBe(0);
    expect(s0.boot).toBeUndefined();
    expect(s1.bootCount).toBe(1);
  });

  it('security-core - the boot chain equals measurementChain of the image digests, in order', () => {
    const images = [...osImages('24.10'), appImage({ name: 'blink', version: '1.0' })];
    const s = recordBoot(coreState(id), images, '24.10', 3, rng.bytes(16), extendMeasurement);
    expect(hex(s.boot!.chain)).toBe(hex(measurementChain(images.map((m) => m.digest))));
    expect(s.boot!.measurements.map((m) => m.stage)).toEqual([...BOOT_STAGES, 'app:blink']);
    // order matters
    const reversed = [...images].reverse();
    const r = recordBoot(coreState(id), reversed, '24.10', 3, rng.bytes(16), extendMeasurement);
    expect(hex(r.boot!.chain)).not.toBe(hex(s.boot!.chain));
  });

  it('security-core - a fresh boot starts a fresh chain (not extended from the previous boot)', () => {
    const s1 = recordBoot(coreState(id), osImages('25.10'), '25.10', 5, rng.bytes(16), extendMeasurement);
    const s2 = recordBoot(s1, osImages('25.10'), '25.10', 5, rng.bytes(16), extendMeasurement);
    expect(hex(s2.boot!.chain)).toBe(hex(s1.boot!.chain));
  });

  it('security-core - evidence carries the boot, nonce, time and public keys', () => {
    const bootId = rng.bytes(16);
    const nonce = rng.bytes(32);
    const s = recordBoot(coreState(id), osImages('25.04'), '25.04', 4, bootId, extendMeasurement);
    const e = buildEvidence(s, nonce, 123_456)!;
    expect(e.deviceId).toBe(id.deviceId);
    expect(hex(e.nonce)).toBe(hex(nonce));
    expect(e.osVersion).toBe('25.04');
    expect(e.securityVersion).toBe(4);
    expect(e.deviceTimeMs).toBe(123_456);
    expect(hex(e.bootId)).toBe(hex(bootId));
    expect(e.bootCount).toBe(1);
    expect(hex(e.attestationPublicKey)).toBe(hex(id.attestationPublicKey));
    expect(hex(e.clientPublicKey)).toBe(hex(id.clientPublicKey));
    expect(hex(e.measurementChain)).toBe(hex(s.boot!.chain));
  });

  it('security-core - signed encoded evidence verifies with the attestation public key and decodes', () => {
    const s = recordBoot(coreState(id), osImages('25.10'), '25.10', 5, rng.bytes(16), extendMeasurement);
    const bytes = encodeEvidence(buildEvidence(s, rng.bytes(32), 1_700_000_000_000)!);
    const sig = signP1363(id.attestationKey, bytes);
    expect(sig.length).toBe(64);
    const pub = publicKeyFromRaw(id.attestationPublicKey);
    expect(verifyP1363(pub, bytes, sig)).toBe(true);
    const tampered = Uint8Array.from(bytes);
    tampered[tampered.length - 1]! ^= 1;
    expect(verifyP1363(pub, tampered, sig)).toBe(false);
    // not verifiable with the client key
    expect(verifyP1363(publicKeyFromRaw(id.clientPublicKey), bytes, sig)).toBe(false);
    expect(decodeEvidence(bytes).ok).toBe(true);
  });

  it('security-core - neither private scalar appears in the core state or encoded evidence', () => {
    const seed = 'secret-holder';
    const holder = manufactureIdentity(seed);
    const [attScalar, clientScalar] = privateScalars(seed);
    // sanity: the derivation reproduces the identity's public key
    const uds = sha256(new TextEncoder().encode(`sphere-uds/${seed}`));
    expect(hex(deriveP256Key(uds, 'sphere/dice/attestation-key').publicKey)).toBe(
      hex(holder.attestationPublicKey),
    );

    const s = recordBoot(coreState(holder), osImages('25.10'), '25.10', 5, rng.bytes(16), extendMeasurement);
    const ev = buildEvidence(s, rng.bytes(32), 5)!;
    const bytes = encodeEvidence(ev);
    for (const scalar of [attScalar!, clientScalar!]) {
      expect(contains(bytes, scalar)).toBe(false);
      for (const v of Object.values(ev)) {
        if (v instanceof Uint8Array) expect(contains(v, scalar)).toBe(false);
      }
      for (const v of Object.values(s)) {
        if (v instanceof Uint8Array) expect(contains(v, scalar)).toBe(false);
      }
    }
    // the core's state and the evidence hold only plain data, never a KeyObject
    const json = JSON.stringify(ev, (_k, v: unknown) => (v instanceof Uint8Array ? hex(v) : v));
    expect(json).not.toContain(hex(attScalar!));
    expect(json).not.toContain(hex(clientScalar!));
    expect(Object.keys(ev)).not.toContain('attestationKey');
    expect(Object.keys(s)).not.toContain('attestationKey');
    expect(Object.keys(s)).not.toContain('clientScalar');
  });
});

describe('security-core firmware catalog', () => {
  it('firmware - OS releases have distinct versions and strictly increasing security versions', () => {
    const versions = OS_RELEASES.map((r) => r.version);
    expect(new Set(versions).size).toBe(versions.length);
    for (let i = 1; i < OS_RELEASES.length; i++) {
      expect(OS_RELEASES[i]!.securityVersion).toBeGreaterThan(OS_RELEASES[i - 1]!.securityVersion);
    }
    expect(osRelease('25.10')?.securityVersion).toBe(5);
    expect(osRelease('9.9')).toBeUndefined();
  });

  it('firmware - osImages lists the boot stages in order; ROM is shared, other stages differ per build', () => {
    const a = osImages('24.10');
    const b = osImages('25.10');
    expect(a.map((m) => m.stage)).toEqual([...BOOT_STAGES]);
    expect(hex(a[0]!.digest)).toBe(hex(b[0]!.digest));
    for (let i = 1; i < BOOT_STAGES.length; i++) expect(hex(a[i]!.digest)).not.toBe(hex(b[i]!.digest));
    for (const m of a) expect(m.digest.length).toBe(32);
  });

  it('firmware - the tampered kernel digest differs from the genuine kernel', () => {
    for (const r of OS_RELEASES) {
      const kernel = osImages(r.version).find((m) => m.stage === 'kernel')!;
      expect(hex(tamperedKernelDigest(r.version))).not.toBe(hex(kernel.digest));
    }
  });

  it('firmware - image digests are stable SHA-256 of the label', () => {
    expect(hex(imageDigest('os/25.10/kernel'))).toBe(
      hex(sha256(new TextEncoder().encode('sphere-image/os/25.10/kernel'))),
    );
    expect(appImage({ name: 'x', version: '1' }).stage).toBe('app:x');
    expect(hex(appImage({ name: 'x', version: '1' }).digest)).not.toBe(
      hex(appImage({ name: 'x', version: '2' }).digest),
    );
  });
});
