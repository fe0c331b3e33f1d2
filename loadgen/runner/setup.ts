import { createScaledClock } from '../../actors/runtime/index.js';
import type { ScaledClock } from '../../actors/runtime/index.js';
import type { ManufacturedIdentity } from '../../actors/security-core/index.js';
import type { OperatorClient } from '../../services/operator-api/index.js';
import type { GetServiceInfoResponse } from '../../proto/gen/sphere/operator/v1/operator.js';
import type { DevicePlan } from '../scenario/index.js';

/** Devices per RegisterEndorsements / ClaimDevices call (the API takes at most 20,000). */
const ENROLL_BATCH = 5000;

/**
 * Plays the silicon vendor and the tenant: creates a tenant, registers the endorsements of every
 * device except `unendorsed` ones and claims them for the tenant. Cloned twins share one identity,
 * so it is enrolled once. Returns the tenant and how many devices were enrolled.
 */
export async function enrollFleet(
  admin: OperatorClient,
  tenantName: string,
  plans: readonly DevicePlan[],
  identities: readonly ManufacturedIdentity[],
): Promise<{ tenantId: string; apiToken: string; enrolled: number }> {
  const tenant = await admin.createTenant(tenantName);
  const client = admin.withToken(tenant.apiToken);
  const keys = new Map<string, Uint8Array>();
  plans.forEach((p, i) => {
    const id = identities[i];
    if (id !== undefined && p.fault !== 'unendorsed') keys.set(id.deviceId, id.attestationPublicKey);
  });
  const ids = [...keys.keys()];
  for (let i = 0; i < ids.length; i += ENROLL_BATCH) {
    const slice = ids.slice(i, i + ENROLL_BATCH);
    await admin.registerEndorsements(slice.map((id) => keys.get(id) as Uint8Array));
    const claim = await client.claimDevices(slice);
    if (claim.rejected.length > 0) {
      throw new Error(`claiming failed for ${claim.rejected.length} devices: ${claim.rejected[0]?.message}`);
    }
  }
  return { tenantId: tenant.tenantId, apiToken: tenant.apiToken, enrolled: ids.length };
}

/** A clock that reads the service's simulated time (same anchor and scale as the shard). */
export function serviceClock(info: GetServiceInfoResponse): ScaledClock {
  return createScaledClock({
    timeScale: info.timeScale,
    epochMs: info.anchorSimMs + (Date.now() - info.anchorWallMs) * info.timeScale,
  });
}
