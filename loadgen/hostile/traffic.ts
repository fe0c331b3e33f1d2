/**
 * The shell of hostile traffic: enrolls and attests the attacker devices (genuine devices of the
 * run's tenant, so they hold real sessions to abuse), creates the intruder tenant, sends every
 * planned attempt at its simulated time over NATS or the operator API, records the answers,
 * and at the end reads the tenant's alerts back and judges (judge.ts).
 */
import { status } from '@grpc/grpc-js';
import type { DeviceSession } from '../../actors/device/index.js';
import { TransportError, createRng } from '../../actors/runtime/index.js';
import type { Clock, Rng, TimerHandle, Transport } from '../../actors/runtime/index.js';
import { appImage, attestOnce, manufactureIdentity, osImages } from '../../actors/security-core/index.js';
import type { ImageMeasurement, ManufacturedIdentity } from '../../actors/security-core/index.js';
import {
  BOOT_ID_BYTES,
  decodeAttestReply,
  decodeChallengeReply,
  decodeChunkReply,
  decodeErrorReportReply,
  decodeUpdateCheckReply,
  decodeUpdateReportReply,
  deviceSubject,
  partitionOf,
} from '../../proto/codec/index.js';
import type { DecodeResult, DeviceId, Reply } from '../../proto/codec/index.js';
import { OperatorCallError } from '../../services/operator-api/index.js';
import type { OperatorClient } from '../../services/operator-api/index.js';
import { OS_VERSIONS } from '../scenario/index.js';
import type { AttackProfile, AttacksConfig, DeviceRateLimit, Scenario } from '../scenario/index.js';
import type { HostileSummary } from '../report/index.js';
import { alertReaders, countTenantAlerts } from './alerts.js';
import { guessedKeySession, isSealedOp, madeUpSession, malformedMessage, requestBody } from './forge.js';
import type { MalformedVariant } from './forge.js';
import { PAST_THE_SESSION_CODES, alertDemand, judgeHostile } from './judge.js';
import type { AttemptOutcome, AttemptRecord } from './judge.js';
import { NO_DATA, planAttacks } from './plan.js';
import type { AttackOp, PlannedAttempt } from './plan.js';

/** What attacker devices boot (the fleet's first OS and its apps, so they attest like the fleet). */
export interface AttackerFirmware {
  readonly osVersion: string;
  readonly securityVersion: number;
  readonly images: readonly ImageMeasurement[];
}

/** The firmware of a scenario's healthy devices, for its attackers. */
export function attackerFirmware(scenario: Scenario): AttackerFirmware {
  const os = scenario.fleet.osMix.find((share) => share.count > 0) ?? scenario.fleet.osMix[0];
  const osVersion = os?.version ?? '25.10';
  return {
    osVersion,
    securityVersion: OS_VERSIONS[osVersion].securityVersion,
    images: [...osImages(osVersion), ...scenario.fleet.apps.map((app) => appImage(app))],
  };
}

/** Options of {@link prepareHostile}. */
export interface HostileOptions {
  readonly attacks: AttacksConfig;
  readonly seed: string;
  /** Prefix of what the attacks create (the intruder tenant, products). */
  readonly name: string;
  /** The attackers' NATS connection. */
  readonly transport: Transport;
  /** The service admin (endorses the attackers, creates the intruder tenant). */
  readonly admin: OperatorClient;
  /** Operator API address; alerts are read from each endpoint of an `ipv4:a,b` list. */
  readonly grpc: string;
  /** The run's tenant: its devices are the victims, the attackers are enrolled in it. */
  readonly tenant: { readonly tenantId: string; readonly apiToken: string };
  /** Devices of the tenant to impersonate and to reach for from the intruder tenant (at least 1). */
  readonly victims: readonly DeviceId[];
  readonly partitions: number;
  /** The service's simulated clock. */
  readonly clock: Clock;
  readonly firmware: AttackerFirmware;
  /** The service's per-device request budget (judges the flood). */
  readonly rateLimit: DeviceRateLimit;
  /** WALL ms an attempt waits for an answer. */
  readonly requestTimeoutMs: number;
  /** Simulated ms before its session expires at which an attacker attests again. */
  readonly renewBeforeMs: number;
  /** WALL ms to wait for refusals' alerts to show in ListAlerts (default 10 s). */
  readonly alertWaitMs?: number;
  readonly log?: (line: string) => void;
}

/** An attacker: a genuine device of the tenant, and the session it abuses. */
class Attacker {
  #session: DeviceSession | null = null;
  #pending: Promise<DeviceSession> | null = null;
  /** Requests sealed with the current session that the service answered (the replay's captures). */
  #captured: Uint8Array[] = [];
  readonly #bootId: Uint8Array;

  constructor(
    readonly identity: ManufacturedIdentity,
    private readonly opts: HostileOptions,
    bootSeed: string,
  ) {
    this.#bootId = createRng(bootSeed).bytes(BOOT_ID_BYTES);
  }

  get deviceId(): DeviceId {
    return this.identity.deviceId;
  }

  /** The current session; attests (once, whoever asks) when there is none or it ends soon. */
  session(): Promise<DeviceSession> {
    const s = this.#session;
    if (s !== null && s.expiresAtMs - this.opts.clock.now() > this.opts.renewBeforeMs)
      return Promise.resolve(s);
    this.#pending ??= attestOnce({
      transport: this.opts.transport,
      identity: this.identity,
      images: this.opts.firmware.images,
      osVersion: this.opts.firmware.osVersion,
      securityVersion: this.opts.firmware.securityVersion,
      partitions: this.opts.partitions,
      deviceTimeMs: this.opts.clock.now(),
      timeoutMs: this.opts.requestTimeoutMs,
      bootId: this.#bootId,
    }).then(
      (fresh) => {
        this.#session = fresh;
        this.#captured = [];
        this.#pending = null;
        return fresh;
      },
      (e: unknown) => {
        this.#pending = null;
        throw e;
      },
    );
    return this.#pending;
  }

  /** Keeps `sealed` (answered under `session`) for replays; the first one stays the oldest. */
  capture(session: DeviceSession, sealed: Uint8Array): void {
    if (session === this.#session) this.#captured.push(sealed);
  }

  /** The first captured request of `session`, if it is still current. */
  oldest(session: DeviceSession): Uint8Array | undefined {
    return session === this.#session ? this.#captured[0] : undefined;
  }
}

/** What the intruder tenant holds to reach for the victims. */
interface Intruder {
  readonly client: OperatorClient;
  /** One of the intruder's own device groups. */
  readonly groupId: string;
  /** An image the intruder uploaded. */
  readonly imageId: string;
  /** A group of the victim tenant. */
  readonly victimGroupId: string;
  /** An attestation key nobody endorsed (what the admin call would register). */
  readonly strayKey: Uint8Array;
}

/** Device profiles and how many attacker devices each needs. */
function attackersOf(config: AttacksConfig): [AttackProfile, number][] {
  return config.profiles
    .filter((p) => p.profile === 'impersonate' || p.profile === 'replay' || p.profile === 'flood')
    .map((p) => [p.profile, p.devices]);
}

/**
 * Enrolls the attackers in the run's tenant (endorsed and claimed, like any device of the
 * fleet), attests each once, creates the intruder tenant and plans every attempt. An attacker
 * that cannot attest, or an intruder that cannot be set up, is logged; its attempts are
 * recorded as not made (which fails its profile).
 */
export async function prepareHostile(opts: HostileOptions): Promise<HostileTraffic> {
  if (opts.victims.length === 0) throw new RangeError('hostile traffic needs at least one victim device');
  const log = opts.log ?? (() => undefined);
  const attackers = new Map<AttackProfile, Attacker[]>();
  for (const [profile, n] of attackersOf(opts.attacks)) {
    attackers.set(
      profile,
      Array.from({ length: n }, (_, i) => {
        const seed = `${opts.seed}/hostile/${profile}/device-${i}`;
        return new Attacker(manufactureIdentity(seed), opts, `${seed}/boot`);
      }),
    );
  }
  const all = [...attackers.values()].flat();
  const tenantClient = opts.admin.withToken(opts.tenant.apiToken);
  const setupErrors = new Map<AttackProfile, string>();
  if (all.length > 0) {
    await opts.admin.registerEndorsements(all.map((a) => a.identity.attestationPublicKey));
    const claim = await tenantClient.claimDevices(all.map((a) => a.deviceId));
    if (claim.rejected.length > 0) {
      throw new Error(
        `claiming the attacker devices failed: ${claim.rejected[0]?.code} ${claim.rejected[0]?.message}`,
      );
    }
    for (const [profile, list] of attackers) {
      const results = await Promise.allSettled(list.map((a) => a.session()));
      const failed = results.find((r) => r.status === 'rejected');
      if (failed !== undefined) {
        const reason = `an attacker device could not attest: ${String(failed.reason)}`;
        setupErrors.set(profile, reason);
        log(`hostile ${profile}: ${reason}`);
      }
    }
  }
  let intruder: Intruder | string | null = null;
  if (opts.attacks.profiles.some((p) => p.profile === 'tenantCrossing')) {
    try {
      intruder = await intruderTenant(opts, tenantClient);
    } catch (e) {
      intruder = `the intruder tenant could not be set up: ${e instanceof Error ? e.message : String(e)}`;
      log(`hostile tenantCrossing: ${intruder}`);
    }
  }
  const traffic = new HostileTraffic(opts, attackers, intruder, setupErrors);
  const planned = opts.attacks.profiles.map((p) => `${p.profile} ${p.attempts}`).join(', ');
  log(
    `hostile: ${all.length} attacker devices enrolled${intruder === null || typeof intruder === 'string' ? '' : ', an intruder tenant'}; attempts planned: ${planned}`,
  );
  return traffic;
}

async function intruderTenant(opts: HostileOptions, victim: OperatorClient): Promise<Intruder> {
  const created = await opts.admin.createTenant(`${opts.name}-intruder`);
  const client = opts.admin.withToken(created.apiToken);
  const own = await client.createProduct(`${opts.name}-intruder`);
  const groupId = own.deviceGroups[0]?.deviceGroupId;
  if (groupId === undefined) throw new Error('the intruder product has no device group');
  const image = await client.uploadImage({
    kind: 'app',
    name: 'intruder',
    version: '6.6.6',
    content: createRng(`${opts.seed}/hostile/intruder-image`).bytes(256),
  });
  const imageId = image.image?.imageId;
  if (imageId === undefined) throw new Error('the intruder image was not stored');
  // A group of the victim tenant to deploy into: its first product's, or a new product's.
  const products = await victim.listProducts();
  const first = products.products[0];
  const victimGroupId =
    first === undefined
      ? (await victim.createProduct(`${opts.name}-hostile-target`)).deviceGroups[0]?.deviceGroupId
      : (await victim.listDeviceGroups(first.productId)).deviceGroups[0]?.deviceGroupId;
  if (victimGroupId === undefined) throw new Error('the victim tenant has no device group');
  const strayKey = manufactureIdentity(`${opts.seed}/hostile/stray`).attestationPublicKey;
  return { client, groupId, imageId, victimGroupId, strayKey };
}

/** Decodes `op`'s reply, whatever its value type. */
function decodeReplyOf(op: AttackOp, raw: Uint8Array): DecodeResult<Reply<unknown>> {
  switch (op) {
    case 'challenge':
      return decodeChallengeReply(raw);
    case 'attest':
      return decodeAttestReply(raw);
    case 'update-check':
      return decodeUpdateCheckReply(raw);
    case 'update-chunk':
      return decodeChunkReply(raw);
    case 'update-report':
      return decodeUpdateReportReply(raw);
    case 'error-report':
      return decodeErrorReportReply(raw);
    default:
      return op satisfies never;
  }
}

/** gRPC statuses of calls that never reached the service's verdict (connection lost, timed out). */
const NO_VERDICT = new Set<number>([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.CANCELLED]);

/**
 * A run's hostile traffic, ready to send. `start` schedules every planned attempt on the clock;
 * `finish` waits for the attempts under way, reads the alerts and judges. Only valid until
 * `finish` or `stop`.
 */
export class HostileTraffic {
  /** Every attempt, in time order. */
  readonly plan: readonly PlannedAttempt[];
  readonly #opts: HostileOptions;
  readonly #attackers: ReadonlyMap<AttackProfile, readonly Attacker[]>;
  readonly #intruder: Intruder | string | null;
  readonly #setupErrors: ReadonlyMap<AttackProfile, string>;
  readonly #records: AttemptRecord[] = [];
  readonly #timers = new Set<TimerHandle>();
  readonly #inFlight = new Set<Promise<AttemptRecord>>();
  readonly #tenantDevices: ReadonlySet<string>;
  readonly #sinceMs: number;

  constructor(
    opts: HostileOptions,
    attackers: ReadonlyMap<AttackProfile, readonly Attacker[]>,
    intruder: Intruder | string | null,
    setupErrors: ReadonlyMap<AttackProfile, string>,
  ) {
    this.#opts = opts;
    this.#attackers = attackers;
    this.#intruder = intruder;
    this.#setupErrors = setupErrors;
    this.plan = planAttacks(opts.attacks, opts.seed, opts.victims.length);
    this.#tenantDevices = new Set<string>([
      ...opts.victims,
      ...[...attackers.values()].flat().map((a) => a.deviceId),
    ]);
    // Alerts are stamped with the service's clock; allow for the loadgen's reading of it.
    this.#sinceMs = opts.clock.now() - 600_000;
  }

  /** The attacker devices of `profile` (empty for profiles without devices). */
  attackerIds(profile: AttackProfile): DeviceId[] {
    return (this.#attackers.get(profile) ?? []).map((a) => a.deviceId);
  }

  /** Attempts made so far, with their outcomes, in the order they ended. */
  get records(): readonly AttemptRecord[] {
    return this.#records;
  }

  /** Schedules every attempt at `runStartSimMs + attempt.atMs` on the clock. */
  start(runStartSimMs: number): void {
    const { clock } = this.#opts;
    for (const attempt of this.plan) {
      const handle = clock.setTimeout(
        () => {
          this.#timers.delete(handle);
          const p = this.attempt(attempt);
          this.#inFlight.add(p);
          void p.finally(() => this.#inFlight.delete(p));
        },
        runStartSimMs + attempt.atMs - clock.now(),
      );
      this.#timers.add(handle);
    }
  }

  /** Makes one attempt now and records it. Never rejects: failures are outcomes. */
  async attempt(a: PlannedAttempt): Promise<AttemptRecord> {
    const sentAtMs = this.#opts.clock.now();
    let sender: string | null = null;
    let target: string | undefined;
    let outcome: AttemptOutcome;
    const setupError = this.#setupErrors.get(a.profile);
    try {
      if (setupError !== undefined) outcome = { kind: 'skipped', reason: setupError };
      else {
        const r = await this.#make(a);
        sender = r.sender;
        target = r.target;
        outcome = r.outcome;
      }
    } catch (e) {
      // An attacker's (re-)attestation that got no answer is an unanswered attempt, not a skipped one.
      outcome =
        e instanceof TransportError
          ? { kind: 'no-answer', reason: `attesting the attacker: ${e.code}: ${e.message}` }
          : { kind: 'skipped', reason: e instanceof Error ? e.message : String(e) };
    }
    const answeredAtMs = this.#opts.clock.now();
    const record: AttemptRecord = {
      attempt: a,
      outcome,
      sender,
      sentAtMs,
      answeredAtMs,
      ...(target !== undefined ? { target } : {}),
    };
    this.#records.push(record);
    return record;
  }

  /** Stops scheduling, waits for the attempts under way, reads the tenant's alerts and judges. */
  async finish(): Promise<HostileSummary> {
    this.stop();
    await Promise.allSettled([...this.#inFlight]);
    const readers = alertReaders(this.#opts.grpc, this.#opts.tenant.apiToken);
    try {
      const found = await countTenantAlerts(readers, alertDemand(this.#records), {
        sinceMs: this.#sinceMs,
        waitMs: this.#opts.alertWaitMs ?? 10_000,
        pollMs: 250,
      });
      return judgeHostile(this.#opts.attacks, this.#records, found, this.#opts.rateLimit);
    } finally {
      for (const r of readers) r.close();
    }
  }

  /** Cancels the attempts not started yet. */
  stop(): void {
    for (const h of this.#timers) this.#opts.clock.clearTimeout(h);
    this.#timers.clear();
  }

  #victim(a: PlannedAttempt): DeviceId {
    const v = this.#opts.victims[a.victim % this.#opts.victims.length];
    if (v === undefined) throw new Error('no victim device');
    return v;
  }

  #attacker(a: PlannedAttempt): Attacker {
    const list = this.#attackers.get(a.profile) ?? [];
    const attacker = list[a.attacker % Math.max(1, list.length)];
    if (attacker === undefined) throw new Error(`no attacker device for ${a.profile}`);
    return attacker;
  }

  async #make(
    a: PlannedAttempt,
  ): Promise<{ outcome: AttemptOutcome; sender: string | null; target?: string }> {
    const rng = createRng(a.seed);
    const now = this.#opts.clock.now();
    const tag = `${a.profile}-${a.seq}`;
    switch (a.profile) {
      case 'impersonate': {
        const op = a.op ?? 'update-check';
        if (!isSealedOp(op)) throw new Error(`impersonation on ${op}`);
        const victim = this.#victim(a);
        const body = requestBody(op, victim, now, tag);
        const attacker = this.#attacker(a);
        if (a.variant === 'foreign-session') {
          const own = await attacker.session();
          return { outcome: await this.#send(op, victim, own.seal(op, body)), sender: attacker.deviceId };
        }
        const forged =
          a.variant === 'wrong-key'
            ? guessedKeySession((await attacker.session()).sessionId, rng)
            : madeUpSession(rng);
        return { outcome: await this.#send(op, victim, forged.seal(op, body)), sender: null };
      }
      case 'replay': {
        const replayer = this.#attacker(a);
        const session = await replayer.session();
        const fresh = session.seal('update-check', requestBody('update-check', replayer.deviceId, now, tag));
        const first = await this.#send('update-check', replayer.deviceId, fresh);
        if (first.kind === 'no-answer') {
          return {
            outcome: { kind: 'no-answer', reason: `the request to replay: ${first.reason}` },
            sender: null,
          };
        }
        replayer.capture(session, fresh);
        const target = a.variant === 'stale' ? (replayer.oldest(session) ?? fresh) : fresh;
        return {
          outcome: await this.#send('update-check', replayer.deviceId, target),
          sender: replayer.deviceId,
        };
      }
      case 'flood': {
        const flooder = this.#attacker(a);
        const session = await flooder.session();
        const sealed = session.seal('update-check', requestBody('update-check', flooder.deviceId, now, tag));
        return {
          outcome: await this.#send('update-check', flooder.deviceId, sealed),
          sender: flooder.deviceId,
        };
      }
      case 'malformed': {
        const op = a.op ?? 'update-check';
        const victim = this.#victim(a);
        const bytes = malformedMessage(a.variant as MalformedVariant, op, victim, now, rng, tag);
        return { outcome: await this.#send(op, victim, bytes), sender: null };
      }
      case 'tenantCrossing': {
        const outcome = await this.#cross(a, rng);
        // Calls that name the victim device alert its tenant (TENANT_CROSSING).
        const named = a.variant === 'read' || a.variant === 'claim' || a.variant === 'assign';
        return { outcome, sender: null, ...(named ? { target: this.#victim(a) } : {}) };
      }
      default:
        return a.profile satisfies never;
    }
  }

  /** Sends `data` on `op`'s subject of `deviceId`'s partition and reads the verdict. */
  async #send(op: AttackOp, deviceId: DeviceId, data: Uint8Array): Promise<AttemptOutcome> {
    const subject = deviceSubject(op, partitionOf(deviceId, this.#opts.partitions));
    let raw: Uint8Array;
    try {
      raw = await this.#opts.transport.request(subject, data, { timeoutMs: this.#opts.requestTimeoutMs });
    } catch (e) {
      const reason = e instanceof TransportError ? `${e.code}: ${e.message}` : String(e);
      return { kind: 'no-answer', reason };
    }
    const reply = decodeReplyOf(op, raw);
    if (!reply.ok) return { kind: 'refused', code: 'UNDECODABLE_REPLY', message: reply.error.message };
    if (reply.value.ok) return { kind: 'accepted', detail: `${op} answered OK` };
    const { code, message } = reply.value.error;
    if (PAST_THE_SESSION_CODES.includes(code)) {
      return {
        kind: 'accepted',
        detail: `${op} passed the session check (the update service answered ${code})`,
      };
    }
    return { kind: 'refused', code, message };
  }

  /** One operator API call of the intruder tenant against the run's tenant. */
  async #cross(a: PlannedAttempt, rng: Rng): Promise<AttemptOutcome> {
    const intruder = this.#intruder;
    if (intruder === null || typeof intruder === 'string') throw new Error(intruder ?? 'no intruder tenant');
    const victim = this.#victim(a);
    const { client } = intruder;
    try {
      switch (a.variant) {
        case 'read': {
          const r = await client.getDevice(victim);
          return {
            kind: 'accepted',
            detail: `GetDevice returned ${r.device?.deviceId.slice(0, 16) ?? 'a device'}…`,
          };
        }
        case 'claim': {
          const r = await client.claimDevices([victim]);
          if (r.claimed + r.alreadyYours > 0)
            return { kind: 'accepted', detail: 'ClaimDevices claimed the device' };
          const first = r.rejected[0];
          return first === undefined
            ? { kind: 'accepted', detail: 'ClaimDevices answered without refusing the device' }
            : { kind: 'refused', code: first.code, message: first.message };
        }
        case 'assign': {
          const r = await client.assignDevices(intruder.groupId, [victim]);
          if (r.assigned > 0)
            return { kind: 'accepted', detail: "AssignDevices moved the device into the intruder's group" };
          const first = r.rejected[0];
          return first === undefined
            ? { kind: 'accepted', detail: 'AssignDevices answered without refusing the device' }
            : { kind: 'refused', code: first.code, message: first.message };
        }
        case 'deploy': {
          const r = await client.createDeployment({
            deviceGroupId: intruder.victimGroupId,
            imageId: intruder.imageId,
            waves: [{ size: { $case: 'share', value: 1 } }],
            // A valid rollout, so only the group (another tenant's) can be refused.
            errorCount: 1,
          });
          return {
            kind: 'accepted',
            detail: `CreateDeployment created ${r.rollout?.deploymentId ?? 'a deployment'} in the victim's group`,
          };
        }
        case 'alerts': {
          const named = await client.listAlerts({ deviceId: victim, limit: 1000 });
          const all = await client.listAlerts({ limit: 1000 });
          const leaked =
            named.alerts.length + all.alerts.filter((x) => this.#tenantDevices.has(x.deviceId)).length;
          return leaked > 0
            ? {
                kind: 'accepted',
                detail: `ListAlerts returned ${leaked} alerts about the victim tenant's devices`,
              }
            : { kind: 'refused', code: NO_DATA, message: "no alert about the other tenant's devices" };
        }
        case 'admin-call': {
          await client.registerEndorsements([intruder.strayKey]);
          return { kind: 'accepted', detail: 'RegisterEndorsements accepted a tenant token' };
        }
        case 'forged-token': {
          const forged = this.#opts.admin.withToken(`forged-${Buffer.from(rng.bytes(16)).toString('hex')}`);
          await forged.getDevice(victim);
          return { kind: 'accepted', detail: 'GetDevice answered a made-up token' };
        }
        default:
          throw new Error(`${a.variant} is not a tenant-crossing variant`);
      }
    } catch (e) {
      if (!(e instanceof OperatorCallError)) throw e;
      if (NO_VERDICT.has(e.grpcCode)) return { kind: 'no-answer', reason: `${e.code}: ${e.message}` };
      return { kind: 'refused', code: e.code, message: e.message };
    }
  }
}
