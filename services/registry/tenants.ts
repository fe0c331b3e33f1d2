import { createHash } from 'node:crypto';
import type { CaIdentity } from '../certificates/index.js';
import type { TenantId } from '../../proto/codec/index.js';

export interface Tenant {
  readonly id: TenantId;
  readonly name: string;
  readonly ca: CaIdentity;
  readonly createdAtMs: number;
}

/** Tenants and their API tokens (stored as SHA-256 hashes only). */
export class TenantRegistry {
  readonly #byId = new Map<TenantId, Tenant>();
  readonly #byTokenHash = new Map<string, TenantId>();

  add(tenant: Tenant, apiToken: string): void {
    this.addHashed(tenant, tokenHash(apiToken));
  }

  /** Adds a tenant known by the hash of its token (as stored; the token itself never is). */
  addHashed(tenant: Tenant, hashOfToken: string): void {
    this.#byId.set(tenant.id, tenant);
    this.#byTokenHash.set(hashOfToken, tenant.id);
  }

  get(id: TenantId): Tenant | undefined {
    return this.#byId.get(id);
  }

  /** The tenant an API token belongs to, if any. */
  byToken(token: string): Tenant | undefined {
    const id = this.#byTokenHash.get(tokenHash(token));
    return id === undefined ? undefined : this.#byId.get(id);
  }

  values(): IterableIterator<Tenant> {
    return this.#byId.values();
  }
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
