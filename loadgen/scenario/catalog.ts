/**
 * Facts about the simulated world that scenarios refer to by name: the OS versions the security
 * service knows, the fault profiles a share of the fleet can be given, and the update faults of
 * device update agents.
 */
import type { UpdateFault as AgentUpdateFault } from '../../actors/update-agent/index.js';

/**
 * OS versions the security service knows, with their security version. The service's default
 * minimum security version is 3, so 23.05 is below it (that is what the `belowMinVersion` fault
 * profile runs).
 */
export const OS_VERSIONS = {
  '23.05': { securityVersion: 1 },
  '24.10': { securityVersion: 3 },
  '25.04': { securityVersion: 4 },
  '25.10': { securityVersion: 5 },
} as const;

/** One of the keys of {@link OS_VERSIONS}, e.g. `"25.10"`. */
export type OsVersion = keyof typeof OS_VERSIONS;

/** The OS versions in ascending order. */
export const OS_VERSION_LIST = Object.keys(OS_VERSIONS).sort(compareVersions) as readonly OsVersion[];

/** True if `value` names a known OS version. */
export function isOsVersion(value: string): value is OsVersion {
  return Object.hasOwn(OS_VERSIONS, value);
}

/** Numeric comparison of `"YY.MM"` version strings. */
export function compareVersions(a: string, b: string): number {
  const [aMajor = 0, aMinor = 0] = a.split('.').map(Number);
  const [bMajor = 0, bMinor = 0] = b.split('.').map(Number);
  return aMajor - bMajor || aMinor - bMinor;
}

/**
 * The newest known OS version whose security version is below `minSecurityVersion`, or `null`
 * if every known version meets it. Devices with the `belowMinVersion` fault run this version.
 */
export function belowMinimumVersion(minSecurityVersion: number): OsVersion | null {
  let found: OsVersion | null = null;
  for (const version of OS_VERSION_LIST) {
    if (OS_VERSIONS[version].securityVersion < minSecurityVersion) found = version;
  }
  return found;
}

/**
 * Fault profiles and what the security service is expected to do about them.
 *
 * - `expectedCodes`: the rejection code(s) the service must answer with (any one of them counts).
 * - `certificates`: which devices with this fault may obtain certificates during the run: `none`
 *   (the service must never certify them; for pairs, only the twin that attested before its clone
 *   appeared), `all` (every one must end up certified: `wrongClock` resynchronises and retries), or
 *   `any` (not judged: a `replay` device attests honestly once before it starts replaying).
 * - `pairs`: devices with this fault come in pairs sharing one identity (see `DevicePlan.twinOf`).
 */
export const FAULT_PROFILES = {
  tamperedKernel: {
    description: 'boot measurements do not match the OS image (modified kernel)',
    expectedCodes: ['MEASUREMENT_MISMATCH'],
    certificates: 'none',
    pairs: false,
  },
  unendorsed: {
    description: 'attestation key not endorsed by the manufacturer (device unknown to the service)',
    expectedCodes: ['UNKNOWN_DEVICE'],
    certificates: 'none',
    pairs: false,
  },
  clonedKey: {
    description: 'two devices share one identity; the later of a pair must be rejected',
    expectedCodes: ['DUPLICATE_IDENTITY'],
    certificates: 'none',
    pairs: true,
  },
  replay: {
    description: 'replays previously accepted evidence instead of answering the fresh nonce',
    expectedCodes: ['NONCE_REUSED', 'NONCE_STALE'],
    certificates: 'any',
    pairs: false,
  },
  belowMinVersion: {
    description: 'runs an OS whose security version is below service.minSecurityVersion',
    expectedCodes: ['BELOW_MIN_VERSION'],
    certificates: 'none',
    pairs: false,
  },
  wrongClock: {
    description: 'device clock is off by more than service.maxClockSkew; resyncs and succeeds',
    expectedCodes: ['CLOCK_SKEW'],
    certificates: 'all',
    pairs: false,
  },
} as const;

/** A fault profile name, e.g. `"tamperedKernel"`. */
export type FaultProfile = keyof typeof FAULT_PROFILES;

/** Fault profile names in declaration order (the order reports use). */
export const FAULT_PROFILE_LIST = Object.keys(FAULT_PROFILES) as readonly FaultProfile[];

/** True if `value` names a fault profile. */
export function isFaultProfile(value: string): value is FaultProfile {
  return Object.hasOwn(FAULT_PROFILES, value);
}

/**
 * Update faults: how a healthy device's update agent misbehaves (`updates.faults` in a scenario).
 * Devices with an update fault never have a fault profile from {@link FAULT_PROFILES}.
 *
 * - `outcome`: what the device reports for an update to a non-defective image (`succeeded` for
 *   faults the agent recovers from), with the `code` it attaches to a failure, if any.
 */
export const UPDATE_FAULTS = {
  installFails: {
    description: 'installing the image to the inactive slot fails',
    outcome: 'failed',
    code: 'INSTALL_FAILED',
  },
  bootLoop: {
    description: 'every new image fails to boot, so the device falls back to the previous slot',
    outcome: 'rolled-back',
    code: 'BOOT_FAILED',
  },
  powerLossMidDownload: {
    description: 'loses power mid-download, reboots and resumes from the last complete chunk',
    outcome: 'succeeded',
    code: null,
  },
  slowLink: {
    description: 'downloads at updates.slowLinkBytesPerSecond (simulated)',
    outcome: 'succeeded',
    code: null,
  },
} as const satisfies Record<AgentUpdateFault, { description: string; outcome: string; code: string | null }>;

/** An update fault name, e.g. `"bootLoop"` (the update agent's own list, described above). */
export type UpdateFault = AgentUpdateFault;

/** Update fault names in declaration order (the order reports use). */
export const UPDATE_FAULT_LIST = Object.keys(UPDATE_FAULTS) as readonly UpdateFault[];

/** True if `value` names an update fault. */
export function isUpdateFault(value: string): value is UpdateFault {
  return Object.hasOwn(UPDATE_FAULTS, value);
}
