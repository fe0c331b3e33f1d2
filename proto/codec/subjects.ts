import type { DeviceId } from './ids.js';

/** Device-facing operations; each has its own subject per partition. */
export const DEVICE_OPS = [
  'challenge',
  'attest',
  'heartbeat',
  'update-check',
  'update-chunk',
  'update-report',
  'error-report',
] as const;
export type DeviceOp = (typeof DEVICE_OPS)[number];

/** Default number of partitions the device space is split into. Fixed for the life of a fleet. */
export const DEFAULT_PARTITIONS = 64;

/**
 * The partition a device belongs to: its ID's first 32 bits modulo `partitions`. Device IDs are
 * SHA-512 output, so partitions are evenly filled.
 */
export function partitionOf(deviceId: DeviceId, partitions: number): number {
  return Number.parseInt(deviceId.slice(0, 8), 16) % partitions;
}

/** `sphere.dev.v1.<op>.<partition>`: where a device sends `op`. */
export function deviceSubject(op: DeviceOp, partition: number): string {
  return `sphere.dev.v1.${op}.${partition}`;
}

/** Wildcard subject matching `op` for every partition. */
export function deviceSubjectAll(op: DeviceOp): string {
  return `sphere.dev.v1.${op}.*`;
}

/** Parses the partition out of a device subject; `null` if the subject is not one. */
export function partitionOfSubject(subject: string): number | null {
  const last = subject.slice(subject.lastIndexOf('.') + 1);
  if (!/^\d{1,6}$/.test(last)) return null;
  return Number(last);
}
