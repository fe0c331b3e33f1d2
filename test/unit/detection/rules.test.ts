import { describe, expect, it } from 'vitest';
import { ThreatDetector } from '../../../services/detection/index.js';
import type { DetectedAlert, DetectionConfig, SecurityEvent } from '../../../services/detection/index.js';
import {
  HOUR,
  MIN,
  OTHER_TENANT,
  TENANT,
  attestation,
  crash,
  dev,
  errorReport,
  rejection,
  request,
  updateResult,
} from './harness.js';

/** Feeds `events` to a fresh detector; returns every alert raised, in order. */
function run(events: readonly SecurityEvent[], config: Partial<DetectionConfig> = {}): DetectedAlert[] {
  const d = new ThreatDetector(config);
  return events.flatMap((e) => d.observe(e));
}

const BOOT_X = 'aa'.repeat(16);
const BOOT_Y = 'bb'.repeat(16);

describe('cloned identity', () => {
  it('cloned identity - a DUPLICATE_IDENTITY rejection raises a critical alert with its facts', () => {
    const [a, ...rest] = run([
      rejection({ code: 'DUPLICATE_IDENTITY', op: 'update-check', atMs: 5_000, detail: { partition: '3' } }),
    ]);
    expect(rest).toEqual([]);
    expect(a).toMatchObject({
      type: 'CLONED_IDENTITY',
      severity: 'critical',
      tenantId: TENANT,
      deviceId: dev(1),
      atMs: 5_000,
    });
    expect(a?.evidence).toMatchObject({
      source: 'service',
      op: 'update-check',
      code: 'DUPLICATE_IDENTITY',
      detail_partition: '3',
    });
    expect(a?.message).toMatch(/identity key is in use on two devices/);
  });

  it('cloned identity - a DUPLICATE_IDENTITY attestation names both boots', () => {
    const alerts = run([
      attestation({ atMs: 0, bootIdHex: BOOT_X, bootCount: 7 }),
      attestation({ atMs: MIN, ok: false, code: 'DUPLICATE_IDENTITY', bootIdHex: BOOT_Y, bootCount: 3 }),
    ]);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.evidence).toMatchObject({
      op: 'attest',
      boot_id_a: BOOT_X,
      boot_count_a: '7',
      boot_id_b: BOOT_Y,
      boot_count_b: '3',
    });
  });

  it('cloned identity - two accepted boots whose count does not advance raise an alert', () => {
    for (const countB of [10, 9, 0]) {
      const alerts = run([
        attestation({ atMs: 0, bootIdHex: BOOT_X, bootCount: 10 }),
        attestation({ atMs: HOUR, bootIdHex: BOOT_Y, bootCount: countB }),
      ]);
      expect(alerts).toHaveLength(1);
      expect(alerts[0]).toMatchObject({ type: 'CLONED_IDENTITY', deviceId: dev(1), atMs: HOUR });
      expect(alerts[0]?.evidence).toMatchObject({
        source: 'boot-sequence',
        boot_id_a: BOOT_X,
        boot_count_a: '10',
        at_ms_a: '0',
        boot_id_b: BOOT_Y,
        boot_count_b: String(countB),
        at_ms_b: String(HOUR),
      });
    }
  });

  it('cloned identity - an advancing count, a re-attestation or a gap beyond the window raise nothing', () => {
    const first = attestation({ atMs: 0, bootIdHex: BOOT_X, bootCount: 10 });
    expect(run([first, attestation({ atMs: HOUR, bootIdHex: BOOT_Y, bootCount: 11 })])).toEqual([]);
    expect(run([first, attestation({ atMs: HOUR, bootIdHex: BOOT_X, bootCount: 10 })])).toEqual([]);
    const late = attestation({ atMs: 24 * HOUR + 1, bootIdHex: BOOT_Y, bootCount: 10 });
    expect(run([first, late])).toEqual([]);
    expect(run([first, { ...late, atMs: 24 * HOUR }])).toHaveLength(1); // the window is inclusive
  });

  it('cloned identity - a rejected attestation carrying an old boot (a replay) is not compared', () => {
    const alerts = run([
      attestation({ atMs: 0, bootIdHex: BOOT_X, bootCount: 10 }),
      attestation({ atMs: MIN, ok: false, code: 'NONCE_REUSED', bootIdHex: BOOT_Y, bootCount: 4 }),
    ]);
    expect(alerts.filter((a) => a.type === 'CLONED_IDENTITY')).toEqual([]);
  });

  it('cloned identity - boots arriving out of order are compared by event time', () => {
    // The later boot (count 11) arrives first: in time order the counts advance, no clone.
    expect(
      run([
        attestation({ atMs: HOUR, bootIdHex: BOOT_Y, bootCount: 11 }),
        attestation({ atMs: 0, bootIdHex: BOOT_X, bootCount: 10 }),
      ]),
    ).toEqual([]);
    // In time order count 12 is followed by count 11 with another boot id: a clone.
    const alerts = run([
      attestation({ atMs: HOUR, bootIdHex: BOOT_Y, bootCount: 11 }),
      attestation({ atMs: 0, bootIdHex: BOOT_X, bootCount: 12 }),
    ]);
    expect(alerts[0]?.evidence).toMatchObject({ boot_count_a: '12', boot_count_b: '11' });
  });
});

describe('replayed request', () => {
  it('replayed request - NONCE_REUSED and REPLAYED rejections raise a high alert with op, code and count', () => {
    for (const code of ['NONCE_REUSED', 'REPLAYED']) {
      const [a] = run([rejection({ code, op: 'update-check', atMs: 42 })]);
      expect(a).toMatchObject({ type: 'REPLAYED_REQUEST', severity: 'high', deviceId: dev(1), atMs: 42 });
      expect(a?.evidence).toMatchObject({
        op: 'update-check',
        code,
        count: '1',
        window_ms: String(10 * MIN),
      });
    }
  });

  it('replayed request - an attestation rejected with NONCE_REUSED counts as a replay of attest', () => {
    const [a] = run([attestation({ ok: false, code: 'NONCE_REUSED' })]);
    expect(a?.evidence).toMatchObject({ op: 'attest', code: 'NONCE_REUSED' });
  });

  it('replayed request - codes listed in replayCodes count too, other codes do not', () => {
    expect(run([rejection({ code: 'BAD_MAC' })])).toEqual([]);
    expect(run([rejection({ code: 'BAD_MAC' })], { replayCodes: ['BAD_MAC'] })).toHaveLength(1);
  });

  it('replayed request - nothing just below replayMinEvents, an alert at it', () => {
    const config = { replayMinEvents: 3 };
    const two = [rejection({ atMs: 0 }), rejection({ atMs: MIN })];
    expect(run(two, config)).toEqual([]);
    const alerts = run([...two, rejection({ atMs: 2 * MIN })], config);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.evidence['count']).toBe('3');
    // Replays older than the window no longer count.
    expect(run([...two, rejection({ atMs: 11 * MIN })], config)).toEqual([]);
  });
});

describe('measurement drift', () => {
  const unknown = [{ stage: 'os-kernel', digestHex: 'de'.repeat(32) }];
  const drifting = (n: number, atMs = n * MIN) =>
    attestation({
      deviceId: dev(n),
      atMs,
      ok: false,
      code: 'MEASUREMENT_MISMATCH',
      unknownMeasurements: unknown,
    });

  it('measurement drift - three devices with one unknown digest raise a fleet-level alert', () => {
    const alerts = run([drifting(1), drifting(2), drifting(3)]);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      type: 'MEASUREMENT_DRIFT',
      severity: 'high',
      tenantId: TENANT,
      deviceId: '',
      atMs: 3 * MIN,
    });
    expect(alerts[0]?.evidence).toMatchObject({
      os_version: '25.04',
      stage: 'os-kernel',
      digest: 'de'.repeat(32),
      devices: '3',
      example_devices: [dev(1), dev(2), dev(3)].join(','),
      first_seen_ms: String(MIN),
      window_ms: String(24 * HOUR),
    });
  });

  it('measurement drift - two devices, or one device three times, raise nothing', () => {
    expect(run([drifting(1), drifting(2)])).toEqual([]);
    expect(run([drifting(1, 0), drifting(1, MIN), drifting(1, 2 * MIN)])).toEqual([]);
  });

  it('measurement drift - devices outside the window, tenant or OS version do not add up', () => {
    expect(run([drifting(1, 0), drifting(2, 0), drifting(3, 24 * HOUR + 1)])).toEqual([]);
    expect(run([drifting(1), drifting(2), { ...drifting(3), tenantId: OTHER_TENANT }])).toEqual([]);
    expect(run([drifting(1), drifting(2), { ...drifting(3), osVersion: '25.10' }])).toEqual([]);
  });

  it('measurement drift - accepted evidence counts, evidence that failed its signature does not', () => {
    const ok = (n: number) => ({ ...drifting(n), ok: true, code: null });
    expect(run([ok(1), ok(2), ok(3)])).toHaveLength(1);
    const forged = { ...drifting(3), code: 'BAD_SIGNATURE' as const };
    expect(run([drifting(1), drifting(2), forged])).toEqual([]);
  });
});

describe('crash burst after update', () => {
  const install = (n: number, atMs = 0) => updateResult({ deviceId: dev(n), atMs });
  const crashed = (n: number, atMs: number, over: Parameters<typeof crash>[0] = {}) =>
    errorReport([crash({ atMs, ...over })], { deviceId: dev(n), atMs: atMs + HOUR });

  it('crash burst after update - three updated devices crashing raise an alert about the deployment', () => {
    const alerts = run([
      install(1),
      install(2),
      install(3),
      crashed(1, MIN),
      crashed(2, MIN),
      crashed(3, 2 * MIN),
    ]);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      type: 'CRASH_BURST_AFTER_UPDATE',
      severity: 'high',
      tenantId: TENANT,
      deviceId: '',
      atMs: 2 * MIN,
    });
    expect(alerts[0]?.evidence).toMatchObject({
      deployment_id: 'd-0000000000000001',
      component: 'blinky',
      version: '1.1.0',
      updated_devices: '3',
      crashing_devices: '3',
      crashes: '3',
      window_ms: String(HOUR),
    });
    expect(alerts[0]?.message).toMatch(/halt the deployment/);
  });

  it('crash burst after update - nothing just below crashMinDevices or the crash rate', () => {
    // Two crashing devices (one of them twice): rate 3/3 but only 2 devices.
    const twoDevices = [
      install(1),
      install(2),
      install(3),
      crashed(1, MIN),
      crashed(1, 2 * MIN),
      crashed(2, MIN),
    ];
    expect(run(twoDevices)).toEqual([]);
    // Three crashing devices of four updated: 3 crashes < 1 × 4; one more crash reaches the rate.
    const lowRate = [
      install(1),
      install(2),
      install(3),
      install(4),
      crashed(1, MIN),
      crashed(2, MIN),
      crashed(3, MIN),
    ];
    expect(run(lowRate)).toEqual([]);
    const alerts = run([...lowRate, crashed(3, 2 * MIN)]);
    expect(alerts[0]?.evidence).toMatchObject({ updated_devices: '4', crashing_devices: '3', crashes: '4' });
  });

  it('crash burst after update - crashes that are not the update’s do not count', () => {
    const updated = [
      install(1, HOUR),
      install(2, HOUR),
      install(3, HOUR),
      crashed(1, HOUR + MIN),
      crashed(2, HOUR + MIN),
    ];
    const notIt: Array<[string, SecurityEvent]> = [
      ['before the install', crashed(3, HOUR - MIN)],
      ['at the install', crashed(3, HOUR)],
      ['after the window', crashed(3, 2 * HOUR + 1)],
      ['exit code 0', crashed(3, HOUR + MIN, { exitCode: 0 })],
      ['an app exit', crashed(3, HOUR + MIN, { kind: 'app-exit' })],
      ['another app', crashed(3, HOUR + MIN, { component: 'other' })],
      ['another version', crashed(3, HOUR + MIN, { version: '1.0.0' })],
      ['an OS crash', crashed(3, HOUR + MIN, { kind: 'os-crash', component: 'os', version: '25.04' })],
      ['an un-updated device', crashed(4, HOUR + MIN)],
    ];
    for (const [why, e] of notIt) expect(run([...updated, e]), why).toEqual([]);
    expect(run([...updated, crashed(3, 2 * HOUR)])).toHaveLength(1); // the window is inclusive
    expect(run([...updated, crashed(3, HOUR + MIN, { version: '' })])).toHaveLength(1); // unknown version
  });

  it('crash burst after update - a report delivered twice counts once', () => {
    const report = crashed(3, MIN);
    expect(run([install(1), install(2), install(3), crashed(1, MIN), report, report])).toEqual([]);
  });

  it('crash burst after update - a device rolled back is no longer followed', () => {
    const rolledBack = updateResult({ deviceId: dev(3), atMs: MIN, outcome: 'rolled-back' });
    expect(
      run([
        install(1),
        install(2),
        install(3),
        crashed(1, MIN),
        crashed(2, MIN),
        rolledBack,
        crashed(3, 2 * MIN),
      ]),
    ).toEqual([]);
  });

  it('crash burst after update - OS crashes count against an OS deployment', () => {
    const os = (n: number) =>
      updateResult({ deviceId: dev(n), component: 'os', version: '25.10', deploymentId: 'd-os' });
    const osCrash = (n: number) =>
      errorReport([crash({ kind: 'os-crash', component: 'os', version: '25.10', exitCode: 0, atMs: MIN })], {
        deviceId: dev(n),
      });
    const alerts = run([os(1), os(2), os(3), osCrash(1), osCrash(2), osCrash(3)]);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.evidence).toMatchObject({ deployment_id: 'd-os', component: 'os', crashes: '3' });
  });
});

describe('device flooding', () => {
  const burst = (n: number, device = dev(1)) =>
    Array.from({ length: n }, (_, i) => request({ deviceId: device, atMs: i * 100, op: 'update-chunk' }));

  it('device flooding - one more request than floodMaxRequests within the window raises a medium alert', () => {
    const alerts = run(burst(121));
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      type: 'DEVICE_FLOODING',
      severity: 'medium',
      deviceId: dev(1),
      atMs: 12_000,
    });
    expect(alerts[0]?.evidence).toMatchObject({
      op: 'update-chunk',
      requests: '121',
      max_requests: '120',
      window_ms: '60000',
    });
  });

  it('device flooding - exactly floodMaxRequests, or many requests spread out, raise nothing', () => {
    expect(run(burst(120))).toEqual([]);
    // 500 requests at 0.6 s apart: about 100 per minute.
    expect(run(Array.from({ length: 500 }, (_, i) => request({ atMs: i * 600 })))).toEqual([]);
  });

  it('device flooding - requests of many devices do not add up', () => {
    const many = Array.from({ length: 1_000 }, (_, i) => request({ deviceId: dev(i % 10), atMs: i }));
    expect(run(many)).toEqual([]);
  });
});
