import type { KeyObject } from 'node:crypto';
import type { DeviceGroupId, DeviceId, RejectCode, TenantId } from '../../proto/codec/index.js';

/** The last attestation outcome of a device. */
export interface AttestationOutcome {
  readonly atMs: number;
  readonly ok: boolean;
  readonly code: RejectCode | 'OK';
  readonly message: string;
}

/**
 * What the service knows about one endorsed device. Mutable, owned by exactly one partition
 * actor (the one its ID hashes to); the operator API only reads it.
 */
export interface DeviceRecord {
  readonly deviceId: DeviceId;
  readonly attestationPublicKey: Uint8Array;
  /** The same key parsed once at endorsement, so attestation never re-imports it. */
  readonly attestationKey: KeyObject;
  tenantId: TenantId | null;
  /** The device group the tenant put the device in; `null` until assigned. */
  deviceGroupId: DeviceGroupId | null;
  osVersion: string;
  securityVersion: number;
  lastAttestation: AttestationOutcome | null;
  certificates: { update: Uint8Array; client: Uint8Array; notAfterMs: number } | null;
  /** Boot identity of the last successful attestation; only valid once one succeeded. */
  bootId: string | null;
  bootCount: number;
  /** The current session (hex ID) from the last successful attestation; `null` before or after quarantine. */
  session: string | null;
  /** Set when two live instances of this identity were seen: it gets no certificates until re-admitted. */
  compromised: boolean;
  lastSeenMs: number;
  attestationsOk: number;
  attestationsFailed: number;
  /** Application versions by name, from the device's last update check. */
  apps: Readonly<Record<string, string>>;
}

export const DEVICE_STATES = ['UNCLAIMED', 'CLAIMED', 'ATTESTED', 'FAILED', 'EXPIRED'] as const;
export type DeviceStateName = (typeof DEVICE_STATES)[number];

/** The state a record is in at `nowMs` (certificates expire with time, so this is derived). */
export function deviceState(r: DeviceRecord, nowMs: number): DeviceStateName {
  if (r.tenantId === null) return 'UNCLAIMED';
  if (r.lastAttestation === null) return 'CLAIMED';
  if (!r.lastAttestation.ok)
    return r.certificates !== null && r.certificates.notAfterMs > nowMs ? 'ATTESTED' : 'FAILED';
  if (r.certificates !== null && r.certificates.notAfterMs > nowMs) return 'ATTESTED';
  return 'EXPIRED';
}

/** Endorsed devices by ID. */
export class DeviceRegistry {
  readonly #byId = new Map<DeviceId, DeviceRecord>();

  get(id: DeviceId): DeviceRecord | undefined {
    return this.#byId.get(id);
  }

  /** Registers an endorsement; returns false when the device was already known. */
  endorse(deviceId: DeviceId, attestationPublicKey: Uint8Array, attestationKey: KeyObject): boolean {
    if (this.#byId.has(deviceId)) return false;
    this.#byId.set(deviceId, {
      deviceId,
      attestationPublicKey,
      attestationKey,
      tenantId: null,
      deviceGroupId: null,
      osVersion: '',
      securityVersion: 0,
      lastAttestation: null,
      certificates: null,
      bootId: null,
      bootCount: 0,
      session: null,
      compromised: false,
      lastSeenMs: 0,
      attestationsOk: 0,
      attestationsFailed: 0,
      apps: {},
    });
    return true;
  }

  get size(): number {
    return this.#byId.size;
  }

  values(): IterableIterator<DeviceRecord> {
    return this.#byId.values();
  }
}
