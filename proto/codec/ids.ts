/** 128 lowercase hex characters derived from the device's attestation public key. */
export type DeviceId = string & { readonly __brand: 'DeviceId' };
/** A tenant's identifier (`t-` followed by 16 lowercase hex characters). */
export type TenantId = string & { readonly __brand: 'TenantId' };

/** A product's identifier (`p-` followed by 16 lowercase hex characters). */
export type ProductId = string & { readonly __brand: 'ProductId' };
/** A device group's identifier (`g-` followed by 16 lowercase hex characters). */
export type DeviceGroupId = string & { readonly __brand: 'DeviceGroupId' };

/** An uploaded image's identifier (`i-` followed by 16 lowercase hex characters). */
export type ImageId = string & { readonly __brand: 'ImageId' };

/** A deployment's identifier (`d-` followed by 16 lowercase hex characters). */
export type DeploymentId = string & { readonly __brand: 'DeploymentId' };

const DEVICE_ID = /^[0-9a-f]{128}$/;
const DEPLOYMENT_ID = /^d-[0-9a-f]{16}$/;
const IMAGE_ID = /^i-[0-9a-f]{16}$/;
const PRODUCT_ID = /^p-[0-9a-f]{16}$/;
const DEVICE_GROUP_ID = /^g-[0-9a-f]{16}$/;
const TENANT_ID = /^t-[0-9a-f]{16}$/;

/** The one validating constructor for device IDs; `null` when `s` is not one. */
export function parseDeviceId(s: string): DeviceId | null {
  return DEVICE_ID.test(s) ? (s as DeviceId) : null;
}

/** The one validating constructor for tenant IDs; `null` when `s` is not one. */
export function parseTenantId(s: string): TenantId | null {
  return TENANT_ID.test(s) ? (s as TenantId) : null;
}

/** The one validating constructor for product IDs; `null` when `s` is not one. */
export function parseProductId(s: string): ProductId | null {
  return PRODUCT_ID.test(s) ? (s as ProductId) : null;
}

/** The one validating constructor for device group IDs; `null` when `s` is not one. */
export function parseDeviceGroupId(s: string): DeviceGroupId | null {
  return DEVICE_GROUP_ID.test(s) ? (s as DeviceGroupId) : null;
}

/** The one validating constructor for image IDs; `null` when `s` is not one. */
export function parseImageId(s: string): ImageId | null {
  return IMAGE_ID.test(s) ? (s as ImageId) : null;
}

/** The one validating constructor for deployment IDs; `null` when `s` is not one. */
export function parseDeploymentId(s: string): DeploymentId | null {
  return DEPLOYMENT_ID.test(s) ? (s as DeploymentId) : null;
}

/** Abbreviates a device ID for logs and tables (first 12 characters). */
export function shortDeviceId(id: DeviceId): string {
  return id.slice(0, 12);
}
