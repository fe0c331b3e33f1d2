import { describe, expect, it } from 'vitest';
import {
  DEFAULT_DETECTION_CONFIG,
  DETECTION_ALERT_TYPES,
  DetectionConfigError,
  ThreatDetector,
  compileDetectionConfig,
  detectionAlertId,
} from '../../../services/detection/index.js';
import type { DetectedAlert, DetectionConfig, SecurityEvent } from '../../../services/detection/index.js';
import {
  HOUR,
  MIN,
  attestation,
  crash,
  dev,
  errorReport,
  rejection,
  request,
  updateResult,
} from './harness.js';

function feed(d: ThreatDetector, events: readonly SecurityEvent[]): DetectedAlert[] {
  return events.flatMap((e) => d.observe(e));
}

/** One event of every kind for each of `devices` devices, `stepMs` apart, so every rule keeps state. */
function everything(devices: number, stepMs = 1_000): SecurityEvent[] {
  const out: SecurityEvent[] = [];
  for (let i = 0; i < devices; i++) {
    const atMs = i * stepMs;
    const deviceId = dev(i);
    out.push(
      request({ deviceId, atMs }),
      rejection({ deviceId, atMs }),
      attestation({ deviceId, atMs, unknownMeasurements: [{ stage: 'app', digestHex: `d${i}` }] }),
      updateResult({ deviceId, atMs, deploymentId: `d-${i}` }),
    );
  }
  return out;
}

describe('detector', () => {
  it('detector - a storm gives one alert per key per suppression window', () => {
    const d = new ThreatDetector();
    const storm = Array.from({ length: 5_000 }, (_, i) => rejection({ atMs: i * 100 })); // 0 .. 500 s
    const alerts = feed(d, storm);
    expect(alerts.map((a) => a.type)).toEqual(['REPLAYED_REQUEST']);
    expect(alerts[0]?.evidence['suppress_window_start_ms']).toBe('0');
    // The next window raises again, with another id; a second device is another key.
    const next = feed(d, [rejection({ atMs: HOUR + 5 }), rejection({ atMs: HOUR + 6, deviceId: dev(2) })]);
    expect(next).toHaveLength(2);
    expect(next[0]?.id).not.toBe(alerts[0]?.id);
    expect(next[0]?.evidence['suppress_window_start_ms']).toBe(String(HOUR));
    // A late event of the first window stays quiet.
    expect(d.observe(rejection({ atMs: HOUR - 1 }))).toEqual([]);
    expect(d.stats()).toMatchObject({ alertsRaised: 3, alertsSuppressed: 5_000 });
  });

  it('detector - suppressWindowMs sets the window', () => {
    const d = new ThreatDetector({ suppressWindowMs: MIN });
    const alerts = feed(
      d,
      Array.from({ length: 300 }, (_, i) => rejection({ atMs: i * 1_000 })),
    );
    expect(alerts.map((a) => a.atMs)).toEqual([0, MIN, 2 * MIN, 3 * MIN, 4 * MIN]);
  });

  it('detector - ids are deterministic: same events, same ids, on any detector', () => {
    const events: SecurityEvent[] = [
      ...Array.from({ length: 130 }, (_, i) => request({ atMs: i * 10 })),
      rejection({ atMs: 7, code: 'DUPLICATE_IDENTITY' }),
      rejection({ atMs: 9, deviceId: dev(2) }),
    ];
    const a = feed(new ThreatDetector(), events);
    const b = feed(new ThreatDetector(), events);
    expect(a.map((x) => x.type)).toEqual(['DEVICE_FLOODING', 'CLONED_IDENTITY', 'REPLAYED_REQUEST']);
    expect(b).toEqual(a);
    for (const alert of a) expect(alert.id).toMatch(/^ta-[0-9a-f]{32}$/);
    expect(new Set(a.map((x) => x.id)).size).toBe(a.length);
  });

  it('detector - two shards tripping on different events in one window give the same id', () => {
    const shardA = feed(
      new ThreatDetector(),
      Array.from({ length: 125 }, (_, i) => request({ atMs: 1_000 + i })),
    );
    const shardB = feed(
      new ThreatDetector(),
      Array.from({ length: 140 }, (_, i) => request({ atMs: 20_000 + 2 * i })),
    );
    expect(shardA).toHaveLength(1);
    expect(shardB).toHaveLength(1);
    expect(shardA[0]?.atMs).not.toBe(shardB[0]?.atMs);
    expect(shardA[0]?.id).toBe(shardB[0]?.id);
    expect(shardA[0]?.id).toBe(detectionAlertId('DEVICE_FLOODING', JSON.stringify([dev(1)]), 0));
  });

  it('detector - prune drops state older than the windows and keeps what still matters', () => {
    const d = new ThreatDetector();
    feed(d, everything(50));
    const before = d.stats();
    expect(before.trackedDevices).toBe(50);
    expect(before.fleetKeys).toBe(100); // 50 drift keys and 50 deployments
    // Within the clone window, an accepted boot is still remembered.
    d.prune(HOUR);
    expect(d.stats().byRule.CLONED_IDENTITY).toBe(50);
    expect(d.stats().byRule.DEVICE_FLOODING).toBe(0); // a minute's requests are long gone
    const clone = d.observe(attestation({ deviceId: dev(0), atMs: 2 * HOUR, bootIdHex: 'ff', bootCount: 0 }));
    expect(clone.map((a) => a.type)).toEqual(['CLONED_IDENTITY']);
    // After the longest window (crash window and report lag: 49 h) nothing is left.
    d.prune(100 * HOUR);
    expect(d.stats()).toMatchObject({
      trackedDevices: 0,
      fleetKeys: 0,
      suppressedKeys: 0,
      byRule: Object.fromEntries(DETECTION_ALERT_TYPES.map((t) => [t, 0])),
    });
  });

  it('detector - installs outlive the crash window until late error reports can no longer come', () => {
    const d = new ThreatDetector();
    feed(
      d,
      [1, 2, 3].map((n) => updateResult({ deviceId: dev(n), atMs: 0 })),
    );
    d.prune(40 * HOUR);
    const alerts = feed(
      d,
      [1, 2, 3].map((n) => errorReport([crash({ atMs: 30 * MIN })], { deviceId: dev(n), atMs: 40 * HOUR })),
    );
    expect(alerts.map((a) => a.type)).toEqual(['CRASH_BURST_AFTER_UPDATE']);
  });

  it('detector - caps hold: the least recently active entries are evicted', () => {
    const d = new ThreatDetector({ maxTrackedDevices: 5, maxFleetKeys: 7, maxSuppressedKeys: 3 });
    feed(d, everything(40));
    const s = d.stats();
    expect(s.trackedDevices).toBe(5);
    expect(s.fleetKeys).toBe(14);
    expect(s.suppressedKeys).toBe(3);
    expect(s.evicted).toBeGreaterThan(0);
  });

  it('detector - events without a device id or with a non-finite time are ignored', () => {
    const d = new ThreatDetector();
    expect(d.observe(rejection({ deviceId: '' }))).toEqual([]);
    expect(d.observe(rejection({ atMs: Number.NaN }))).toEqual([]);
    expect(d.observe(request({ atMs: Number.POSITIVE_INFINITY }))).toEqual([]);
    expect(d.stats()).toMatchObject({ eventsIgnored: 3, trackedDevices: 0 });
    d.prune(Number.NaN); // no effect, no throw
  });

  it('detector - odd input neither throws nor raises nonsense', () => {
    const d = new ThreatDetector();
    const huge = Number.MAX_SAFE_INTEGER;
    const longDetail = Object.fromEntries(
      Array.from({ length: 100 }, (_, i) => [`k${i}`, 'x'.repeat(10_000)]),
    );
    const odd: SecurityEvent[] = [
      attestation({ atMs: -5, tenantId: '', bootIdHex: '', bootCount: huge, osVersion: '' }),
      attestation({ atMs: huge, bootIdHex: '', bootCount: Number.POSITIVE_INFINITY }),
      attestation({ atMs: 1, bootCount: Number.NaN, unknownMeasurements: [{ stage: '', digestHex: '' }] }),
      attestation({ atMs: 8.64e15, ok: false, code: null }),
      rejection({ atMs: -1e15, op: '', code: '', detail: longDetail }),
      rejection({ atMs: 3, code: 'REPLAYED', detail: longDetail }),
      request({ atMs: 1e300, op: '' }),
      request({ atMs: -1e300 }),
      updateResult({ atMs: -HOUR, deploymentId: '', component: '', version: '' }),
      errorReport([crash({ atMs: Number.NaN }), crash({ exitCode: huge, atMs: 1e300, component: '' })], {
        atMs: 2,
      }),
      errorReport([], { atMs: 3, deviceId: dev(99) }),
    ];
    const alerts = feed(d, [...odd, ...[...odd].reverse()]);
    for (const a of alerts) {
      expect(DETECTION_ALERT_TYPES).toContain(a.type);
      for (const v of Object.values(a.evidence)) expect(v.length).toBeLessThanOrEqual(201);
      expect(Object.keys(a.evidence).filter((k) => k.startsWith('detail_')).length).toBeLessThanOrEqual(8);
    }
    expect(alerts.some((a) => a.type === 'REPLAYED_REQUEST')).toBe(true);
    d.prune(0);
    d.prune(Number.MAX_VALUE);
    expect(d.stats()).toMatchObject({ trackedDevices: 0, fleetKeys: 0, suppressedKeys: 0 });
  });
});

describe('detection config', () => {
  it('detection config - missing fields take the documented defaults', () => {
    expect(compileDetectionConfig()).toEqual(DEFAULT_DETECTION_CONFIG);
    expect(compileDetectionConfig({ floodMaxRequests: 10 })).toEqual({
      ...DEFAULT_DETECTION_CONFIG,
      floodMaxRequests: 10,
    });
    expect(new ThreatDetector({ driftMinDevices: 5 }).config.driftMinDevices).toBe(5);
  });

  it('detection config - a configuration that cannot work is refused, naming the field', () => {
    const bad: Array<[Partial<DetectionConfig>, string]> = [
      [{ floodWindowMs: 0 }, 'floodWindowMs'],
      [{ suppressWindowMs: 1.5 }, 'suppressWindowMs'],
      [{ maxTrackedDevices: -1 }, 'maxTrackedDevices'],
      [{ crashRatePerDevice: Number.NaN }, 'crashRatePerDevice'],
      [{ crashReportLagMs: -1 }, 'crashReportLagMs'],
      [{ driftMinDevices: 1_001 }, 'driftMinDevices'],
      [{ replayCodes: 'NONCE_REUSED' as unknown as string[] }, 'replayCodes'],
    ];
    for (const [config, field] of bad) {
      expect(() => new ThreatDetector(config)).toThrow(DetectionConfigError);
      try {
        compileDetectionConfig(config);
      } catch (e) {
        expect((e as DetectionConfigError).field).toBe(field);
      }
    }
    expect(compileDetectionConfig({ crashReportLagMs: 0, crashRatePerDevice: 0.25 }).crashRatePerDevice).toBe(
      0.25,
    );
  });
});
