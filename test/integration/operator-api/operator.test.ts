/**
 * The operator gRPC API of a real shard over a real socket: authentication and authorisation,
 * tenant isolation, strict request decoding on every method (raw bytes through a generic
 * client), validation, paging, and the shard's /metrics exposition (promtool when available).
 * Devices attest over a real nats-server. Run `npx tsc -p tsconfig.json` first (crypto workers).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  AssignDevicesRequest,
  ClaimDevicesRequest,
  CreateDeviceGroupRequest,
  CreateProductRequest,
  CreateTenantRequest,
  ListDeviceGroupsRequest,
  UploadImageRequest,
  ControlDeploymentRequest,
  CreateDeploymentRequest,
  GetDeploymentRequest,
  GetDeviceRequest,
  ListAlertsRequest,
  OperatorServiceService,
  RegisterEndorsementsRequest,
  WatchRolloutRequest,
  WatchAlertsRequest,
  SetAlertWebhookRequest,
  QueryErrorReportsRequest,
  ExportErrorReportsRequest,
} from '../../../proto/gen/sphere/operator/v1/operator.js';
import { createOperatorClient } from '../../../services/operator-api/index.js';
import type { OperatorClient } from '../../../services/operator-api/index.js';
import {
  ADMIN_TOKEN,
  attestOk,
  attestRequestBytes,
  bootedDevice,
  createTestTenant,
  endorse,
  endorseAndClaim,
  parseLabels,
  sampleValue,
  sendAttest,
  uniqueSeed,
  useShard,
  callError,
} from '../../fixtures/shard.js';
import type { TestDevice, TestTenant } from '../../fixtures/shard.js';
import { ALERT_SEVERITY } from '../../../services/registry/index.js';
import type { RejectCode } from '../../../proto/codec/index.js';
import type { Alert } from '../../../proto/gen/sphere/operator/v1/operator.js';

type Method = keyof typeof OperatorServiceService;
const METHODS = Object.keys(OperatorServiceService) as Method[];

interface RawResult {
  readonly status: number;
  readonly errorCode: string | undefined;
  readonly details: string;
}

/** One unary call with raw request bytes (no client-side serialisation). */
function rawCall(client: grpc.Client, path: string, body: Buffer, token: string | null): Promise<RawResult> {
  const md = new grpc.Metadata();
  if (token !== null) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      md,
      (err: grpc.ServiceError | null) => {
        if (err === null) return resolve({ status: grpc.status.OK, errorCode: undefined, details: '' });
        const code = err.metadata?.get('sphere-error-code')[0];
        resolve({
          status: err.code,
          errorCode: typeof code === 'string' ? code : undefined,
          details: err.details,
        });
      },
    );
  });
}

// ---- a small Prometheus text-exposition parser ------------------------------------------------

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}
interface Family {
  readonly name: string;
  help?: string;
  type?: string;
  readonly samples: Sample[];
}

/** Parses exposition text; throws on a line that is neither a comment nor a valid sample. */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (f === undefined) families.set(name, (f = { name, samples: [] }));
    return f;
  };
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line);
    if (meta !== null) {
      const f = family(meta[2] ?? '');
      if (meta[1] === 'HELP') f.help = meta[3] ?? '';
      else f.type = meta[3] ?? '';
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    if (m === null) throw new Error(`line ${i + 1} is not a valid sample: ${line}`);
    const name = m[1] ?? '';
    const raw = m[3] ?? '';
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    if (Number.isNaN(value) && raw !== 'NaN') throw new Error(`line ${i + 1} has a bad value: ${line}`);
    const base = families.has(name) ? name : name.replace(/_(bucket|sum|count|created)$/, '');
    const f = families.get(base);
    if (f?.type === undefined) throw new Error(`line ${i + 1}: sample ${name} has no # TYPE before it`);
    f.samples.push({ name, labels: Object.fromEntries(parseLabels(m[2] ?? '')), value });
  }
  return families;
}

// -----------------------------------------------------------------------------------------------

describe('operator api', () => {
  const env = useShard({ shardId: 'shard-operator' });
  let raw: grpc.Client;
  const validKey = (): Uint8Array => bootedDevice(uniqueSeed('key')).identity.attestationPublicKey;
  const someDeviceId = (): string => bootedDevice(uniqueSeed('id')).deviceId;

  beforeAll(() => {
    raw = new grpc.Client(env().shard.grpcAddress, grpc.credentials.createInsecure());
  });
  afterAll(() => raw?.close());

  const tenant = (label: string): Promise<TestTenant> =>
    createTestTenant(env().admin, `${label} ${uniqueSeed('')}`);
  async function enrolledTo(t: TestTenant, label: string, n = 1): Promise<TestDevice[]> {
    const devs = Array.from({ length: n }, () => bootedDevice(uniqueSeed(label)));
    await endorseAndClaim(env().admin, t.client, devs);
    return devs;
  }
  const metrics = (): Promise<string> => env().shard.meter.metricsText();
  const grpcCount = (text: string, method: Method, code: string): number =>
    sampleValue(text, 'sphere_grpc_requests_total', { method, code });

  it('operator api - missing or invalid token is UNAUTHENTICATED on every authenticated method', async () => {
    const address = env().shard.grpcAddress;
    const clients: [string, OperatorClient][] = [
      ['no token', createOperatorClient(address, '')],
      ['invalid token', env().admin.withToken('not-a-token-of-this-service-0123456789')],
      ['admin token with a suffix', env().admin.withToken(`${ADMIN_TOKEN}x`)],
    ];
    const id = someDeviceId();
    const before = await metrics();
    for (const [what, c] of clients) {
      const calls: [Method, Promise<unknown>][] = [
        ['createTenant', c.createTenant('Eve')],
        ['registerEndorsements', c.registerEndorsements([validKey()])],
        ['claimDevices', c.claimDevices([id])],
        ['getDevice', c.getDevice(id)],
        ['listAlerts', c.listAlerts({})],
        ['getFleetStats', c.getFleetStats()],
      ];
      for (const [method, p] of calls) {
        const e = await callError(p);
        expect(e.code, `${what} ${method}`).toBe('UNAUTHENTICATED');
        expect(e.grpcCode, `${what} ${method}`).toBe(grpc.status.UNAUTHENTICATED);
      }
      // GetServiceInfo is public.
      expect((await c.getServiceInfo()).shardId).toBe('shard-operator');
    }
    clients[0]?.[1].close();
    const after = await metrics();
    for (const m of [
      'createTenant',
      'registerEndorsements',
      'claimDevices',
      'getDevice',
      'listAlerts',
      'getFleetStats',
    ] as const) {
      expect(grpcCount(after, m, 'UNAUTHENTICATED') - grpcCount(before, m, 'UNAUTHENTICATED')).toBe(3);
    }
    // Rejected calls had no effect: nothing was endorsed.
    expect(
      (
        await env().admin.registerEndorsements([
          bootedDevice(uniqueSeed('fresh')).identity.attestationPublicKey,
        ])
      ).registered,
    ).toBe(1);
  });

  it('operator api - a tenant token on admin calls is FORBIDDEN and has no effect', async () => {
    const t = await tenant('Forbidden');
    const key = validKey();
    for (const p of [t.client.createTenant('Mallory'), t.client.registerEndorsements([key])]) {
      const e = await callError(p);
      expect(e.code).toBe('FORBIDDEN');
      expect(e.grpcCode).toBe(grpc.status.PERMISSION_DENIED);
    }
    expect(await env().admin.registerEndorsements([key])).toMatchObject({ registered: 1, alreadyKnown: 0 });
  });

  it('operator api - the admin token on tenant calls is FORBIDDEN', async () => {
    const id = someDeviceId();
    for (const p of [
      env().admin.claimDevices([id]),
      env().admin.getDevice(id),
      env().admin.getFleetStats(),
    ]) {
      const e = await callError(p);
      expect(e.code).toBe('FORBIDDEN');
      expect(e.grpcCode).toBe(grpc.status.PERMISSION_DENIED);
    }
  });

  it('operator api - tenant isolation: claims are exclusive and irreversible, other tenants read NOT_FOUND, stats count own devices', async () => {
    const a = await tenant('Isolation A');
    const b = await tenant('Isolation B');
    const devsA = await enrolledTo(a, 'iso-a', 3);
    const devsB = await enrolledTo(b, 'iso-b', 2);
    const target = devsA[0];
    if (target === undefined) throw new Error('no device');

    const stolen = await b.client.claimDevices([target.deviceId]);
    expect(stolen.claimed).toBe(0);
    expect(stolen.alreadyYours).toBe(0);
    expect(stolen.rejected).toHaveLength(1);
    expect(stolen.rejected[0]).toMatchObject({ deviceId: target.deviceId, code: 'ALREADY_CLAIMED' });

    // Still A's: A re-claiming is a no-op, A reads it, B does not.
    expect(await a.client.claimDevices([target.deviceId])).toMatchObject({
      claimed: 0,
      alreadyYours: 1,
      rejected: [],
    });
    const mine = await a.client.getDevice(target.deviceId);
    expect(mine.device).toMatchObject({ deviceId: target.deviceId, state: 'CLAIMED' });

    const notYours = await callError(b.client.getDevice(target.deviceId));
    const nonexistent = await callError(b.client.getDevice(someDeviceId()));
    for (const e of [notYours, nonexistent]) {
      expect(e.code).toBe('NOT_FOUND');
      expect(e.grpcCode).toBe(grpc.status.NOT_FOUND);
    }
    expect(notYours.message).toBe(nonexistent.message); // indistinguishable

    const unendorsed = someDeviceId();
    const r = await b.client.claimDevices([unendorsed]);
    expect(r.rejected).toEqual([expect.objectContaining({ deviceId: unendorsed, code: 'UNKNOWN_DEVICE' })]);

    const statsA = await a.client.getFleetStats();
    const statsB = await b.client.getFleetStats();
    expect(statsA.claimed).toBe(devsA.length);
    expect(statsB.claimed).toBe(devsB.length);
    expect(statsA.devicesByState).toEqual({ CLAIMED: devsA.length });
    expect(statsB.devicesByState).toEqual({ CLAIMED: devsB.length });
  });

  it("operator api - a tenant never sees another tenant's alerts", async () => {
    const a = await tenant('Alerts A');
    const b = await tenant('Alerts B');
    const [dev] = await enrolledTo(a, 'alerts-a');
    const [devB] = await enrolledTo(b, 'alerts-b');
    if (dev === undefined || devB === undefined) throw new Error('no device');
    const r = await sendAttest(
      env().devices,
      dev.deviceId,
      attestRequestBytes(dev, Uint8Array.from(randomBytes(32))).bytes,
    );
    expect(r.ok ? 'OK' : r.error.code).toBe('NONCE_UNKNOWN');

    expect((await b.client.listAlerts({})).alerts).toEqual([]);
    expect((await b.client.listAlerts({ deviceId: dev.deviceId })).alerts).toEqual([]);
    expect((await b.client.listAlerts({ type: 'NONCE_UNKNOWN' })).alerts).toEqual([]);
    const statsA = await a.client.getFleetStats();
    const statsB = await b.client.getFleetStats();
    expect(statsA.alerts).toBe(1);
    expect(statsA.attestationsByResult).toEqual({ ok: 0, rejected: 1 });
    expect(statsB.alerts).toBe(0);
    expect(statsB.attestationsByResult).toEqual({ ok: 0, rejected: 0 });
  });

  // Regression, fixed (services/shard/host.ts, backend.listAlerts): ListAlerts returns `atMs: a.atMs` unrounded; alerts
  // carry the fractional simulated clock (partition-actor.ts alert(), device-gateway.ts refuse()) and the
  // ts-proto int64 writer throws ("cannot be converted to a BigInt"), so every non-empty page fails
  // with gRPC INTERNAL "Error serializing response".
  it('operator api - a tenant sees its own alerts', async () => {
    const a = await tenant('Own alerts');
    const [dev] = await enrolledTo(a, 'own-alerts');
    if (dev === undefined) throw new Error('no device');
    await sendAttest(
      env().devices,
      dev.deviceId,
      attestRequestBytes(dev, Uint8Array.from(randomBytes(32))).bytes,
    );
    const page = await a.client.listAlerts({});
    expect(page.alerts).toEqual([
      expect.objectContaining({ type: 'NONCE_UNKNOWN', severity: 'high', deviceId: dev.deviceId }),
    ]);
    expect(page.nextPageToken).toBe('');
  });

  it('operator api - fleet stats reflect an attested device', async () => {
    const t = await tenant('Stats');
    const [dev] = await enrolledTo(t, 'stats');
    if (dev === undefined) throw new Error('no device');
    await attestOk(env().devices, dev);
    const stats = await t.client.getFleetStats();
    expect(stats).toMatchObject({
      claimed: 1,
      devicesByState: { ATTESTED: 1 },
      devicesByOsVersion: { '25.10': 1 },
      attestationsByResult: { ok: 1, rejected: 0 },
      alerts: 0,
    });
  });

  // Regression, fixed (services/shard/host.ts, deviceView): `lastAttestation.atMs` is the fractional
  // simulated clock (set in partition-actor.ts finishAttest) and is not floored (unlike lastSeenMs and
  // certificatesNotAfterMs), so GetDevice of any device that ever attempted an attestation fails
  // with gRPC INTERNAL "Error serializing response".
  it('operator api - getDevice after attestation shows ATTESTED with certificates and the last attestation', async () => {
    const t = await tenant('GetDevice');
    const [dev] = await enrolledTo(t, 'get-device');
    if (dev === undefined) throw new Error('no device');
    const certs = await attestOk(env().devices, dev);
    const { device } = await t.client.getDevice(dev.deviceId);
    expect(device).toMatchObject({
      deviceId: dev.deviceId,
      state: 'ATTESTED',
      osVersion: '25.10',
      securityVersion: 5,
      bootCount: 1,
      attestationsOk: 1,
      attestationsFailed: 0,
      lastAttestation: { ok: true, code: 'OK' },
    });
    expect(device?.updateCertificatePem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expect(device?.clientCertificatePem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expect(new X509Certificate(device?.updateCertificatePem ?? '').raw.equals(certs.updateCertificate)).toBe(
      true,
    );
    expect(new X509Certificate(device?.clientCertificatePem ?? '').raw.equals(certs.clientCertificate)).toBe(
      true,
    );
    expect(device?.certificatesNotAfterMs).toBe(Math.floor(certs.notAfterMs));
  });

  describe('malformed requests', () => {
    let t: TestTenant;
    const tokenFor = (m: Method): string | null =>
      m === 'getServiceInfo'
        ? null
        : m === 'createTenant' || m === 'registerEndorsements'
          ? ADMIN_TOKEN
          : t.apiToken;
    const EMPTY_FILTER = {
      productId: '',
      deviceGroupId: '',
      deviceId: '',
      kind: '',
      component: '',
      version: '',
      sinceMs: 0,
      untilMs: 0,
    };
    /** A valid encoding per method; empty requests have none, so a truncated unknown field stands in. */
    const valid = (m: Method): Buffer => {
      const id = someDeviceId();
      switch (m) {
        case 'createTenant':
          return Buffer.from(CreateTenantRequest.encode({ name: 'Acme' }).finish());
        case 'registerEndorsements':
          return Buffer.from(
            RegisterEndorsementsRequest.encode({ attestationPublicKeys: [validKey()] }).finish(),
          );
        case 'claimDevices':
          return Buffer.from(ClaimDevicesRequest.encode({ deviceIds: [id] }).finish());
        case 'getDevice':
          return Buffer.from(GetDeviceRequest.encode({ deviceId: id }).finish());
        case 'listAlerts':
          return Buffer.from(
            ListAlertsRequest.encode({
              sinceMs: 1,
              limit: 10,
              pageToken: '',
              deviceId: id,
              type: 'BAD_SIGNATURE',
            }).finish(),
          );
        case 'createProduct':
          return Buffer.from(CreateProductRequest.encode({ name: 'Kettle', description: 'MT3620' }).finish());
        case 'createDeviceGroup':
          return Buffer.from(
            CreateDeviceGroupRequest.encode({
              productId: 'p-0123456789abcdef',
              name: 'Canary',
              osFeed: 'RETAIL',
              updatePolicy: 'ACCEPT_ALL',
            }).finish(),
          );
        case 'listDeviceGroups':
          return Buffer.from(ListDeviceGroupsRequest.encode({ productId: 'p-0123456789abcdef' }).finish());
        case 'assignDevices':
          return Buffer.from(
            AssignDevicesRequest.encode({ deviceGroupId: 'g-0123456789abcdef', deviceIds: [id] }).finish(),
          );
        case 'uploadImage':
          return Buffer.from(
            UploadImageRequest.encode({
              kind: 'app',
              name: 'blinky',
              version: '1.0.0',
              securityVersion: 0,
              content: Buffer.from('img'),
            }).finish(),
          );
        case 'createDeployment':
          return Buffer.from(
            CreateDeploymentRequest.encode({
              deviceGroupId: 'g-0123456789abcdef',
              imageId: 'i-0123456789abcdef',
              waves: [{ size: { $case: 'share', value: 1 } }],
              successThreshold: 1,
              errorCount: 1,
              errorShare: 0,
              autoRollback: false,
              pauseBetweenWavesMs: 0,
            }).finish(),
          );
        case 'getDeployment':
          return Buffer.from(
            GetDeploymentRequest.encode({
              deploymentId: 'd-0123456789abcdef',
              includeDevices: true,
            }).finish(),
          );
        case 'controlDeployment':
          return Buffer.from(
            ControlDeploymentRequest.encode({ deploymentId: 'd-0123456789abcdef', action: 'pause' }).finish(),
          );
        case 'watchRollout':
          // Server-streaming: a refusal is the stream's status, which a unary call reads the same way.
          return Buffer.from(
            WatchRolloutRequest.encode({ deploymentId: 'd-0123456789abcdef', minIntervalMs: 100 }).finish(),
          );
        case 'watchAlerts':
          return Buffer.from(
            WatchAlertsRequest.encode({ afterSeq: 0, onlyNew: true, type: 'BAD_MAC', deviceId: id }).finish(),
          );
        case 'setAlertWebhook':
          return Buffer.from(SetAlertWebhookRequest.encode({ url: 'http://127.0.0.1:9/hook' }).finish());
        case 'queryErrorReports':
          return Buffer.from(
            QueryErrorReportsRequest.encode({
              filter: { ...EMPTY_FILTER, kind: 'app-crash', deviceId: id },
              groupBy: ['kind', 'version'],
              limit: 10,
            }).finish(),
          );
        case 'exportErrorReports':
          return Buffer.from(
            ExportErrorReportsRequest.encode({
              filter: { ...EMPTY_FILTER, kind: 'os-crash', sinceMs: 1 },
            }).finish(),
          );
        case 'getFleetStats':
        case 'getServiceInfo':
        case 'listProducts':
        case 'listImages':
          return Buffer.alloc(0);
      }
    };
    const truncated = (m: Method): Buffer => {
      const v = valid(m);
      return v.length > 0 ? v.subarray(0, v.length - 3) : Buffer.from([0x0a, 0x05, 0x61]);
    };

    beforeAll(async () => {
      t = await tenant('Malformed');
    });

    it('operator api - garbage, truncated and unknown-field requests on every method are INVALID_ARGUMENT / MALFORMED_INPUT', async () => {
      const before = await metrics();
      for (const m of METHODS) {
        const path = OperatorServiceService[m].path;
        const bodies: [string, Buffer][] = [
          ['garbage', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
          ['truncated', truncated(m)],
          ['unknown field', Buffer.concat([valid(m), Buffer.from([0xf8, 0x07, 0x01])])],
          // Field 1 with the wrong wire type (listAlerts' field 1 is an int64, the others' a string/bytes).
          [
            'mistyped field',
            Buffer.from(m === 'listAlerts' || m === 'watchAlerts' ? [0x0a, 0x01, 0x61] : [0x08, 0x01]),
          ],
        ];
        if (m === 'getFleetStats' || m === 'getServiceInfo') bodies.pop(); // no field 1 to mistype
        for (const [what, body] of bodies) {
          const r = await rawCall(raw, path, body, tokenFor(m));
          expect(r, `${m} ${what}`).toMatchObject({
            status: grpc.status.INVALID_ARGUMENT,
            errorCode: 'MALFORMED_INPUT',
          });
          expect(r.details.length, `${m} ${what}`).toBeGreaterThan(0);
        }
      }
      const after = await metrics();
      for (const m of METHODS) {
        const n = m === 'getFleetStats' || m === 'getServiceInfo' ? 2 : 3;
        expect(grpcCount(after, m, 'MALFORMED_INPUT') - grpcCount(before, m, 'MALFORMED_INPUT'), m).toBe(
          n + 1,
        );
      }
      // Control: the valid encodings are accepted by the same raw path.
      expect(
        (await rawCall(raw, OperatorServiceService.getServiceInfo.path, valid('getServiceInfo'), null))
          .status,
      ).toBe(grpc.status.OK);
      expect(
        (await rawCall(raw, OperatorServiceService.getFleetStats.path, valid('getFleetStats'), t.apiToken))
          .status,
      ).toBe(grpc.status.OK);
    });

    it('operator api - requests over 4 MiB on every method are RESOURCE_EXHAUSTED / PAYLOAD_TOO_LARGE', async () => {
      const before = await metrics();
      const big = Buffer.alloc(4 * 1024 * 1024 + 64, 0x41);
      for (const m of METHODS) {
        const r = await rawCall(raw, OperatorServiceService[m].path, big, tokenFor(m));
        expect(r, m).toMatchObject({
          status: grpc.status.RESOURCE_EXHAUSTED,
          errorCode: 'PAYLOAD_TOO_LARGE',
        });
      }
      const after = await metrics();
      for (const m of METHODS) {
        expect(grpcCount(after, m, 'PAYLOAD_TOO_LARGE') - grpcCount(before, m, 'PAYLOAD_TOO_LARGE'), m).toBe(
          1,
        );
      }
    });

    it('operator api - invalid field values are MALFORMED_INPUT with a message naming the field, and counted', async () => {
      const notOnCurve = new Uint8Array(65).fill(0x01);
      notOnCurve[0] = 0x04;
      const compressed = Uint8Array.from(validKey());
      compressed[0] = 0x02;
      const cases: [Method, string, () => Promise<unknown>][] = [
        ['getDevice', 'device_id', () => t.client.getDevice('abc')],
        ['getDevice', 'device_id', () => t.client.getDevice(someDeviceId().toUpperCase())],
        ['claimDevices', 'device_ids[1]', () => t.client.claimDevices([someDeviceId(), 'x'.repeat(128)])],
        ['claimDevices', 'device IDs', () => t.client.claimDevices([])],
        ['listAlerts', 'limit', () => t.client.listAlerts({ limit: 5000 })],
        ['listAlerts', 'page_token', () => t.client.listAlerts({ pageToken: '!!!' })],
        ['listAlerts', 'page_token', () => t.client.listAlerts({ pageToken: 'z'.repeat(13) })],
        ['listAlerts', 'device_id', () => t.client.listAlerts({ deviceId: 'nope' })],
        ['createTenant', 'name', () => env().admin.createTenant('')],
        ['createTenant', 'name', () => env().admin.createTenant('   ')],
        ['createTenant', 'name', () => env().admin.createTenant('n'.repeat(129))],
        [
          'registerEndorsements',
          'attestation_public_keys[0]',
          () => env().admin.registerEndorsements([new Uint8Array(66).fill(4)]),
        ],
        [
          'registerEndorsements',
          'attestation_public_keys[1]',
          () => env().admin.registerEndorsements([validKey(), compressed]),
        ],
        [
          'registerEndorsements',
          'attestation_public_keys[0]',
          () => env().admin.registerEndorsements([notOnCurve]),
        ],
        ['registerEndorsements', 'keys', () => env().admin.registerEndorsements([])],
      ];
      const before = await metrics();
      const expected: Partial<Record<Method, number>> = {};
      for (const [method, field, call] of cases) {
        const e = await callError(call());
        expect(e.code, `${method} ${field}`).toBe('MALFORMED_INPUT');
        expect(e.grpcCode).toBe(grpc.status.INVALID_ARGUMENT);
        expect(e.message, `${method}`).toContain(field);
        expected[method] = (expected[method] ?? 0) + 1;
      }
      const after = await metrics();
      for (const [method, n] of Object.entries(expected) as [Method, number][]) {
        expect(
          grpcCount(after, method, 'MALFORMED_INPUT') - grpcCount(before, method, 'MALFORMED_INPUT'),
          method,
        ).toBe(n);
      }
      // A rejected batch endorses nothing, not even its valid keys.
      const key = validKey();
      const e = await callError(env().admin.registerEndorsements([key, notOnCurve]));
      expect(e.message).toContain('attestation_public_keys[1]');
      expect(await env().admin.registerEndorsements([key])).toMatchObject({ registered: 1, alreadyKnown: 0 });
    });

    it('operator api - the server keeps serving after hostile requests', async () => {
      const anonymous = createOperatorClient(env().shard.grpcAddress, '');
      const info = await anonymous.getServiceInfo().finally(() => anonymous.close());
      expect(info).toMatchObject({ shardId: 'shard-operator', partitions: 64 });
      expect((await t.client.getFleetStats()).claimed).toBe(0);
      const [dev] = await enrolledTo(t, 'after-hostile');
      if (dev === undefined) throw new Error('no device');
      await attestOk(env().devices, dev);
    });
  });

  // Regression, same as above (host.ts backend.listAlerts): any page holding an alert fails to serialise.
  it('operator api - listAlerts paging returns every alert exactly once', async () => {
    const t = await tenant('Paging');
    // One refusal per device: refusals of one device within a second fold into one alert.
    const N = 7;
    const devs = await enrolledTo(t, 'paging', N);
    for (let i = 0; i < N; i++) {
      const d = devs[i % devs.length];
      if (d === undefined) throw new Error('no device');
      const r = await sendAttest(
        env().devices,
        d.deviceId,
        attestRequestBytes(d, Uint8Array.from(randomBytes(32))).bytes,
      );
      expect(r.ok).toBe(false);
    }
    const collect = async (q: { deviceId?: string }, limit: number) => {
      const ids: string[] = [];
      let pageToken = '';
      let pages = 0;
      do {
        const page = await t.client.listAlerts({ ...q, limit, pageToken });
        expect(page.alerts.length).toBeLessThanOrEqual(limit);
        ids.push(...page.alerts.map((a) => a.id));
        pageToken = page.nextPageToken;
        if (pageToken !== '') expect(page.alerts).toHaveLength(limit);
        expect(++pages).toBeLessThan(50);
      } while (pageToken !== '');
      return { ids, pages };
    };
    // Alerts are stored through the journal: wait until every shard-side append is applied.
    await expect.poll(async () => (await t.client.listAlerts({ limit: 100 })).alerts.length).toBe(N);
    const all = await collect({}, 3);
    expect(all.ids).toHaveLength(N);
    expect(new Set(all.ids).size).toBe(N);
    expect(all.pages).toBe(3);
    const exact = await collect({}, 7);
    expect(exact.ids).toEqual(all.ids);
    const one = devs[0];
    if (one === undefined) throw new Error('no device');
    const filtered = await collect({ deviceId: one.deviceId }, 2);
    expect(filtered.ids).toHaveLength(1);
    expect(filtered.ids.every((id) => all.ids.includes(id))).toBe(true);
  });

  it('operator api - a burst of refusals from one device is counted each but stored as one alert a second', async () => {
    const t = await tenant('Burst');
    const [d] = await enrolledTo(t, 'burst', 1);
    if (d === undefined) throw new Error('no device');
    const refuse = async (): Promise<string> => {
      const r = await sendAttest(env().devices, d.deviceId, attestRequestBytes(d, randomBytes(32)).bytes);
      if (r.ok) throw new Error('a made-up nonce was accepted');
      return r.error.code;
    };
    const code = await refuse();
    const severity = ALERT_SEVERITY[code as RejectCode];
    const before = await metrics();
    const N = 6;
    for (let i = 0; i < N; i++) expect(await refuse()).toBe(code);
    const after = await metrics();
    const delta = (name: string, labels: Record<string, string>): number =>
      sampleValue(after, name, labels) - sampleValue(before, name, labels);
    expect(delta('sphere_alerts_total', { type: code, severity })).toBe(N);
    expect(delta('sphere_alerts_folded_total', { type: code })).toBeGreaterThan(0);
    const stored = async (): Promise<Alert[]> =>
      (await t.client.listAlerts({ deviceId: d.deviceId, limit: 100 })).alerts;
    await expect.poll(async () => (await stored()).length).toBeGreaterThan(0);
    expect((await stored()).length).toBeLessThan(N + 1);
    // A second later the next refusal is stored again and says how many were folded before it.
    await new Promise((r) => setTimeout(r, 1100));
    await refuse();
    await expect.poll(async () => (await stored()).at(-1)?.evidence).toHaveProperty('folded_since_last');
  });

  describe('metrics exposition', () => {
    let text: string;
    let families: Map<string, Family>;

    beforeAll(async () => {
      // Something to measure: an attested device, a rejection, an operator call.
      const t = await tenant('Metrics');
      const [dev] = await enrolledTo(t, 'metrics');
      if (dev === undefined) throw new Error('no device');
      await attestOk(env().devices, dev);
      const stranger = bootedDevice(uniqueSeed('metrics-stranger'));
      await endorse(env().admin, [stranger]);
      const url = env().shard.metricsUrl;
      if (url === null) throw new Error('the shard serves no /metrics');
      // sphere_devices is refreshed by the shard every 2 s; wait for it to report the device.
      await vi.waitFor(
        async () => {
          const res = await fetch(url);
          expect(res.status).toBe(200);
          expect(res.headers.get('content-type') ?? '').toMatch(/^text\/plain/);
          text = await res.text();
          expect(sampleValue(text, 'sphere_devices', { state: 'ATTESTED' })).toBeGreaterThanOrEqual(1);
        },
        { timeout: 15_000, interval: 250 },
      );
      families = parseExposition(text);
    });

    const REQUIRED: [string, string][] = [
      ['sphere_attestations_total', 'counter'],
      ['sphere_attestation_duration_seconds', 'histogram'],
      ['sphere_certificates_issued_total', 'counter'],
      ['sphere_devices', 'gauge'],
      ['sphere_alerts_total', 'counter'],
      ['sphere_crypto_pool_queue_depth', 'gauge'],
      ['sphere_crypto_pool_utilization', 'gauge'],
      ['sphere_request_duration_seconds', 'histogram'],
      ['sphere_grpc_requests_total', 'counter'],
      ['sphere_shard_partitions_owned', 'gauge'],
    ];

    it('operator api - /metrics exposes every required family with HELP, TYPE and samples', () => {
      for (const [name, type] of REQUIRED) {
        const f = families.get(name);
        expect(f, name).toBeDefined();
        expect(f?.type, name).toBe(type);
        expect(f?.help?.length ?? 0, `${name} HELP`).toBeGreaterThan(0);
        expect(f?.samples.length ?? 0, `${name} samples`).toBeGreaterThan(0);
      }
      expect(sampleValue(text, 'sphere_shard_partitions_owned', { shard: 'shard-operator' })).toBe(64);
      expect(
        sampleValue(text, 'sphere_attestations_total', { result: 'ok', reason: 'OK' }),
      ).toBeGreaterThanOrEqual(1);
      expect(sampleValue(text, 'sphere_devices', { state: 'UNCLAIMED' })).toBeGreaterThanOrEqual(1);
      const utilization = families.get('sphere_crypto_pool_utilization')?.samples[0]?.value ?? -1;
      expect(utilization).toBeGreaterThanOrEqual(0);
      expect(utilization).toBeLessThanOrEqual(1);
    });

    it('operator api - /metrics histograms have cumulative buckets ending at +Inf equal to _count, and _sum', () => {
      for (const name of ['sphere_attestation_duration_seconds', 'sphere_request_duration_seconds']) {
        const f = families.get(name);
        const samples = f?.samples ?? [];
        const key = (l: Record<string, string>) =>
          JSON.stringify(
            Object.entries(l)
              .filter(([k]) => k !== 'le')
              .sort(([x], [y]) => x.localeCompare(y)),
          );
        const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
        for (const s of samples) {
          const k = key(s.labels);
          let e = series.get(k);
          if (e === undefined) series.set(k, (e = { buckets: [] }));
          if (s.name === `${name}_bucket`) {
            const le = s.labels['le'] === '+Inf' ? Infinity : Number(s.labels['le']);
            e.buckets.push([le, s.value]);
          } else if (s.name === `${name}_sum`) e.sum = s.value;
          else if (s.name === `${name}_count`) e.count = s.value;
          else throw new Error(`unexpected sample ${s.name} in histogram ${name}`);
        }
        expect(series.size, name).toBeGreaterThan(0);
        for (const [k, e] of series) {
          expect(e.sum, `${name} ${k} _sum`).toBeTypeOf('number');
          expect(e.count, `${name} ${k} _count`).toBeTypeOf('number');
          const sorted = [...e.buckets].sort((x, y) => x[0] - y[0]);
          expect(sorted.at(-1)?.[0], `${name} ${k} +Inf bucket`).toBe(Infinity);
          expect(sorted.at(-1)?.[1]).toBe(e.count);
          for (let i = 1; i < sorted.length; i++) {
            expect(sorted[i]?.[1] ?? 0).toBeGreaterThanOrEqual(sorted[i - 1]?.[1] ?? 0);
          }
        }
      }
    });

    const promtool = spawnSync('promtool', ['--version']).status === 0;

    (promtool ? it : it.skip)(
      'operator api - promtool reports no problem in any sphere_ metric family',
      () => {
        const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
        // Exit 1 would be a parse failure; 0 clean; 3 lint findings (checked by name below).
        expect([0, 3]).toContain(r.status);
        const findings = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
        expect(findings.filter((l) => l.includes('sphere_'))).toEqual([]);
      },
    );

    // LINT FAILURE to fix in source (services/shard/host.ts startShard, `createPromMeter({ defaultMetrics:
    // true })`): prom-client's default metrics include gauges named *_total, and promtool 2.42
    // exits 3 with:
    //   nodejs_active_handles_total non-counter metrics should not have "_total" suffix
    //   nodejs_active_requests_total non-counter metrics should not have "_total" suffix
    //   nodejs_active_resources_total non-counter metrics should not have "_total" suffix
    //
    (promtool ? it : it.skip)('operator api - promtool check metrics passes on the shard exposition', () => {
      execFileSync('promtool', ['check', 'metrics'], { input: text, stdio: ['pipe', 'pipe', 'pipe'] });
    });
  });
});
