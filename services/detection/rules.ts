/**
 * The detection rules. Each keeps its own bounded state and turns events into findings; the
 * detector suppresses repeats and turns the rest into alerts. A rule sees only events with a
 * device id and a finite time.
 *
 * 1. CLONED_IDENTITY (per device). The service refused the device with `DUPLICATE_IDENTITY`
 *    (attestation or any other request), or two accepted attestations of the device within
 *    `cloneWindowMs` show different boot IDs while the boot count does not advance (the later
 *    one, by event time, has a count <= the earlier one). A security core's boot counter only
 *    grows and every boot draws a fresh boot ID, so only a second holder of the key does this.
 *    Only accepted attestations are compared: a rejected one may be a replay of an older boot.
 * 2. REPLAYED_REQUEST (per device). Rejections (or attestations rejected) with `NONCE_REUSED`,
 *    `REPLAYED` or a code of `replayCodes`; at least `replayMinEvents` within `replayWindowMs`.
 * 3. MEASUREMENT_DRIFT (fleet, per tenant, OS version, stage and digest). At least
 *    `driftMinDevices` distinct devices present the same unknown digest for a stage within
 *    `driftWindowMs`. Only evidence whose signature verified counts (accepted attestations, or
 *    rejections in {@link SIGNED_EVIDENCE_CODES}), so forged evidence cannot raise it.
 * 4. CRASH_BURST_AFTER_UPDATE (fleet, per tenant and deployment). Among devices that reported
 *    `succeeded` for the deployment, crashes of the updated component (`app-crash` with a
 *    non-zero exit code, or `os-crash` when the component is `os`) with the installed version
 *    (or an unknown one) later than the install and at most `crashWindowMs` after it; alert when
 *    at least `crashMinDevices` updated devices crashed and crashes / updated devices >=
 *    `crashRatePerDevice`. A crash counts once (per device, crash times must increase), so a
 *    report delivered twice counts once. Error reports may arrive up to `crashReportLagMs` late.
 * 5. DEVICE_FLOODING (per device). More than `floodMaxRequests` requests within `floodWindowMs`
 *    (counted in buckets, see {@link WindowCount}: never more than the exact window holds).
 *
 * Cost per event is O(1) amortised (drift: O(driftMinDevices); an error report: O(its events)).
 * Memory: every table is a {@link BoundedMap}, capped at `maxTrackedDevices` or `maxFleetKeys`.
 */
import { BoundedMap, WindowCount } from './bounded.js';
import { longestWindowMs } from './config.js';
import type { DetectionConfig } from './config.js';
import { SIGNED_EVIDENCE_CODES } from './events.js';
import type {
  AttestationEvent,
  DetectionAlertType,
  ErrorReportEvent,
  RejectionEvent,
  SecurityEvent,
  UpdateResultEvent,
} from './events.js';

/** What a rule concluded from one event, before suppression makes it an alert (or not). */
export interface Finding {
  /** What the finding is about within its type (a device, a digest, a deployment): JSON of its parts. */
  readonly key: string;
  readonly tenantId: string | null;
  readonly deviceId: string;
  readonly atMs: number;
  readonly message: string;
  readonly evidence: Readonly<Record<string, string>>;
}

/** One rule with its own bounded state. */
export interface Rule {
  readonly type: DetectionAlertType;
  /** Findings `e` completes (usually none). `e` has a device id and a finite time. */
  observe(e: SecurityEvent): Finding[];
  /** Drops state that can no longer contribute to a finding at or after `nowMs`. */
  prune(nowMs: number): void;
  /** Devices with state: at most `maxTrackedDevices`. */
  readonly devices: number;
  /** Fleet-level keys with state: at most `maxFleetKeys`. */
  readonly fleetKeys: number;
  /** Entries evicted to stay within the caps, ever. */
  readonly evicted: number;
}

const DUPLICATE_IDENTITY = 'DUPLICATE_IDENTITY';
const BUILTIN_REPLAY_CODES = ['NONCE_REUSED', 'REPLAYED'] as const;
const OS_COMPONENT = 'os';
/** A device is followed after this many recent installs (older ones of other components drop). */
const MAX_INSTALLS_PER_DEVICE = 4;
/** Device ids listed in a drift alert's evidence. */
const DRIFT_EXAMPLES = 3;
/** Detail entries copied from a rejection into evidence, and their longest value. */
const MAX_DETAIL_ENTRIES = 8;
const MAX_EVIDENCE_VALUE = 200;

const keyOf = (...parts: ReadonlyArray<string | null>): string => JSON.stringify(parts);

const clip = (s: string): string =>
  s.length > MAX_EVIDENCE_VALUE ? `${s.slice(0, MAX_EVIDENCE_VALUE)}…` : s;

/** A device or digest shortened for a sentence (the full value is in the alert or its evidence). */
const short = (s: string): string => (s.length > 16 ? `${s.slice(0, 16)}…` : s);

/** `3600000` → `1 h`, `90000` → `90 s`, for messages. */
export function formatDuration(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms >= 1_000 && ms % 1_000 === 0) return `${ms / 1_000} s`;
  return `${ms} ms`;
}

function detailEvidence(detail: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of Object.entries(detail)) {
    if (n++ >= MAX_DETAIL_ENTRIES) break;
    out[`detail_${clip(k)}`] = clip(String(v));
  }
  return out;
}

interface Boot {
  readonly bootIdHex: string;
  readonly bootCount: number;
  readonly atMs: number;
}

/** Rule 1: an identity key used by two devices. */
export class ClonedIdentityRule implements Rule {
  readonly type = 'CLONED_IDENTITY';
  readonly #windowMs: number;
  /** The latest accepted boot of each device, by event time. */
  readonly #boots: BoundedMap<string, Boot>;

  constructor(c: DetectionConfig) {
    this.#windowMs = c.cloneWindowMs;
    this.#boots = new BoundedMap(c.maxTrackedDevices);
  }

  observe(e: SecurityEvent): Finding[] {
    if (e.kind === 'rejection') {
      return e.code === DUPLICATE_IDENTITY ? [this.#refused(e, e.op, detailEvidence(e.detail))] : [];
    }
    if (e.kind !== 'attestation') return [];
    if (!e.ok) {
      if (e.code !== DUPLICATE_IDENTITY) return [];
      const prev = this.#boots.get(e.deviceId);
      return [
        this.#refused(e, 'attest', {
          ...(prev === undefined ? {} : bootEvidence('a', prev)),
          ...bootEvidence('b', e),
        }),
      ];
    }
    if (Number.isNaN(e.bootCount)) return [];
    const seen: Boot = { bootIdHex: e.bootIdHex, bootCount: e.bootCount, atMs: e.atMs };
    const prev = this.#boots.get(e.deviceId);
    const seenIsLater = prev === undefined || seen.atMs >= prev.atMs;
    this.#boots.set(e.deviceId, prev !== undefined && !seenIsLater ? prev : seen);
    if (prev === undefined || Math.abs(seen.atMs - prev.atMs) > this.#windowMs) return [];
    const [a, b] = seenIsLater ? [prev, seen] : [seen, prev];
    if (a.bootIdHex === b.bootIdHex || b.bootCount > a.bootCount) return [];
    return [
      {
        key: keyOf(e.deviceId),
        tenantId: e.tenantId,
        deviceId: e.deviceId,
        atMs: e.atMs,
        message:
          `Device ${short(e.deviceId)} attested with boot ${short(b.bootIdHex)} (count ${b.bootCount}) ` +
          `after boot ${short(a.bootIdHex)} (count ${a.bootCount}) without its boot count advancing: ` +
          'two devices share its identity key; quarantine the identity and find where the key leaked.',
        evidence: {
          source: 'boot-sequence',
          ...bootEvidence('a', a),
          ...bootEvidence('b', b),
          window_ms: String(this.#windowMs),
        },
      },
    ];
  }

  #refused(e: AttestationEvent | RejectionEvent, op: string, facts: Record<string, string>): Finding {
    return {
      key: keyOf(e.deviceId),
      tenantId: e.tenantId,
      deviceId: e.deviceId,
      atMs: e.atMs,
      message:
        `The service refused device ${short(e.deviceId)} (${clip(op)}) with ${DUPLICATE_IDENTITY}: its ` +
        'identity key is in use on two devices; keep the identity quarantined and find where the key leaked.',
      evidence: { ...facts, source: 'service', op: clip(op), code: DUPLICATE_IDENTITY },
    };
  }

  prune(nowMs: number): void {
    for (const [id, boot] of this.#boots.entries()) {
      if (boot.atMs < nowMs - this.#windowMs) this.#boots.delete(id);
    }
  }

  get devices(): number {
    return this.#boots.size;
  }

  readonly fleetKeys = 0;

  get evicted(): number {
    return this.#boots.evicted;
  }
}

function bootEvidence(which: 'a' | 'b', b: Boot | AttestationEvent): Record<string, string> {
  return {
    [`boot_id_${which}`]: clip(b.bootIdHex),
    [`boot_count_${which}`]: String(b.bootCount),
    [`at_ms_${which}`]: String(b.atMs),
  };
}

/** The per-device sliding-window count that rules 2 and 5 share (bounded, pruned by age). */
abstract class PerDeviceWindowRule {
  protected readonly windowMs: number;
  readonly #counts: BoundedMap<string, WindowCount>;

  constructor(windowMs: number, maxTrackedDevices: number) {
    this.windowMs = windowMs;
    this.#counts = new BoundedMap(maxTrackedDevices);
  }

  /** The device's window, created on first use. */
  protected windowOf(deviceId: string): WindowCount {
    const window = this.#counts.get(deviceId) ?? new WindowCount(this.windowMs);
    this.#counts.set(deviceId, window);
    return window;
  }

  prune(nowMs: number): void {
    for (const [id, w] of this.#counts.entries()) {
      if (w.newestMs < nowMs - this.windowMs) this.#counts.delete(id);
    }
  }

  get devices(): number {
    return this.#counts.size;
  }

  readonly fleetKeys = 0;

  get evicted(): number {
    return this.#counts.evicted;
  }
}

/** Rule 2: single-use nonces or request counters used again. */
export class ReplayedRequestRule extends PerDeviceWindowRule implements Rule {
  readonly type = 'REPLAYED_REQUEST';
  readonly #codes: ReadonlySet<string>;
  readonly #minEvents: number;

  constructor(c: DetectionConfig) {
    super(c.replayWindowMs, c.maxTrackedDevices);
    this.#codes = new Set([...BUILTIN_REPLAY_CODES, ...c.replayCodes]);
    this.#minEvents = c.replayMinEvents;
  }

  observe(e: SecurityEvent): Finding[] {
    let op: string;
    let code: string;
    let detail: Record<string, string> = {};
    if (e.kind === 'rejection') {
      op = e.op;
      code = e.code;
      detail = detailEvidence(e.detail);
    } else if (e.kind === 'attestation' && !e.ok && e.code !== null) {
      op = 'attest';
      code = e.code;
    } else {
      return [];
    }
    if (!this.#codes.has(code)) return [];
    const window = this.windowOf(e.deviceId);
    const count = window.add(e.atMs);
    if (count < this.#minEvents) return [];
    return [
      {
        key: keyOf(e.deviceId),
        tenantId: e.tenantId,
        deviceId: e.deviceId,
        atMs: e.atMs,
        message:
          `Device ${short(e.deviceId)} sent ${count} replayed request(s) ` +
          `within ${formatDuration(this.windowMs)}, ` +
          `the last a ${clip(op)} refused with ${clip(code)}: someone is resending captured traffic; ` +
          "check the device's network path and rotate its session.",
        evidence: {
          ...detail,
          op: clip(op),
          code: clip(code),
          count: String(count),
          window_ms: String(this.windowMs),
        },
      },
    ];
  }
}

interface DriftKey {
  readonly tenantId: string | null;
  readonly osVersion: string;
  readonly stage: string;
  readonly digestHex: string;
  /** The most recently seen devices (at most `driftMinDevices`), least recent first, with when. */
  readonly devices: Map<string, number>;
}

/** Rule 3: an unknown build spreading through a tenant's fleet. */
export class MeasurementDriftRule implements Rule {
  readonly type = 'MEASUREMENT_DRIFT';
  readonly #minDevices: number;
  readonly #windowMs: number;
  readonly #keys: BoundedMap<string, DriftKey>;

  constructor(c: DetectionConfig) {
    this.#minDevices = c.driftMinDevices;
    this.#windowMs = c.driftWindowMs;
    this.#keys = new BoundedMap(c.maxFleetKeys);
  }

  observe(e: SecurityEvent): Finding[] {
    if (e.kind !== 'attestation') return [];
    if (!e.ok && (e.code === null || !SIGNED_EVIDENCE_CODES.has(e.code))) return [];
    const out: Finding[] = [];
    for (const { stage, digestHex } of e.unknownMeasurements) {
      const key = keyOf(e.tenantId, e.osVersion, stage, digestHex);
      const k = this.#keys.get(key) ?? {
        tenantId: e.tenantId,
        osVersion: e.osVersion,
        stage,
        digestHex,
        devices: new Map<string, number>(),
      };
      this.#keys.set(key, k);
      const before = k.devices.get(e.deviceId);
      k.devices.delete(e.deviceId);
      k.devices.set(e.deviceId, before === undefined ? e.atMs : Math.max(before, e.atMs));
      for (const id of k.devices.keys()) {
        if (k.devices.size <= this.#minDevices) break;
        k.devices.delete(id);
      }
      const inWindow = [...k.devices].filter(([, t]) => Math.abs(t - e.atMs) <= this.#windowMs);
      if (inWindow.length < this.#minDevices) continue;
      const firstSeen = Math.min(...inWindow.map(([, t]) => t));
      out.push({
        key,
        tenantId: e.tenantId,
        deviceId: '',
        atMs: e.atMs,
        message:
          `${inWindow.length} devices on OS ${clip(e.osVersion)} present the unknown ${clip(stage)} digest ` +
          `${short(digestHex)} within ${formatDuration(this.#windowMs)}: an unapproved build is spreading; ` +
          'add it as a reference value if it is yours, otherwise quarantine these devices.',
        evidence: {
          os_version: clip(e.osVersion),
          stage: clip(stage),
          digest: clip(digestHex),
          devices: String(inWindow.length),
          example_devices: inWindow
            .slice(-DRIFT_EXAMPLES)
            .map(([id]) => id)
            .join(','),
          first_seen_ms: String(firstSeen),
          window_ms: String(this.#windowMs),
        },
      });
    }
    return out;
  }

  prune(nowMs: number): void {
    for (const [key, k] of this.#keys.entries()) {
      for (const [id, t] of k.devices) if (t < nowMs - this.#windowMs) k.devices.delete(id);
      if (k.devices.size === 0) this.#keys.delete(key);
    }
  }

  readonly devices = 0;

  get fleetKeys(): number {
    return this.#keys.size;
  }

  get evicted(): number {
    return this.#keys.evicted;
  }
}

interface Install {
  readonly deploymentKey: string;
  readonly component: string;
  readonly version: string;
  readonly installedAtMs: number;
  crashes: number;
  lastCrashAtMs: number;
}

interface Deployment {
  readonly tenantId: string;
  readonly deploymentId: string;
  readonly component: string;
  readonly version: string;
  updatedDevices: number;
  crashingDevices: number;
  crashes: number;
  /** Latest event time that touched it (service clock). */
  lastActivityMs: number;
}

/** Rule 4: an update that makes the devices that took it crash. */
export class CrashBurstRule implements Rule {
  readonly type = 'CRASH_BURST_AFTER_UPDATE';
  readonly #c: DetectionConfig;
  readonly #installs: BoundedMap<string, Install[]>;
  readonly #deployments: BoundedMap<string, Deployment>;

  constructor(c: DetectionConfig) {
    this.#c = c;
    this.#installs = new BoundedMap(c.maxTrackedDevices);
    this.#deployments = new BoundedMap(c.maxFleetKeys);
  }

  observe(e: SecurityEvent): Finding[] {
    if (e.kind === 'update-result') {
      this.#updated(e);
      return [];
    }
    return e.kind === 'error-report' ? this.#crashed(e) : [];
  }

  #updated(e: UpdateResultEvent): void {
    const key = keyOf(e.tenantId, e.deploymentId);
    const installs = this.#installs.get(e.deviceId) ?? [];
    if (e.outcome !== 'succeeded') {
      // The device no longer runs the deployment's version: stop following it.
      const rest = installs.filter((i) => i.deploymentKey !== key);
      if (rest.length > 0) this.#installs.set(e.deviceId, rest);
      else this.#installs.delete(e.deviceId);
      return;
    }
    if (installs.some((i) => i.deploymentKey === key)) return; // a repeated report
    const d = this.#deployments.get(key) ?? {
      tenantId: e.tenantId,
      deploymentId: e.deploymentId,
      component: e.component,
      version: e.version,
      updatedDevices: 0,
      crashingDevices: 0,
      crashes: 0,
      lastActivityMs: e.atMs,
    };
    d.updatedDevices++;
    d.lastActivityMs = Math.max(d.lastActivityMs, e.atMs);
    this.#deployments.set(key, d);
    // A newer install of the same component replaces the older one on the device.
    const kept = installs.filter((i) => i.component !== e.component).slice(1 - MAX_INSTALLS_PER_DEVICE);
    kept.push({
      deploymentKey: key,
      component: e.component,
      version: e.version,
      installedAtMs: e.atMs,
      crashes: 0,
      lastCrashAtMs: -Infinity,
    });
    this.#installs.set(e.deviceId, kept);
  }

  #crashed(e: ErrorReportEvent): Finding[] {
    const installs = this.#installs.get(e.deviceId);
    if (installs === undefined) return [];
    const found = new Map<string, Finding>();
    for (const ev of e.events) {
      const component =
        ev.kind === 'os-crash'
          ? OS_COMPONENT
          : ev.kind === 'app-crash' && ev.exitCode !== 0 && ev.component !== OS_COMPONENT
            ? ev.component
            : null;
      if (component === null || !Number.isFinite(ev.atMs)) continue;
      for (const i of installs) {
        if (i.component !== component || (ev.version !== '' && ev.version !== i.version)) continue;
        if (ev.atMs <= i.installedAtMs || ev.atMs > i.installedAtMs + this.#c.crashWindowMs) continue;
        if (ev.atMs <= i.lastCrashAtMs) continue; // counted already (a report delivered twice)
        const d = this.#deployments.get(i.deploymentKey);
        if (d === undefined) continue;
        if (i.crashes === 0) d.crashingDevices++;
        i.crashes++;
        i.lastCrashAtMs = ev.atMs;
        d.crashes++;
        d.lastActivityMs = Math.max(d.lastActivityMs, e.atMs);
        this.#deployments.set(i.deploymentKey, d);
        if (found.has(i.deploymentKey) || !this.#tripped(d)) continue;
        found.set(i.deploymentKey, this.#finding(i.deploymentKey, d, ev.atMs));
      }
    }
    return [...found.values()];
  }

  #tripped(d: Deployment): boolean {
    return (
      d.crashingDevices >= this.#c.crashMinDevices &&
      d.crashes >= this.#c.crashRatePerDevice * d.updatedDevices
    );
  }

  #finding(key: string, d: Deployment, atMs: number): Finding {
    const within = formatDuration(this.#c.crashWindowMs);
    return {
      key,
      tenantId: d.tenantId,
      deviceId: '',
      atMs,
      message:
        `${d.crashingDevices} of ${d.updatedDevices} devices that installed ${clip(d.component)} ` +
        `${clip(d.version)} (deployment ${clip(d.deploymentId)}) crashed ${d.crashes} times ` +
        `within ${within} of installing it: halt the deployment and roll it back.`,
      evidence: {
        deployment_id: clip(d.deploymentId),
        component: clip(d.component),
        version: clip(d.version),
        updated_devices: String(d.updatedDevices),
        crashing_devices: String(d.crashingDevices),
        crashes: String(d.crashes),
        window_ms: String(this.#c.crashWindowMs),
      },
    };
  }

  prune(nowMs: number): void {
    const installCutoff = nowMs - this.#c.crashWindowMs - this.#c.crashReportLagMs;
    for (const [id, installs] of this.#installs.entries()) {
      const live = installs.filter((i) => i.installedAtMs >= installCutoff);
      if (live.length === 0) this.#installs.delete(id);
      else if (live.length < installs.length) installs.splice(0, installs.length, ...live);
    }
    // A deployment outlives its installs: each install touched it.
    const cutoff = nowMs - longestWindowMs(this.#c);
    for (const [key, d] of this.#deployments.entries()) {
      if (d.lastActivityMs < cutoff) this.#deployments.delete(key);
    }
  }

  get devices(): number {
    return this.#installs.size;
  }

  get fleetKeys(): number {
    return this.#deployments.size;
  }

  get evicted(): number {
    return this.#installs.evicted + this.#deployments.evicted;
  }
}

/** Rule 5: one device sending far more than a device does. */
export class DeviceFloodingRule extends PerDeviceWindowRule implements Rule {
  readonly type = 'DEVICE_FLOODING';
  readonly #max: number;

  constructor(c: DetectionConfig) {
    super(c.floodWindowMs, c.maxTrackedDevices);
    this.#max = c.floodMaxRequests;
  }

  observe(e: SecurityEvent): Finding[] {
    if (e.kind !== 'request') return [];
    const window = this.windowOf(e.deviceId);
    const count = window.add(e.atMs);
    if (count <= this.#max) return [];
    return [
      {
        key: keyOf(e.deviceId),
        tenantId: e.tenantId,
        deviceId: e.deviceId,
        atMs: e.atMs,
        message:
          `Device ${short(e.deviceId)} sent ${count} requests within ${formatDuration(this.windowMs)} ` +
          `(limit ${this.#max}), the last a ${clip(e.op)}: rate-limit or quarantine it; ` +
          'a genuine device never sends this many.',
        evidence: {
          op: clip(e.op),
          requests: String(count),
          max_requests: String(this.#max),
          window_ms: String(this.windowMs),
        },
      },
    ];
  }
}
