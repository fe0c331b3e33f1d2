import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { BoundedMap } from './bounded.js';
import { compileDetectionConfig, longestWindowMs } from './config.js';
import type { DetectionConfig } from './config.js';
import { DETECTION_SEVERITY } from './events.js';
import type { DetectedAlert, DetectionAlertType, SecurityEvent } from './events.js';
import {
  ClonedIdentityRule,
  CrashBurstRule,
  DeviceFloodingRule,
  MeasurementDriftRule,
  ReplayedRequestRule,
} from './rules.js';
import type { Rule } from './rules.js';

/** Sizes and counters of a {@link ThreatDetector}, for gauges and tests. */
export interface DetectorStats {
  /** Devices in the largest per-device table (each table holds at most `maxTrackedDevices`). */
  readonly trackedDevices: number;
  /** Fleet-level keys: drift keys plus deployments (each table at most `maxFleetKeys`). */
  readonly fleetKeys: number;
  /** Entries each rule holds (devices plus fleet keys). */
  readonly byRule: Readonly<Record<DetectionAlertType, number>>;
  /** Keys remembered as alerted (at most `maxSuppressedKeys`). */
  readonly suppressedKeys: number;
  /** Entries dropped to stay within the caps, ever (a dropped device starts afresh). */
  readonly evicted: number;
  readonly alertsRaised: number;
  readonly alertsSuppressed: number;
  /** Events without a device id or with a non-finite time: nothing to attribute them to. */
  readonly eventsIgnored: number;
}

/**
 * The alert id of a finding: `ta-` and 32 hex digits of SHA-256 over its type, key and
 * suppression window start. Equal inputs give equal ids on every process.
 */
export function detectionAlertId(type: DetectionAlertType, key: string, windowStartMs: number): string {
  return `ta-${bytesToHex(sha256(utf8ToBytes(JSON.stringify([type, key, windowStartMs])))).slice(0, 32)}`;
}

/**
 * Threat detection over the service's security events, as pure logic: no I/O, no timers, no
 * clock (time comes in the events), deterministic. The rules are described in `rules.ts`.
 *
 * Suppression: each rule raises at most one alert per key (device, digest or deployment) in each
 * aligned window `[k × suppressWindowMs, (k + 1) × suppressWindowMs)` of the tripping event's
 * time, and the window start is part of the alert id; so a storm gives one alert per key per
 * window, and two detectors (shards) tripping in the same window give the same id, which storage
 * can keep once. A late event tripping a window before the last alerted one is suppressed.
 *
 * Memory stays bounded: every table is capped (least recently active entry evicted) and
 * {@link prune} drops what is older than the windows. Not thread-safe; one owner.
 */
export class ThreatDetector {
  readonly config: DetectionConfig;
  readonly #rules: readonly Rule[];
  /** Last alerted window number per `type key`. */
  readonly #alerted: BoundedMap<string, number>;
  #raised = 0;
  #suppressed = 0;
  #ignored = 0;

  /** @throws DetectionConfigError when `config` cannot work (see `compileDetectionConfig`). */
  constructor(config: Partial<DetectionConfig> = {}) {
    this.config = compileDetectionConfig(config);
    this.#rules = [
      new ClonedIdentityRule(this.config),
      new ReplayedRequestRule(this.config),
      new MeasurementDriftRule(this.config),
      new CrashBurstRule(this.config),
      new DeviceFloodingRule(this.config),
    ];
    this.#alerted = new BoundedMap(this.config.maxSuppressedKeys);
  }

  /** Feeds one event; returns the alerts it raised now (usually none). Never throws. */
  observe(e: SecurityEvent): DetectedAlert[] {
    if (e.deviceId === '' || !Number.isFinite(e.atMs)) {
      this.#ignored++;
      return [];
    }
    const out: DetectedAlert[] = [];
    for (const rule of this.#rules) {
      for (const f of rule.observe(e)) {
        const window = Math.floor(f.atMs / this.config.suppressWindowMs);
        const suppressionKey = `${rule.type} ${f.key}`;
        const last = this.#alerted.get(suppressionKey);
        if (last !== undefined && window <= last) {
          this.#suppressed++;
          continue;
        }
        this.#alerted.set(suppressionKey, window);
        this.#raised++;
        const windowStartMs = window * this.config.suppressWindowMs;
        out.push({
          id: detectionAlertId(rule.type, f.key, windowStartMs),
          type: rule.type,
          severity: DETECTION_SEVERITY[rule.type],
          tenantId: f.tenantId,
          deviceId: f.deviceId,
          atMs: f.atMs,
          message: f.message,
          evidence: { ...f.evidence, suppress_window_start_ms: String(windowStartMs) },
        });
      }
    }
    return out;
  }

  /**
   * Drops state that can no longer matter at `nowMs` (each rule's own window; error-report
   * matching keeps installs for `crashWindowMs + crashReportLagMs`). Call periodically with the
   * simulated time; costs O(state). A non-finite `nowMs` is ignored.
   */
  prune(nowMs: number): void {
    if (!Number.isFinite(nowMs)) return;
    for (const rule of this.#rules) rule.prune(nowMs);
    const current = Math.floor(nowMs / this.config.suppressWindowMs);
    const keep = Math.ceil(longestWindowMs(this.config) / this.config.suppressWindowMs);
    for (const [key, window] of this.#alerted.entries()) {
      if (window < current - keep) this.#alerted.delete(key);
    }
  }

  stats(): DetectorStats {
    const byRule = {} as Record<DetectionAlertType, number>;
    let trackedDevices = 0;
    let fleetKeys = 0;
    let evicted = this.#alerted.evicted;
    for (const rule of this.#rules) {
      byRule[rule.type] = rule.devices + rule.fleetKeys;
      trackedDevices = Math.max(trackedDevices, rule.devices);
      fleetKeys += rule.fleetKeys;
      evicted += rule.evicted;
    }
    return {
      trackedDevices,
      fleetKeys,
      byRule,
      suppressedKeys: this.#alerted.size,
      evicted,
      alertsRaised: this.#raised,
      alertsSuppressed: this.#suppressed,
      eventsIgnored: this.#ignored,
    };
  }
}
