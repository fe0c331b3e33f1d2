/**
 * Reading a tenant's alerts back over the operator API, as the tenant would: ListAlerts per
 * (device, type), paged, from every shard the run knows (whichever shard answers; alerts raised
 * by one shard may reach the others' lists later), waiting a little for alerts on their way.
 */
import { createOperatorClient } from '../../services/operator-api/index.js';
import type { OperatorClient } from '../../services/operator-api/index.js';
import type { Alert } from '../../proto/gen/sphere/operator/v1/operator.js';
import { alertKey } from './judge.js';
import type { AlertDemand, AlertsFound } from './judge.js';

/**
 * The gRPC endpoints of an operator API address: `ipv4:a:1,b:2` (a failover list, as the local
 * stack passes for several shards) gives each; anything else is one endpoint.
 */
export function operatorEndpoints(address: string): string[] {
  if (!address.startsWith('ipv4:')) return [address];
  return address
    .slice('ipv4:'.length)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
}

/** Identifies one alert across shards (the same alert read from two shards counts once). */
function identity(a: Alert): string {
  return `${a.evidence['shard'] ?? ''}/${a.id}/${a.atMs}`;
}

/** Refusals an alert stands for: itself and those folded into it. */
function covers(a: Alert): number {
  const folded = Number(a.evidence['folded_since_last'] ?? '0');
  return 1 + (Number.isSafeInteger(folded) && folded > 0 ? folded : 0);
}

/** Options of {@link countTenantAlerts}. */
export interface AlertReadOptions {
  /** Only alerts raised at or after this simulated time. */
  readonly sinceMs: number;
  /** Wall ms to keep asking while some demand has no alert yet. */
  readonly waitMs: number;
  /** Wall ms between rounds (alerts travel through the journal before every shard lists them). */
  readonly pollMs: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

const PAGE = 1000;
const MAX_PAGES = 100;

/**
 * The alerts of each demanded (device, type) in the tenant's ListAlerts, per {@link alertKey}: the
 * union over `readers` (one client per shard, each with the tenant's token). Asks again every
 * `pollMs` until every demand has an alert (then once more, for alerts still on their way) or
 * `waitMs` has passed; a reader that fails is skipped for that round.
 */
export async function countTenantAlerts(
  readers: readonly OperatorClient[],
  demands: readonly AlertDemand[],
  opts: AlertReadOptions,
): Promise<Map<string, AlertsFound>> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const seen = new Map<string, Map<string, number>>(
    demands.map((d) => [alertKey(d.deviceId, d.type), new Map<string, number>()]),
  );
  const deadline = performance.now() + opts.waitMs;
  let settled = false;
  for (;;) {
    for (const d of demands) {
      const into = seen.get(alertKey(d.deviceId, d.type));
      if (into === undefined) continue;
      for (const reader of readers) {
        try {
          let pageToken = '';
          for (let page = 0; page < MAX_PAGES; page++) {
            const r = await reader.listAlerts({
              deviceId: d.deviceId,
              type: d.type,
              sinceMs: opts.sinceMs,
              limit: PAGE,
              pageToken,
            });
            for (const a of r.alerts) {
              if (a.deviceId === d.deviceId && a.type === d.type) into.set(identity(a), covers(a));
            }
            if (r.nextPageToken === '') break;
            pageToken = r.nextPageToken;
          }
        } catch {
          // This shard does not answer now; another may, or the next round.
        }
      }
    }
    const unmet = demands.some((d) => (seen.get(alertKey(d.deviceId, d.type))?.size ?? 0) === 0);
    if ((!unmet && settled) || performance.now() >= deadline) break;
    settled = !unmet;
    await sleep(opts.pollMs);
  }
  return new Map(
    [...seen].map(([key, alerts]) => [
      key,
      { alerts: alerts.size, covered: [...alerts.values()].reduce((sum, n) => sum + n, 0) },
    ]),
  );
}

/** One operator client per endpoint of `address`, each with `token`. Close them with `close()`. */
export function alertReaders(address: string, token: string): OperatorClient[] {
  return operatorEndpoints(address).map((endpoint) => createOperatorClient(endpoint, token));
}
