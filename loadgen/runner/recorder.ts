import type { DeviceEvent, DevicePhase, DeviceProfile } from '../../actors/device/index.js';
import type { Meter } from '../../actors/runtime/index.js';
import type { UpdateAgentEvent } from '../../actors/update-agent/index.js';
import { FAULT_PROFILES, LatencyRecorder } from '../scenario/index.js';
import type { DevicePlan } from '../scenario/index.js';
import type { ErrorReportsSummary, UpdatesSummary } from '../report/index.js';
import type { HistoryRecorder } from './history.js';

/** What the run learned about one device. */
export interface DeviceTrack {
  readonly plan: DevicePlan;
  phase: DevicePhase;
  poweredOn: boolean;
  certificatesNotAfterMs: number | null;
  lastFailed: boolean;
  /** Rejection codes seen, with counts. */
  readonly codes: Map<string, number>;
  ok: number;
  failed: number;
  /** Final update outcome per deployment, as the device reported it (`outcome:code`). */
  readonly updates: Map<string, string>;
}

/** What the run learned about updates from the devices' side (mutable while it runs). */
export type UpdateObservations = {
  -readonly [K in Exclude<keyof UpdatesSummary, 'reports' | 'checkFailures'>]: UpdatesSummary[K];
} & { readonly reports: Record<string, number>; readonly checkFailures: Record<string, number> };

/** What the run learned about error reports from the devices' side (mutable while it runs). */
export type ErrorReportObservations = {
  -readonly [K in Exclude<keyof ErrorReportsSummary, 'eventsByKind' | 'refused'>]: ErrorReportsSummary[K];
} & { readonly eventsByKind: Record<string, number>; readonly refused: Record<string, number> };

/**
 * Aggregates device events into the run's observations: latencies, outcomes by result and code,
 * per-device tracks (for fault-profile verdicts) and loadgen metrics. Events arrive from device
 * actors in one thread, so plain counters suffice.
 */
export class RunRecorder {
  readonly challengeLatency = new LatencyRecorder();
  readonly attestLatency = new LatencyRecorder();
  readonly byResult: Record<string, number> = { ok: 0, rejected: 0, timeout: 0, transport_error: 0 };
  readonly byCode: Record<string, number> = {};
  readonly errors = new Map<string, number>();
  readonly tracks: DeviceTrack[];
  readonly updates: UpdateObservations = {
    checks: 0,
    checksFailed: 0,
    checkFailures: {},
    bytes: 0,
    reports: {},
    reportRetries: 0,
    osDeferrals: 0,
  };
  readonly errorReports: ErrorReportObservations = {
    eventsByKind: {},
    uploads: 0,
    acknowledged: 0,
    duplicates: 0,
    refused: {},
    retries: 0,
    eventsAcknowledged: 0,
  };
  healthyOk = 0;
  healthyFailed = 0;
  attestations = 0;
  readonly #metrics;

  /** The run's history for the verdict (see history.ts); `null` when not asked for. */
  readonly history: HistoryRecorder | null;

  constructor(plans: readonly DevicePlan[], meter: Meter, history: HistoryRecorder | null = null) {
    this.history = history;
    this.tracks = plans.map((plan) => ({
      plan,
      phase: 'off',
      poweredOn: false,
      certificatesNotAfterMs: null,
      lastFailed: false,
      codes: new Map(),
      ok: 0,
      failed: 0,
      updates: new Map(),
    }));
    this.#metrics = {
      attestations: meter.counter({
        name: 'sphere_loadgen_attestations_total',
        help: 'Attestation attempts by devices of this loadgen, by result and code.',
        labelNames: ['result', 'code'],
      }),
      latency: meter.histogram({
        name: 'sphere_loadgen_attest_latency_seconds',
        help: 'Wall time from challenge request to certificates, as a device sees it.',
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      }),
      updateBytes: meter.counter({
        name: 'sphere_loadgen_update_bytes_total',
        help: 'Image bytes received by devices of this loadgen.',
      }),
      updateReports: meter.counter({
        name: 'sphere_loadgen_update_reports_total',
        help: 'Update reports acknowledged by the service, by outcome and code.',
        labelNames: ['outcome', 'code'],
      }),
      errorReports: meter.counter({
        name: 'sphere_loadgen_error_reports_total',
        help: 'Error report uploads by devices of this loadgen, by result (acked, duplicate, refused, retry) and code.',
        labelNames: ['result', 'code'],
      }),
      errorEvents: meter.counter({
        name: 'sphere_loadgen_error_events_total',
        help: 'Error events recorded by devices of this loadgen (app crashes and exits, OS crashes, update and attestation failures), by kind.',
        labelNames: ['kind'],
      }),
      phases: meter.gauge({
        name: 'sphere_loadgen_devices',
        help: 'Devices of this loadgen by phase.',
        labelNames: ['phase'],
      }),
    };
  }

  /** Binds a device index to its track (several indexes share an ID when keys are cloned). */
  track(index: number): DeviceTrack {
    const t = this.tracks[index];
    if (t === undefined) throw new RangeError(`no device ${index}`);
    return t;
  }

  observe(track: DeviceTrack, _profile: DeviceProfile, event: DeviceEvent): void {
    const healthy = track.plan.fault === null;
    switch (event.kind) {
      case 'phase':
        track.phase = event.to;
        if (event.from === 'off') {
          track.poweredOn = true;
          this.history?.poweredOn(track.plan.index);
        }
        this.#metrics.phases.dec({ phase: event.from });
        this.#metrics.phases.inc({ phase: event.to });
        return;
      case 'attested':
        this.attestations++;
        this.byResult['ok'] = (this.byResult['ok'] ?? 0) + 1;
        track.ok++;
        track.lastFailed = false;
        track.certificatesNotAfterMs = event.notAfterMs;
        this.history?.certified(track.plan.index, event.notAfterMs);
        if (healthy) this.healthyOk++;
        this.challengeLatency.record(event.challengeMs);
        this.attestLatency.record(event.totalMs);
        this.#metrics.attestations.inc({ result: 'ok', code: 'OK' });
        this.#metrics.latency.observe(event.totalMs / 1000);
        return;
      case 'rejected':
        this.attestations++;
        this.byResult['rejected'] = (this.byResult['rejected'] ?? 0) + 1;
        this.byCode[event.code] = (this.byCode[event.code] ?? 0) + 1;
        track.codes.set(event.code, (track.codes.get(event.code) ?? 0) + 1);
        this.history?.failed(track.plan.index, event.code);
        track.failed++;
        track.lastFailed = true;
        if (healthy) this.healthyFailed++;
        this.#metrics.attestations.inc({ result: 'rejected', code: event.code });
        return;
      case 'transport-error': {
        const result = event.code === 'TIMEOUT' ? 'timeout' : 'transport_error';
        this.attestations++;
        this.byResult[result] = (this.byResult[result] ?? 0) + 1;
        this.history?.failed(track.plan.index, null);
        const key = `${event.step}: ${event.code}`;
        this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
        track.failed++;
        track.lastFailed = true;
        if (healthy) this.healthyFailed++;
        this.#metrics.attestations.inc({ result, code: event.code });
        return;
      }
      case 'clock-resynced':
        return;
      case 'error-recorded': {
        const r = this.errorReports;
        r.eventsByKind[event.errorKind] = (r.eventsByKind[event.errorKind] ?? 0) + 1;
        this.#metrics.errorEvents.inc({ kind: event.errorKind });
        return;
      }
      case 'error-report': {
        const r = this.errorReports;
        r.uploads++;
        if (event.result === 'acked') {
          r.acknowledged++;
          r.eventsAcknowledged += event.events;
        } else if (event.result === 'duplicate') r.duplicates++;
        else if (event.result === 'refused') r.refused[event.code] = (r.refused[event.code] ?? 0) + 1;
        else r.retries++;
        this.#metrics.errorReports.inc({ result: event.result, code: event.code });
        return;
      }
      default:
        event satisfies never;
    }
  }

  observeUpdate(track: DeviceTrack, event: UpdateAgentEvent): void {
    const u = this.updates;
    switch (event.kind) {
      case 'check':
        u.checks++;
        if (!event.ok) {
          u.checksFailed++;
          const code = event.code ?? 'OTHER';
          u.checkFailures[code] = (u.checkFailures[code] ?? 0) + 1;
        }
        return;
      case 'chunk':
        u.bytes += event.bytes;
        this.#metrics.updateBytes.inc(event.bytes);
        return;
      case 'os-deferred':
        u.osDeferrals++;
        return;
      case 'report': {
        if (!event.acked) {
          u.reportRetries++;
          return;
        }
        this.history?.reportAcked(track.plan.index, {
          deployment: event.deploymentId,
          reportId: event.reportId,
          outcome: event.outcome,
        });
        const key = event.code === '' ? event.outcome : `${event.outcome}:${event.code}`;
        u.reports[key] = (u.reports[key] ?? 0) + 1;
        this.#metrics.updateReports.inc({
          outcome: event.outcome,
          code: event.code === '' ? 'OK' : event.code,
        });
        if (event.outcome !== 'downloading' && event.outcome !== 'installing')
          track.updates.set(event.deploymentId, key);
        return;
      }
      default:
        event satisfies never;
    }
  }

  /** Devices holding a certificate valid at `nowMs`. */
  attestedAt(nowMs: number): number {
    let n = 0;
    for (const t of this.tracks)
      if (t.certificatesNotAfterMs !== null && t.certificatesNotAfterMs > nowMs) n++;
    return n;
  }

  /** Whether a hostile device saw one of its profile's expected codes. */
  static rejectedAsExpected(t: DeviceTrack): boolean {
    const fault = t.plan.fault;
    if (fault === null) return false;
    const expected: readonly string[] = FAULT_PROFILES[fault].expectedCodes;
    return expected.some((c) => (t.codes.get(c) ?? 0) > 0);
  }
}
