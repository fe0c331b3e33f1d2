import { describe, expect, it } from 'vitest';
import { createAlertService } from '../../../services/shard/alerts.js';
import type { AlertRecord } from '../../../services/shard/alerts.js';
import { ThreatDetector } from '../../../services/detection/index.js';
import { createServiceMetrics } from '../../../services/metrics/index.js';
import { createPromMeter } from '../../../actors/runtime/index.js';
import { signWebhook, webhookUrlProblem } from '../../../services/shard/webhooks.js';
import { createHmac } from 'node:crypto';

function service(
  o: {
    detector?: ThreatDetector | null;
    failAppend?: boolean;
    replaying?: boolean;
    known?: Set<string>;
  } = {},
) {
  const stored: AlertRecord[] = [];
  let wall = 0;
  const metrics = createServiceMetrics(createPromMeter());
  const s = createAlertService({
    append: (r) => {
      if (o.failAppend === true) return Promise.reject(new Error('no journal'));
      stored.push(r);
      return Promise.resolve(stored.length);
    },
    metrics,
    detector: o.detector ?? null,
    idPrefix: 'shard-0-b1',
    known: (id) => o.known?.has(id) ?? false,
    wallNow: () => wall,
  });
  if (o.replaying !== true) s.caughtUp();
  return { s, stored, tick: (ms: number) => (wall += ms) };
}

const refusal = (deviceId: string, type: 'BAD_MAC' | 'REPLAYED' = 'BAD_MAC') => ({
  tenantId: null,
  type,
  deviceId,
  atMs: 1,
  message: 'no',
  evidence: { step: 'update-check' },
});

describe('shard alert service', () => {
  it('alerts - refusals of one device and type within a second fold into the next stored alert', () => {
    const { s, stored, tick } = service();
    s.refusal(refusal('d1'));
    s.refusal(refusal('d1'));
    s.refusal(refusal('d1'));
    s.refusal(refusal('d2'));
    s.refusal(refusal('d1', 'REPLAYED'));
    expect(stored.map((r) => [r.deviceId, r.type])).toEqual([
      ['d1', 'BAD_MAC'],
      ['d2', 'BAD_MAC'],
      ['d1', 'REPLAYED'],
    ]);
    tick(1000);
    s.refusal(refusal('d1'));
    expect(stored.at(-1)?.evidence).toMatchObject({ step: 'update-check', folded_since_last: '2' });
    expect(new Set(stored.map((r) => r.id)).size).toBe(stored.length);
    expect(stored[0]?.id).toMatch(/^a-shard-0-b1-/);
    expect(stored[0]?.severity).toBe('critical');
  });

  it('alerts - the folded tail of a burst is stored by prune once the second is over', () => {
    const { s, stored, tick } = service();
    for (let i = 0; i < 5; i++) s.refusal(refusal('d1'));
    expect(stored).toHaveLength(1);
    s.prune(0);
    expect(stored).toHaveLength(1); // the second is not over
    tick(1000);
    s.prune(0);
    expect(stored).toHaveLength(2);
    expect(stored[1]?.evidence).toMatchObject({ folded_since_last: '4' });
    tick(1000);
    s.prune(0);
    expect(stored).toHaveLength(2); // nothing more to store
  });

  it('alerts - detection findings are stored under their deterministic ids', () => {
    const { s, stored } = service({ detector: new ThreatDetector({ floodMaxRequests: 2 }) });
    for (let i = 0; i < 4; i++)
      s.observe({
        kind: 'request',
        atMs: 1000 + i,
        deviceId: 'd9',
        tenantId: 't-000000000000000a',
        op: 'update-check',
      });
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({
      type: 'DEVICE_FLOODING',
      deviceId: 'd9',
      tenantId: 't-000000000000000a',
    });
    expect(stored[0]?.id).toMatch(/^ta-[0-9a-f]{32}$/);
    // Detection off: nothing.
    const off = service();
    off.s.observe({ kind: 'request', atMs: 1, deviceId: 'd9', tenantId: null, op: 'x' });
    expect(off.stored).toEqual([]);
  });

  it('alerts - findings made while replaying the journal are held; stored at catch-up unless already stored', () => {
    const known = new Set<string>();
    const { s, stored } = service({
      detector: new ThreatDetector({ floodMaxRequests: 2 }),
      replaying: true,
      known,
    });
    const flood = (deviceId: string) => {
      for (let i = 0; i < 4; i++)
        s.observe({ kind: 'request', atMs: 1000 + i, deviceId, tenantId: null, op: 'update-check' });
    };
    flood('d1');
    flood('d2');
    expect(stored).toEqual([]);
    // d1's finding was stored before the restart: its record is replayed after the events.
    s.caughtUp();
    expect(stored.map((r) => r.deviceId)).toEqual(['d1', 'd2']);
    const d1 = stored[0]?.id;
    // A restart replays the same events with d1's alert already applied: only d2's is stored.
    const again = service({ detector: new ThreatDetector({ floodMaxRequests: 2 }), replaying: true, known });
    known.add(d1 ?? '');
    for (let i = 0; i < 4; i++)
      again.s.observe({
        kind: 'request',
        atMs: 1000 + i,
        deviceId: 'd1',
        tenantId: null,
        op: 'update-check',
      });
    for (let i = 0; i < 4; i++)
      again.s.observe({
        kind: 'request',
        atMs: 1000 + i,
        deviceId: 'd2',
        tenantId: null,
        op: 'update-check',
      });
    again.s.caughtUp();
    expect(again.stored.map((r) => r.deviceId)).toEqual(['d2']);
  });

  it('alerts - a journal that refuses the append loses the alert without throwing', async () => {
    const { s } = service({ failAppend: true });
    expect(() => s.refusal(refusal('d1'))).not.toThrow();
    await new Promise((r) => setTimeout(r, 0));
  });

  it('webhooks - the signature is HMAC-SHA256 over "<t>.<body>"; URLs are http(s) without credentials', () => {
    const secret = 'ab'.repeat(32);
    const header = signWebhook(secret, 1700000000000, '{"a":1}');
    const mac = createHmac('sha256', Buffer.from(secret, 'hex'))
      .update('1700000000000.{"a":1}')
      .digest('hex');
    expect(header).toBe(`t=1700000000000,v1=${mac}`);
    expect(webhookUrlProblem('https://example.com/hook')).toBeNull();
    expect(webhookUrlProblem('http://127.0.0.1:9/x')).toBeNull();
    expect(webhookUrlProblem('ftp://example.com/')).toMatch(/http/);
    expect(webhookUrlProblem('https://u:p@example.com/')).toMatch(/credentials/);
    expect(webhookUrlProblem('not a url')).toMatch(/valid/);
    expect(webhookUrlProblem(`https://x/${'a'.repeat(3000)}`)).toMatch(/longer/);
  });
});
