/**
 * Alerts reach the tenant: WatchAlerts streams them as they are stored (and resumes from a seq),
 * threat detection raises its own (a flooding device), a webhook receives each one signed, and
 * error reports are queried and exported over gRPC. A real shard on a real nats-server; real gRPC.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeErrorReportReply,
  encodeErrorReportUpload,
  encodeUpdateCheckRequest,
} from '../../../proto/codec/index.js';
import type { DeviceId, ErrorEventMsg } from '../../../proto/codec/index.js';
import type { AlertUpdate } from '../../../services/operator-api/index.js';
import { SIGNATURE_HEADER } from '../../../services/shard/webhooks.js';
import {
  attestRequestBytes,
  attestSession,
  bootedDevice,
  callError,
  createTestTenant,
  endorseAndClaim,
  requestRaw,
  sendAttest,
  uniqueSeed,
  useShard,
} from '../../fixtures/shard.js';
import type { TestDevice, TestTenant } from '../../fixtures/shard.js';

const FLOOD = 20;

/** The first `n` updates of a watch (then it is cancelled). */
async function take(watch: AsyncIterable<AlertUpdate>, n: number): Promise<AlertUpdate[]> {
  const out: AlertUpdate[] = [];
  if (n === 0) return out;
  for await (const u of watch) {
    out.push(u);
    if (out.length >= n) break;
  }
  return out;
}

const checkBody = (deviceId: DeviceId): Uint8Array =>
  encodeUpdateCheckRequest({ deviceId, trustedRootVersion: 1, installed: [], deviceTimeMs: Date.now() });

describe('alerts and error reports over gRPC', () => {
  const env = useShard({ shardId: 'shard-alerts', detection: { floodMaxRequests: FLOOD } });
  let a: TestTenant;
  let b: TestTenant;

  beforeAll(async () => {
    a = await createTestTenant(env().admin, 'Alerts A');
    b = await createTestTenant(env().admin, 'Alerts B');
  });
  afterAll(() => {
    a.client.close();
    b.client.close();
  });

  async function enrolled(t: TestTenant, label: string): Promise<TestDevice> {
    const dev = bootedDevice(uniqueSeed(label));
    await endorseAndClaim(env().admin, t.client, [dev]);
    return dev;
  }
  /** One refusal of `dev` (a made-up nonce): an alert of its tenant. */
  async function refuse(dev: TestDevice): Promise<void> {
    const r = await sendAttest(env().devices, dev.deviceId, attestRequestBytes(dev, randomBytes(32)).bytes);
    expect(r.ok).toBe(false);
  }

  it('watch alerts - a tenant watching sees its new alerts as they are stored, never another tenant’s', async () => {
    const mine = await enrolled(a, 'watch-mine');
    const theirs = await enrolled(b, 'watch-theirs');
    const ac = new AbortController();
    const watchA = a.client.watchAlerts({ onlyNew: true, signal: ac.signal });
    const first = take(watchA, 1);
    // The watch is open once the stream exists server-side; a refusal of B's device first.
    await new Promise((r) => setTimeout(r, 200));
    await refuse(theirs);
    await refuse(mine);
    const [got] = await first;
    expect(got?.alert.deviceId).toBe(mine.deviceId);
    expect(got?.alert.seq).toBeGreaterThan(0);
    expect(got?.missed).toBe(0);
    ac.abort();
  });

  it('watch alerts - resuming from a seq replays what came after it, in order, then goes on live', async () => {
    const dev = await enrolled(a, 'resume');
    const devs = [dev, await enrolled(a, 'resume'), await enrolled(a, 'resume')];
    for (const d of devs) await refuse(d);
    await expect
      .poll(async () => (await a.client.listAlerts({ deviceId: devs[2]?.deviceId ?? '' })).alerts.length)
      .toBe(1);
    const listed = (await a.client.listAlerts({ limit: 1000 })).alerts;
    const from = listed.at(-4)?.seq ?? 0;
    const replay = await take(a.client.watchAlerts({ afterSeq: from }), 3);
    expect(replay.map((u) => u.alert.id)).toEqual(listed.slice(-3).map((x) => x.id));
    const seqs = replay.map((u) => u.alert.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    // Filters: by device.
    const one = await take(a.client.watchAlerts({ deviceId: dev.deviceId }), 1);
    expect(one[0]?.alert.deviceId).toBe(dev.deviceId);
  });

  it('tenant crossing - another tenant reading, claiming or assigning a device is refused and its owner alerted', async () => {
    const dev = await enrolled(a, 'crossing');
    expect((await callError(b.client.getDevice(dev.deviceId))).code).toBe('NOT_FOUND');
    const claim = await b.client.claimDevices([dev.deviceId]);
    expect(claim.claimed).toBe(0);
    const alerts = async () =>
      (await a.client.listAlerts({ type: 'TENANT_CROSSING', deviceId: dev.deviceId })).alerts;
    await expect.poll(async () => (await alerts()).length).toBeGreaterThan(0);
    const [first] = await alerts();
    expect(first).toMatchObject({ severity: 'high', deviceId: dev.deviceId });
    expect(first?.evidence['caller_tenant']).toBe(b.tenantId);
    // The caller learns nothing: no alert about A's device in B's log.
    expect((await b.client.listAlerts({ deviceId: dev.deviceId })).alerts).toEqual([]);
  });

  it('watch alerts - the admin token sees the service’s own alerts (senders no tenant owns), never a tenant’s', async () => {
    const admin = env().admin;
    const mine = await enrolled(a, 'admin-view-tenant');
    const stranger = bootedDevice(uniqueSeed('admin-view-unendorsed')); // endorsed by nobody
    const ac = new AbortController();
    const first = take(admin.watchAlerts({ onlyNew: true, signal: ac.signal }), 1);
    await new Promise((r) => setTimeout(r, 200));
    await refuse(mine); // tenant A's alert: not the admin's
    await refuse(stranger);
    const [u] = await first;
    ac.abort();
    expect(u?.alert).toMatchObject({ type: 'UNKNOWN_DEVICE', deviceId: stranger.deviceId });
    const listed = await admin.listAlerts({ deviceId: stranger.deviceId });
    expect(listed.alerts.map((x) => x.type)).toContain('UNKNOWN_DEVICE');
    expect((await admin.listAlerts({ deviceId: mine.deviceId })).alerts).toEqual([]);
    // And the tenant's view holds its own alert but not the stranger's.
    await expect
      .poll(async () => (await a.client.listAlerts({ deviceId: mine.deviceId })).alerts.length)
      .toBeGreaterThan(0);
    expect((await a.client.listAlerts({ deviceId: stranger.deviceId })).alerts).toEqual([]);
  });

  it('watch alerts - a bad device filter is MALFORMED_INPUT', async () => {
    const it2 = a.client.watchAlerts({ deviceId: 'nope' })[Symbol.asyncIterator]();
    expect((await callError(it2.next())).code).toBe('MALFORMED_INPUT');
  });

  it('detection - a device flooding the service raises DEVICE_FLOODING to its tenant, once per window', async () => {
    const dev = await enrolled(a, 'flood');
    const { session } = await attestSession(env().devices, dev);
    const ac = new AbortController();
    const flood = take(
      a.client.watchAlerts({ onlyNew: true, type: 'DEVICE_FLOODING', signal: ac.signal }),
      1,
    );
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < FLOOD + 5; i++)
      await requestRaw(
        env().devices,
        'update-check',
        dev.deviceId,
        session.seal('update-check', checkBody(dev.deviceId)),
      );
    const [got] = await flood;
    ac.abort();
    expect(got?.alert).toMatchObject({ type: 'DEVICE_FLOODING', deviceId: dev.deviceId, severity: 'medium' });
    expect(got?.alert.id).toMatch(/^ta-[0-9a-f]{32}$/);
    expect(Number(got?.alert.evidence['requests'] ?? got?.alert.evidence['count'] ?? 0)).toBeGreaterThan(
      FLOOD,
    );
    // Suppressed within the window: more flooding raises no second alert.
    for (let i = 0; i < FLOOD; i++)
      await requestRaw(
        env().devices,
        'update-check',
        dev.deviceId,
        session.seal('update-check', checkBody(dev.deviceId)),
      );
    const stored = await a.client.listAlerts({ type: 'DEVICE_FLOODING', deviceId: dev.deviceId });
    expect(stored.alerts).toHaveLength(1);
    // The other tenant hears nothing of it.
    expect((await b.client.listAlerts({ type: 'DEVICE_FLOODING' })).alerts).toEqual([]);
  });

  describe('webhook', () => {
    let server: Server;
    const received: { headers: IncomingHttpHeaders; body: string }[] = [];
    let status = 200;
    beforeAll(async () => {
      server = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString('utf8')));
        req.on('end', () => {
          received.push({ headers: req.headers, body });
          res.statusCode = status;
          res.end();
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('webhook - each alert is POSTed signed with the secret SetAlertWebhook returned; failures are retried', async () => {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`;
      const { secret } = await b.client.setAlertWebhook(url);
      expect(secret).toMatch(/^[0-9a-f]{64}$/);
      status = 503; // the first try fails: the shard retries
      const dev = await enrolled(b, 'hook');
      await refuse(dev);
      await expect.poll(() => received.length, { timeout: 10_000 }).toBeGreaterThan(0);
      status = 200;
      await expect
        .poll(() => received.filter((r) => r.body.includes(dev.deviceId)).length, { timeout: 10_000 })
        .toBeGreaterThan(1);
      const hit = received.find((r) => r.body.includes(dev.deviceId));
      const header = String(hit?.headers[SIGNATURE_HEADER] ?? '');
      const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
      expect(m).not.toBeNull();
      const expected = createHmac('sha256', Buffer.from(secret, 'hex'))
        .update(`${m?.[1]}.${hit?.body}`)
        .digest('hex');
      expect(m?.[2]).toBe(expected);
      const body = JSON.parse(hit?.body ?? '{}') as { device_id: string; tenant_id: string; type: string };
      expect(body.device_id).toBe(dev.deviceId);
      expect(body.tenant_id).toBe(b.tenantId);
      // Tenant A's alerts never go to B's webhook.
      const other = await enrolled(a, 'hook-other');
      await refuse(other);
      await new Promise((r) => setTimeout(r, 500));
      expect(received.some((r) => r.body.includes(other.deviceId))).toBe(false);
      // Refusals: a URL that is not http(s); then deliveries stop with an empty URL.
      expect((await callError(b.client.setAlertWebhook('ftp://x/y'))).code).toBe('MALFORMED_INPUT');
      expect((await b.client.setAlertWebhook('')).secret).toBe('');
    });
  });

  it('error reports - QueryErrorReports counts by dimensions and ExportErrorReports gives the CSV, tenant-scoped', async () => {
    const devs = [await enrolled(a, 'errors'), await enrolled(a, 'errors')];
    const now = Date.now();
    const event = (i: number, kind: ErrorEventMsg['kind'], exitCode: number): ErrorEventMsg => ({
      kind,
      component: kind === 'os-crash' ? 'os' : 'blinky',
      version: kind === 'os-crash' ? '25.10' : '1.0.0',
      exitCode,
      atMs: now - 60_000 + i,
      detail: i === 0 ? '=HYPERLINK("http://evil")' : `event ${i}`,
    });
    for (const [n, dev] of devs.entries()) {
      const { session } = await attestSession(env().devices, dev);
      const events = [event(0, 'app-crash', 11), event(1, 'app-crash', 11), event(2, 'os-crash', 0)].slice(
        0,
        2 + n,
      );
      const body = encodeErrorReportUpload({
        deviceId: dev.deviceId,
        reportId: `er-${n}`,
        fromMs: events[0]?.atMs ?? now,
        toMs: events.at(-1)?.atMs ?? now,
        events,
        droppedEvents: n,
        deviceTimeMs: now,
      });
      const reply = decodeErrorReportReply(
        await requestRaw(env().devices, 'error-report', dev.deviceId, session.seal('error-report', body)),
      );
      expect(reply).toMatchObject({ ok: true, value: { ok: true } });
    }
    const byKind = await a.client.queryErrorReports(['kind', 'exit_code']);
    expect(byKind.rows.map((r) => [r.key, r.events, r.devices])).toEqual([
      [{ kind: 'app-crash', exit_code: '11' }, 4, 2],
      [{ kind: 'os-crash', exit_code: '0' }, 1, 1],
    ]);
    expect(byKind).toMatchObject({ totalReports: 2, totalEvents: 5, droppedEvents: 1, reportingDevices: 2 });
    const one = await a.client.queryErrorReports(['device'], { deviceId: devs[0]?.deviceId ?? '' });
    expect(one.rows).toHaveLength(1);
    expect((await callError(a.client.queryErrorReports(['colour']))).code).toBe('MALFORMED_INPUT');
    // Tenant B sees none of it.
    expect((await b.client.queryErrorReports([])).rows).toEqual([]);
    const csv = await a.client.exportErrorReports({ kind: 'app-crash' });
    const lines = csv.split('\r\n').filter((l) => l !== '');
    expect(lines[0]).toMatch(/^received_at,tenant,product,group,device,report_id,kind/);
    expect(lines).toHaveLength(1 + 4);
    // A spreadsheet formula from a device arrives defused.
    expect(csv).toContain(`"'=HYPERLINK(""http://evil"")"`);
    expect(await b.client.exportErrorReports()).toMatch(/^received_at,[^\r\n]*\r\n$/);
  });
});
