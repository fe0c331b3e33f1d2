import { describe, expect, test } from 'vitest';
import { alertKey, countTenantAlerts, operatorEndpoints } from '../../../loadgen/hostile/index.js';
import type { OperatorClient } from '../../../services/operator-api/index.js';
import type {
  Alert,
  ListAlertsRequest,
  ListAlertsResponse,
} from '../../../proto/gen/sphere/operator/v1/operator.js';

function alert(id: string, deviceId: string, type: string, evidence: Record<string, string> = {}): Alert {
  // Only the fields hostile traffic reads (the generated type may carry more).
  return {
    id,
    type,
    severity: 'high',
    deviceId,
    atMs: 1000,
    message: '',
    evidence: { shard: 's0', ...evidence },
  } as unknown as Alert;
}

/** A shard's ListAlerts over `log()` (read at each call), paged by position; `fail` makes a call throw. */
function reader(log: () => Alert[], o: { fail?: () => boolean; calls?: Partial<ListAlertsRequest>[] } = {}) {
  const listAlerts = (q: Partial<ListAlertsRequest>): Promise<ListAlertsResponse> => {
    o.calls?.push(q);
    if (o.fail?.() === true) return Promise.reject(new Error('UNAVAILABLE'));
    const matching = log().filter((a) => a.deviceId === q.deviceId && a.type === q.type);
    const start = q.pageToken === undefined || q.pageToken === '' ? 0 : Number(q.pageToken);
    const limit = q.limit ?? 100;
    const page = matching.slice(start, start + limit);
    const next = start + limit < matching.length ? String(start + limit) : '';
    return Promise.resolve({ alerts: page, nextPageToken: next });
  };
  return { listAlerts } as unknown as OperatorClient;
}

const noSleep = () => Promise.resolve();

describe('hostile alerts', () => {
  test('alerts - endpoints of a failover list, or the one address', () => {
    expect(operatorEndpoints('127.0.0.1:5000')).toEqual(['127.0.0.1:5000']);
    expect(operatorEndpoints('ipv4:127.0.0.1:1, 127.0.0.1:2,')).toEqual(['127.0.0.1:1', '127.0.0.1:2']);
  });

  test('alerts - counts each demand over every page and every shard, an alert seen on two shards once', async () => {
    const many = Array.from({ length: 2500 }, (_, i) => alert(`a-${i}`, 'D', 'RATE_LIMITED'));
    const calls: Partial<ListAlertsRequest>[] = [];
    const found = await countTenantAlerts(
      [
        reader(() => many, { calls }),
        reader(() => [many[0] as Alert, alert('b-1', 'D', 'RATE_LIMITED', { shard: 's1' })]),
      ],
      [{ deviceId: 'D', type: 'RATE_LIMITED', count: 3000 }],
      { sinceMs: 500, waitMs: 0, pollMs: 0, sleep: noSleep },
    );
    expect(found.get(alertKey('D', 'RATE_LIMITED'))).toEqual({ alerts: 2501, covered: 2501 });
    expect(calls.map((c) => c.pageToken)).toEqual(['', '1000', '2000']);
    expect(calls.every((c) => c.sinceMs === 500 && c.limit === 1000)).toBe(true);
  });

  test('alerts - an alert covers the refusals folded into it', async () => {
    const log = [alert('a-1', 'D', 'REPLAYED'), alert('a-2', 'D', 'REPLAYED', { folded_since_last: '7' })];
    const found = await countTenantAlerts(
      [reader(() => log)],
      [{ deviceId: 'D', type: 'REPLAYED', count: 20 }],
      {
        sinceMs: 0,
        waitMs: 0,
        pollMs: 0,
        sleep: noSleep,
      },
    );
    expect(found.get(alertKey('D', 'REPLAYED'))).toEqual({ alerts: 2, covered: 9 });
  });

  test('alerts - asks again until every demand has an alert; a failing shard is skipped', async () => {
    const log: Alert[] = [];
    let rounds = 0;
    const sleep = (): Promise<void> => {
      rounds++;
      if (rounds === 2) log.push(alert('a-1', 'E', 'IDENTITY_MISMATCH'));
      return Promise.resolve();
    };
    const found = await countTenantAlerts(
      [reader(() => [], { fail: () => true }), reader(() => log)],
      [{ deviceId: 'E', type: 'IDENTITY_MISMATCH', count: 1 }],
      { sinceMs: 0, waitMs: 60_000, pollMs: 1, sleep },
    );
    expect(found.get(alertKey('E', 'IDENTITY_MISMATCH'))).toEqual({ alerts: 1, covered: 1 });
    // Found after the second wait, then read once more for alerts still on their way.
    expect(rounds).toBe(3);
  });

  test('alerts - gives up after waitMs with what it found', async () => {
    const found = await countTenantAlerts(
      [reader(() => [])],
      [{ deviceId: 'X', type: 'REPLAYED', count: 1 }],
      {
        sinceMs: 0,
        waitMs: 0,
        pollMs: 1,
        sleep: noSleep,
      },
    );
    expect(found.get(alertKey('X', 'REPLAYED'))).toEqual({ alerts: 0, covered: 0 });
  });
});
