import type { ImageId, TenantId } from '../../proto/codec/index.js';

/** An image a tenant uploaded; its bytes live in the tenant's TUF repository as `targetName`. */
export interface ImageRecord {
  readonly id: ImageId;
  readonly tenantId: TenantId;
  readonly kind: 'os' | 'app';
  readonly name: string;
  readonly version: string;
  readonly securityVersion: number;
  readonly length: number;
  readonly sha256: string;
  readonly targetName: string;
  readonly uploadedAtMs: number;
}

/** Images per tenant; (kind, name, version) is unique within a tenant. */
export class ImageRegistry {
  readonly #byTenant = new Map<TenantId, ImageRecord[]>();

  find(tenantId: TenantId, kind: string, name: string, version: string): ImageRecord | undefined {
    return this.#byTenant
      .get(tenantId)
      ?.find((i) => i.kind === kind && i.name === name && i.version === version);
  }

  add(image: ImageRecord): void {
    const list = this.#byTenant.get(image.tenantId) ?? [];
    list.push(image);
    this.#byTenant.set(image.tenantId, list);
  }

  list(tenantId: TenantId): readonly ImageRecord[] {
    return this.#byTenant.get(tenantId) ?? [];
  }
}

/** The TUF target name of an image: `<kind>/<name>/<version>.img`. */
export function imageTargetName(kind: 'os' | 'app', name: string, version: string): string {
  return `${kind}/${name}/${version}.img`;
}
