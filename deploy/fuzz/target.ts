/**
 * A running shard to fuzz over the wire, however it was started (the test fixtures' in-process
 * shard, or the campaign's nats-server + shard process): how to reach it, what it was seeded with
 * (a genuine enrolled device with an update on offer, a tenant to fuzz the operator API as), and
 * the checks that it still serves after the fuzzing.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { extendMeasurement, signP1363 } from '../../actors/crypto/index.js';
import type { Transport } from '../../actors/runtime/index.js';
import * as securityCore from '../../actors/security-core/index.js';
import {
  buildEvidence,
  manufactureIdentity,
  osImages,
  osRelease,
  appImage,
  recordBoot,
} from '../../actors/security-core/index.js';
import type { CoreBootState, ManufacturedIdentity } from '../../actors/security-core/index.js';
import {
  BOOT_ID_BYTES,
  DEVICE_LIMITS,
  UPDATE_REPORT_OUTCOMES,
  decodeAttestReply,
  decodeChallengeReply,
  decodeUpdateCheckReply,
  deviceSubject,
  encodeAttestRequest,
  encodeChallengeRequest,
  encodeChunkRequest,
  encodeEvidence,
  encodeHeartbeat,
  encodeUpdateCheckRequest,
  encodeUpdateReport,
  parseDeploymentId,
  partitionOf,
} from '../../proto/codec/index.js';
import type { CertificatesMsg, DeploymentId, DeviceId, DeviceOp } from '../../proto/codec/index.js';
import { SESSION_FRAMING } from './device-codec.js';
import { createOperatorClient } from '../../services/operator-api/index.js';
import type { OperatorClient } from '../../services/operator-api/index.js';

/** Wall-clock bound on one request: only there so a hung handler fails the run instead of hanging it. */
export const HANG_BOUND_MS = 15_000;

/** How to reach a running shard; everything but what {@link seedTarget} adds. */
export interface FuzzTargetBase {
  readonly natsUrl: string;
  /** A NATS connection that plays the devices. */
  readonly devices: Transport;
  readonly grpcAddress: string;
  readonly adminToken: string;
  readonly partitions: number;
  /** The shard's JetStream journal name, `null` when its state is in memory. */
  readonly journal: string | null;
  /** The shard's Prometheus exposition. */
  metricsText(): Promise<string>;
  /** False once the shard process has exited. */
  shardRunning(): boolean;
}

/** A device with a real identity and a measured boot (what a security core holds). */
export interface GenuineDevice {
  readonly identity: ManufacturedIdentity;
  readonly deviceId: DeviceId;
  readonly state: CoreBootState;
}

export interface FuzzSeeds {
  /** Enrolled in tenant A, attested once, in a group with a deployment. */
  readonly device: GenuineDevice;
  readonly tenantA: OperatorClient;
  /** Tenant A's product (the journal fuzzing adds device groups to it). */
  readonly productA: string;
  /** Tenant A's OS deployment to the device's group, or `null` when it could not be created. */
  readonly deploymentId: DeploymentId | null;
  /** Tenant B: the operator API is fuzzed with its token, so tenant A's state stays small. */
  readonly tenantBToken: string;
  /** IDs the services gave out (device, deployment, tenant B's product, group, image), as bytes. */
  readonly dictionary: readonly Uint8Array[];
}

export interface FuzzTarget extends FuzzTargetBase {
  readonly seeds: FuzzSeeds;
}

const text = new TextEncoder();

export function genuineDevice(seed: string, osVersion = '25.10'): GenuineDevice {
  const identity = manufactureIdentity(seed);
  const state = recordBoot(
    {
      deviceId: identity.deviceId,
      attestationPublicKey: identity.attestationPublicKey,
      clientPublicKey: identity.clientPublicKey,
      bootCount: 0,
    },
    [...osImages(osVersion), appImage({ name: 'blinky', version: '1.0.0' })],
    osVersion,
    osRelease(osVersion)?.securityVersion ?? 0,
    new Uint8Array(randomBytes(BOOT_ID_BYTES)),
    extendMeasurement,
  );
  return { identity, deviceId: identity.deviceId, state };
}

export function signedAttestRequest(dev: GenuineDevice, nonce: Uint8Array): Uint8Array {
  const evidence = buildEvidence(dev.state, nonce, Date.now());
  if (evidence === null) throw new Error('device has not booted');
  const bytes = encodeEvidence(evidence);
  return encodeAttestRequest({ evidence: bytes, signature: signP1363(dev.identity.attestationKey, bytes) });
}

async function request(t: FuzzTargetBase, op: DeviceOp, deviceId: DeviceId, data: Uint8Array) {
  return t.devices.request(deviceSubject(op, partitionOf(deviceId, t.partitions)), data, {
    timeoutMs: HANG_BOUND_MS,
  });
}

async function freshNonce(t: FuzzTargetBase, dev: GenuineDevice): Promise<Uint8Array> {
  const raw = await request(t, 'challenge', dev.deviceId, encodeChallengeRequest({ deviceId: dev.deviceId }));
  const r = decodeChallengeReply(raw);
  if (!r.ok) throw new Error(`undecodable ChallengeReply: ${r.error.message}`);
  if (!r.value.ok) throw new Error(`challenge refused: ${r.value.error.code} ${r.value.error.message}`);
  return r.value.value.nonce;
}

async function attest(
  t: FuzzTargetBase,
  dev: GenuineDevice,
): Promise<{ certificates: CertificatesMsg; nonce: Uint8Array }> {
  const nonce = await freshNonce(t, dev);
  const raw = await request(t, 'attest', dev.deviceId, signedAttestRequest(dev, nonce));
  const r = decodeAttestReply(raw);
  if (!r.ok) throw new Error(`undecodable AttestReply: ${r.error.message}`);
  if (!r.value.ok) throw new Error(`attestation refused: ${r.value.error.code} ${r.value.error.message}`);
  return { certificates: r.value.value, nonce };
}

/** A device's session after attestation: seals request bodies (ID, next counter, MAC). */
export interface FuzzSession {
  seal(op: DeviceOp, body: Uint8Array): Uint8Array;
}

type SessionOpener = (identity: ManufacturedIdentity) => (session: unknown, nonce: Uint8Array) => FuzzSession;

/** The security core's `sessionOpener`, when the protocol has sessions (looked up: it is new). */
const sessionOpener = new Map<string, unknown>(Object.entries(securityCore)).get('sessionOpener') as
  SessionOpener | undefined;

/**
 * Attests `dev` now and opens the session its attestation reply carries, as the device's security
 * core does; `null` when the protocol has no sessions. A later attestation replaces it.
 */
export async function openSession(t: FuzzTargetBase, dev: GenuineDevice): Promise<FuzzSession | null> {
  const { certificates, nonce } = await attest(t, dev);
  const session = (certificates as { session?: unknown }).session;
  if (SESSION_FRAMING === undefined || sessionOpener === undefined || session === undefined) return null;
  return sessionOpener(dev.identity)(session, nonce);
}

async function enroll(admin: OperatorClient, tenant: OperatorClient, dev: GenuineDevice): Promise<void> {
  await admin.registerEndorsements([dev.identity.attestationPublicKey]);
  const c = await tenant.claimDevices([dev.deviceId]);
  if (c.rejected.length > 0) throw new Error(`claim refused: ${JSON.stringify(c.rejected)}`);
}

const unique = (label: string): string =>
  `${label}/${process.pid}/${Date.now()}/${randomBytes(4).toString('hex')}`;

/** Whether the device is offered an update now (an update check, as the device would make). */
async function offered(t: FuzzTargetBase, dev: GenuineDevice, session: FuzzSession | null): Promise<boolean> {
  const body = encodeUpdateCheckRequest({
    deviceId: dev.deviceId,
    trustedRootVersion: 1,
    installed: [],
    deviceTimeMs: Date.now(),
  });
  const raw = await request(
    t,
    'update-check',
    dev.deviceId,
    session === null ? body : session.seal('update-check', body),
  );
  const r = decodeUpdateCheckReply(raw);
  return r.ok && r.value.ok && r.value.value.offers.length > 0;
}

/**
 * Seeds a shard for fuzzing: tenant A with a genuine device (endorsed, claimed, attested, in
 * Field Test) and an OS deployment to that group; tenant B with a product, group and image, whose
 * token the operator-API fuzzing uses.
 */
export async function seedTarget(base: FuzzTargetBase): Promise<FuzzTarget> {
  const admin = createOperatorClient(base.grpcAddress, base.adminToken);
  try {
    const a = await admin.createTenant('fuzz tenant A');
    // A client of its own: withToken() shares the admin client's channel, closed below.
    const tenantA = createOperatorClient(base.grpcAddress, a.apiToken);
    const device = genuineDevice(unique('fuzz-device'));
    await enroll(admin, tenantA, device);
    const session = await openSession(base, device);
    const product = await tenantA.createProduct('fuzz product A');
    const group = product.deviceGroups.find((g) => g.name === 'Field Test') ?? product.deviceGroups[0];
    let deploymentId: DeploymentId | null = null;
    if (group !== undefined) {
      await tenantA.assignDevices(group.deviceGroupId, [device.deviceId]);
      const image = await tenantA.uploadImage({
        kind: 'os',
        name: 'azure-sphere-os',
        version: '25.11',
        securityVersion: 6,
        content: Buffer.from(randomBytes(40_000)),
      });
      const created = await tenantA.createDeployment({
        deviceGroupId: group.deviceGroupId,
        imageId: image.image?.imageId ?? '',
        waves: [{ size: { $case: 'share', value: 1 } }],
        // Fuzzed reports must not halt it: the chunk fuzzing wants an open offer.
        successThreshold: 0,
        errorCount: 1_000_000_000,
      });
      deploymentId = parseDeploymentId(created.rollout?.deploymentId ?? '');
      // Setup only: the rollout opens its first wave on its own shortly after creation.
      for (let i = 0; i < 100 && deploymentId !== null && !(await offered(base, device, session)); i++)
        await new Promise((r) => setTimeout(r, 50));
    }
    const b = await admin.createTenant('fuzz tenant B');
    const tenantB = admin.withToken(b.apiToken);
    const productB = await tenantB.createProduct('fuzz product B');
    const imageB = await tenantB.uploadImage({
      kind: 'app',
      name: 'fuzz-app',
      version: '1.0.0',
      securityVersion: 1,
      content: Buffer.from('fuzz app image'),
    });
    tenantB.close();
    const ids = [
      device.deviceId,
      deploymentId ?? '',
      a.tenantId,
      b.tenantId,
      productB.product?.productId ?? '',
      ...productB.deviceGroups.map((g) => g.deviceGroupId),
      imageB.image?.imageId ?? '',
    ].filter((s) => s !== '');
    return {
      ...base,
      seeds: {
        device,
        tenantA,
        productA: product.product?.productId ?? '',
        deploymentId,
        tenantBToken: b.apiToken,
        dictionary: ids.map((s) => text.encode(s)),
      },
    };
  } finally {
    admin.close();
  }
}

/**
 * Requests (bodies, before any session framing) of the genuine device per op, varied where the
 * shard's answer depends on the values (chunk offsets and lengths, report outcomes): the bases
 * mutated-valid fuzzing starts from. The attest request is signed over a nonce fetched now.
 */
export async function genuineRequests(
  t: FuzzTarget,
): Promise<Partial<Record<string, fc.Arbitrary<Uint8Array>>>> {
  const { device, deploymentId } = t.seeds;
  const attestRequest = signedAttestRequest(device, await freshNonce(t, device));
  const deviceId = device.deviceId;
  const bootId = device.state.boot?.bootId ?? new Uint8Array(BOOT_ID_BYTES);
  const deployment = deploymentId ?? ('d-0000000000000000' as DeploymentId);
  const now = Date.now();
  return {
    challenge: fc.constant(encodeChallengeRequest({ deviceId })),
    attest: fc.constant(attestRequest),
    heartbeat: fc.constant(encodeHeartbeat({ deviceId, bootId, deviceTimeMs: now })),
    'update-check': fc
      .record({ trustedRootVersion: fc.nat({ max: 4 }), version: fc.constantFrom('25.04', '25.10', '25.11') })
      .map(({ trustedRootVersion, version }) =>
        encodeUpdateCheckRequest({
          deviceId,
          trustedRootVersion,
          installed: [{ kind: 'os', name: 'azure-sphere-os', version, securityVersion: 5 }],
          deviceTimeMs: now,
        }),
      ),
    'update-chunk': fc
      .record({
        offset: fc.oneof(fc.nat({ max: 50_000 }), fc.nat({ max: Number.MAX_SAFE_INTEGER })),
        length: fc.integer({ min: 1, max: DEVICE_LIMITS.maxChunk }),
      })
      .map(({ offset, length }) =>
        encodeChunkRequest({ deviceId, deploymentId: deployment, offset, length }),
      ),
    'update-report': fc
      .record({
        reportId: fc.string({ minLength: 1, maxLength: 12 }),
        outcome: fc.constantFrom(...UPDATE_REPORT_OUTCOMES),
        code: fc.constantFrom('', 'INSTALL_FAILED', 'TUF_BAD_SIGNATURE', 'HEALTH_CHECK_FAILED'),
      })
      .map((r) => encodeUpdateReport({ deviceId, deploymentId: deployment, ...r, deviceTimeMs: now })),
  };
}

/**
 * After fuzzing: the shard process still runs, a device enrolled now attests end to end, the
 * genuine device still gets challenges, and the operator API answers.
 */
export async function checkStillServes(t: FuzzTarget): Promise<void> {
  // OVERLOADED says "retry" and devices do: a record someone put into a partition's log fences
  // its owner once, and the partition is served again after the owner takes it back (until then
  // its subject may have no responder: 503).
  for (let attempt = 1; ; attempt++) {
    try {
      return await stillServes(t);
    } catch (e) {
      if (attempt >= 50 || !/OVERLOADED|: 503\b/.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function stillServes(t: FuzzTarget): Promise<void> {
  if (!t.shardRunning()) throw new Error('the shard process has exited');
  const admin = createOperatorClient(t.grpcAddress, t.adminToken);
  try {
    await admin.getServiceInfo();
    const fresh = genuineDevice(unique('fuzz-after'));
    await enroll(admin, t.seeds.tenantA, fresh);
    const session = await openSession(t, fresh);
    // A request after attestation (sealed with the session, when there are sessions) is served.
    const body = encodeUpdateCheckRequest({
      deviceId: fresh.deviceId,
      trustedRootVersion: 1,
      installed: [],
      deviceTimeMs: Date.now(),
    });
    const check = decodeUpdateCheckReply(
      await request(
        t,
        'update-check',
        fresh.deviceId,
        session === null ? body : session.seal('update-check', body),
      ),
    );
    if (!check.ok || !check.value.ok)
      throw new Error(
        `an update check after attestation failed: ${JSON.stringify(check.ok ? check.value : check.error)}`,
      );
    await freshNonce(t, t.seeds.device);
  } finally {
    admin.close();
  }
}

// ---- metrics --------------------------------------------------------------------------------

/** Per op, the counter the gateway counts every request in (by `result` and `reason`). */
export const OP_COUNTERS: Readonly<Record<string, string>> = {
  challenge: 'sphere_challenges_total',
  attest: 'sphere_attestations_total',
  heartbeat: 'sphere_heartbeats_total',
  'update-check': 'sphere_update_checks_total',
  'update-chunk': 'sphere_update_chunks_total',
  'update-report': 'sphere_update_reports_total',
  'error-report': 'sphere_error_report_uploads_total',
};

/** Samples of `name` in Prometheus text exposition, with their labels. */
export function samples(
  exposition: string,
  name: string,
): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of exposition.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] ?? ''] = (l[2] ?? '').replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of `name`'s samples whose labels include `match`. */
export function sampleSum(exposition: string, name: string, match: Record<string, string> = {}): number {
  return samples(exposition, name)
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}
