import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';

/**
 * The simulated OS builds: what a device can run and what the service knows as reference values.
 * A build's security version is what anti-rollback and the service's minimum-version policy use.
 */
export const OS_RELEASES = [
  { version: '23.05', securityVersion: 1 },
  { version: '24.10', securityVersion: 3 },
  { version: '25.04', securityVersion: 4 },
  { version: '25.10', securityVersion: 5 },
] as const;

export type OsVersion = (typeof OS_RELEASES)[number]['version'];

/** Boot stages in the order they run and are measured; apps follow as `app:<name>`. */
export const BOOT_STAGES = ['rom', 'runtime', 'security-monitor', 'kernel', 'os-services'] as const;
export type BootStage = (typeof BOOT_STAGES)[number];

/** A measured image: boot stage name and the SHA-256 digest of its image. */
export interface ImageMeasurement {
  readonly stage: string;
  readonly digest: Uint8Array;
}

export interface AppImage {
  readonly name: string;
  readonly version: string;
}

/** Looks up a release; `undefined` when the version is not a known build. */
export function osRelease(version: string): (typeof OS_RELEASES)[number] | undefined {
  return OS_RELEASES.find((r) => r.version === version);
}

const digestCache = new Map<string, Uint8Array>();

/** Digest of a named image, stable across processes (a stand-in for hashing the image bytes). */
export function imageDigest(label: string): Uint8Array {
  let d = digestCache.get(label);
  if (d === undefined) {
    d = sha256(utf8ToBytes(`sphere-image/${label}`));
    digestCache.set(label, d);
  }
  return d;
}

/**
 * The known-good measurements of an OS build, in boot order. The mask ROM is the same on every
 * MT3620 whatever the OS; every other stage changes with the build.
 */
export function osImages(version: string): ImageMeasurement[] {
  return BOOT_STAGES.map((stage) => ({
    stage,
    digest: imageDigest(stage === 'rom' ? 'mt3620/rom' : `os/${version}/${stage}`),
  }));
}

/** The measurement of an application image. */
export function appImage(app: AppImage): ImageMeasurement {
  return { stage: `app:${app.name}`, digest: imageDigest(`app/${app.name}/${app.version}`) };
}

/** What a tampered kernel measures as (any other digest would do). */
export function tamperedKernelDigest(version: string): Uint8Array {
  return imageDigest(`os/${version}/kernel/tampered`);
}
