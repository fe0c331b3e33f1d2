/** 128 lowercase hex characters derived from the device's attestation public key. */
export type DeviceId = string & { readonly __brand: 'DeviceId' };
/** A tenant's identifier (`t-` followed by 16 lowercase hex characters). */
export type TenantId = string & { readonly __brand: 'TenantId' };

const DEVICE_ID = /^[0-9a-f]{128}$/;
const TENANT_ID = /^t-[0-9a-f]{16}$/;

/** The one validating constructor for device IDs; `null` when `s` is not one. */
export function parseDeviceId(s: string): DeviceId | null {
  return DEVICE_ID.test(s) ? (s as DeviceId) : null;
}

/** The one validating constructor for tenant IDs; `null` when `s` is not one. */
export function parseTenantId(s: string): TenantId | null {
  return TENANT_ID.test(s) ? (s as TenantId) : null;
}

/** Abbreviates a device ID for logs and tables (first 12 characters). */
export function shortDeviceId(id: DeviceId): string {
  return id.slice(0, 12);
}
