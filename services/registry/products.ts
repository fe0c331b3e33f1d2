import type { DeviceGroupId, ProductId, TenantId } from '../../proto/codec/index.js';

/** OS feeds: RETAIL_EVAL gets each OS release 14 days before RETAIL. */
export const OS_FEEDS = ['RETAIL', 'RETAIL_EVAL'] as const;
export type OsFeed = (typeof OS_FEEDS)[number];

/** Update policies: everything, or system software (OS) only, no app updates. */
export const UPDATE_POLICIES = ['ACCEPT_ALL', 'SYSTEM_ONLY'] as const;
export type UpdatePolicy = (typeof UPDATE_POLICIES)[number];

/** The five groups every product gets, as Azure Sphere creates them. */
export const DEFAULT_DEVICE_GROUPS: ReadonlyArray<{
  name: string;
  osFeed: OsFeed;
  updatePolicy: UpdatePolicy;
}> = [
  { name: 'Development', osFeed: 'RETAIL', updatePolicy: 'SYSTEM_ONLY' },
  { name: 'Field Test', osFeed: 'RETAIL', updatePolicy: 'ACCEPT_ALL' },
  { name: 'Field Test OS Evaluation', osFeed: 'RETAIL_EVAL', updatePolicy: 'ACCEPT_ALL' },
  { name: 'Production', osFeed: 'RETAIL', updatePolicy: 'ACCEPT_ALL' },
  { name: 'Production OS Evaluation', osFeed: 'RETAIL_EVAL', updatePolicy: 'ACCEPT_ALL' },
];

export interface Product {
  readonly id: ProductId;
  readonly tenantId: TenantId;
  readonly name: string;
  readonly description: string;
  readonly createdAtMs: number;
}

export interface DeviceGroup {
  readonly id: DeviceGroupId;
  readonly productId: ProductId;
  readonly tenantId: TenantId;
  readonly name: string;
  readonly osFeed: OsFeed;
  readonly updatePolicy: UpdatePolicy;
}

/** Why a product or group could not be created. */
export type ProductError =
  | { readonly code: 'ALREADY_EXISTS'; readonly message: string }
  | { readonly code: 'NOT_FOUND'; readonly message: string };

/**
 * Products (device models) and their device groups, per tenant. Every lookup takes the tenant:
 * another tenant's product or group reads exactly like one that does not exist.
 */
export class ProductRegistry {
  readonly #products = new Map<ProductId, Product>();
  readonly #groups = new Map<DeviceGroupId, DeviceGroup>();

  /** Creates a product and its five default groups; names are unique within a tenant. */
  createProduct(
    p: Omit<Product, 'id'>,
    newProductId: () => ProductId,
    newGroupId: () => DeviceGroupId,
  ): { ok: true; product: Product; groups: DeviceGroup[] } | { ok: false; error: ProductError } {
    if (this.products(p.tenantId).some((x) => x.name === p.name)) {
      return {
        ok: false,
        error: { code: 'ALREADY_EXISTS', message: `a product named "${p.name}" already exists` },
      };
    }
    const product: Product = { ...p, id: newProductId() };
    this.#products.set(product.id, product);
    const groups = DEFAULT_DEVICE_GROUPS.map((g) =>
      this.#addGroup({ ...g, productId: product.id, tenantId: p.tenantId }, newGroupId),
    );
    return { ok: true, product, groups };
  }

  createGroup(
    g: Omit<DeviceGroup, 'id'>,
    newGroupId: () => DeviceGroupId,
  ): { ok: true; group: DeviceGroup } | { ok: false; error: ProductError } {
    if (this.product(g.tenantId, g.productId) === undefined) {
      return { ok: false, error: { code: 'NOT_FOUND', message: 'no such product in your tenant' } };
    }
    if (this.groups(g.tenantId, g.productId).some((x) => x.name === g.name)) {
      return {
        ok: false,
        error: { code: 'ALREADY_EXISTS', message: `the product already has a group named "${g.name}"` },
      };
    }
    return { ok: true, group: this.#addGroup(g, newGroupId) };
  }

  product(tenantId: TenantId, id: ProductId): Product | undefined {
    const p = this.#products.get(id);
    return p?.tenantId === tenantId ? p : undefined;
  }

  products(tenantId: TenantId): Product[] {
    return [...this.#products.values()].filter((p) => p.tenantId === tenantId);
  }

  group(tenantId: TenantId, id: DeviceGroupId): DeviceGroup | undefined {
    const g = this.#groups.get(id);
    return g?.tenantId === tenantId ? g : undefined;
  }

  groups(tenantId: TenantId, productId: ProductId): DeviceGroup[] {
    return [...this.#groups.values()].filter((g) => g.tenantId === tenantId && g.productId === productId);
  }

  #addGroup(g: Omit<DeviceGroup, 'id'>, newGroupId: () => DeviceGroupId): DeviceGroup {
    const group: DeviceGroup = { ...g, id: newGroupId() };
    this.#groups.set(group.id, group);
    return group;
  }
}
