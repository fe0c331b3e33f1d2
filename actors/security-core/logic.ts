import type { DeviceId, EvidenceMsg, MeasurementMsg } from '../../proto/codec/index.js';
import type { ImageMeasurement } from './firmware.js';

/** The measured-boot state of a core; everything except keys (which the shell holds). */
export interface CoreBootState {
  readonly deviceId: DeviceId;
  readonly attestationPublicKey: Uint8Array;
  readonly clientPublicKey: Uint8Array;
  /** Monotonic: survives reboots, never decreases (an e-fuse-backed counter on real silicon). */
  readonly bootCount: number;
  /** Only valid after the first boot. */
  readonly boot?: {
    readonly bootId: Uint8Array;
    readonly measurements: readonly MeasurementMsg[];
    readonly chain: Uint8Array;
    readonly osVersion: string;
    readonly securityVersion: number;
  };
}

/** `extend(chain, digest)`: the measured-boot extend operation (SHA-256(chain || digest)). */
export type Extend = (chain: Uint8Array, digest: Uint8Array) => Uint8Array;

/** Records a boot: increments the counter, measures each image in order into a fresh chain. */
export function recordBoot(
  state: CoreBootState,
  images: readonly ImageMeasurement[],
  osVersion: string,
  securityVersion: number,
  bootId: Uint8Array,
  extend: Extend,
): CoreBootState {
  let chain: Uint8Array = new Uint8Array(32);
  const measurements: MeasurementMsg[] = [];
  for (const image of images) {
    chain = extend(chain, image.digest);
    measurements.push({ stage: image.stage, digest: image.digest });
  }
  return {
    ...state,
    bootCount: state.bootCount + 1,
    boot: { bootId, measurements, chain, osVersion, securityVersion },
  };
}

/**
 * The evidence to sign for `nonce`; `null` before the first boot (a core that has not measured
 * a boot has nothing to attest).
 */
export function buildEvidence(
  state: CoreBootState,
  nonce: Uint8Array,
  deviceTimeMs: number,
): EvidenceMsg | null {
  const boot = state.boot;
  if (boot === undefined) return null;
  return {
    deviceId: state.deviceId,
    nonce,
    measurements: boot.measurements,
    measurementChain: boot.chain,
    osVersion: boot.osVersion,
    securityVersion: boot.securityVersion,
    deviceTimeMs,
    bootId: boot.bootId,
    bootCount: state.bootCount,
    attestationPublicKey: state.attestationPublicKey,
    clientPublicKey: state.clientPublicKey,
  };
}
