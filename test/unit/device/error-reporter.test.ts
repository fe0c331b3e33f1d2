/**
 * The device's error reporting, without a network: the device logic runs against a manual clock,
 * a real ErrorRecorder plays the shell's error log, and a scripted service answers attestations
 * and uploads (or holds an answer back, as a lost reply).
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_DEVICE_ERROR_BEHAVIOUR,
  RETRYABLE_ERROR_REPORT_CODES,
  backoffDelay,
  crashEvent,
  crashSources,
  firstUploadDelay,
  initialDeviceState,
  transition,
} from '../../../actors/device/index.js';
import type {
  DeviceBehaviour,
  DeviceErrorBehaviour,
  DeviceEvent,
  DeviceMessage,
  DeviceProfile,
  ErrorUploadOutcome,
  StepOutcome,
} from '../../../actors/device/index.js';
import { createManualClock, createRng } from '../../../actors/runtime/index.js';
import { appImage, osImages } from '../../../actors/security-core/index.js';
import { DAY_MS, ErrorRecorder } from '../../../services/error-reports/index.js';
import type { ErrorEvent, ErrorReport } from '../../../services/error-reports/index.js';
import { parseDeviceId } from '../../../proto/codec/index.js';
import type { DeviceId, ErrorReportAckMsg, RejectCode } from '../../../proto/codec/index.js';

const DEVICE_ID = parseDeviceId('5a'.repeat(64)) as DeviceId;
const START = 1_700_000_000_000;
const HOUR = 3_600_000;

const BEHAVIOUR: DeviceBehaviour = {
  attestEveryMs: DAY_MS,
  heartbeatEveryMs: DAY_MS,
  retry: { initialMs: 1_000, maxMs: 60_000, multiplier: 2, jitter: 0 },
  replayAfterMs: HOUR,
  renewBeforeMs: 0,
};

function profile(apps: { name: string; version: string }[] = [{ name: 'blinky', version: '1.0.0' }]) {
  const p: DeviceProfile = {
    deviceId: DEVICE_ID,
    osVersion: '25.10',
    securityVersion: 5,
    images: [...osImages('25.10'), ...apps.map((a) => appImage(a))],
    apps,
    fault: null,
    clockOffsetMs: 0,
  };
  return p;
}

const errors = (e: Partial<DeviceErrorBehaviour>): DeviceBehaviour => ({
  ...BEHAVIOUR,
  errors: { ...DEFAULT_DEVICE_ERROR_BEHAVIOUR, ...e },
});

const ack = (reportId: string, duplicate = false): StepOutcome<ErrorReportAckMsg> => ({
  ok: true,
  value: { reportId, duplicate },
});
const refusal = (code: RejectCode, retryAfterMs?: number): StepOutcome<ErrorReportAckMsg> => ({
  ok: false,
  failure: {
    kind: 'rejected',
    rejection: { code, message: code, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
  },
});
const lost: StepOutcome<ErrorReportAckMsg> = {
  ok: false,
  failure: { kind: 'transport', code: 'TIMEOUT', message: 'no reply' },
};

interface Upload {
  readonly report: ErrorReport;
  readonly atMs: number;
}

/**
 * One device and its surroundings: every schedule effect becomes a manual-clock timer, the
 * security core and the attestation service answer at once (`attest` decides acceptance), the
 * error log is a real ErrorRecorder, and `service` answers each upload; `null` holds the answer
 * back in `held` for the test to deliver (or drop).
 */
function device(opts: {
  behaviour: DeviceBehaviour;
  profile?: DeviceProfile;
  seed?: string;
  attest?: () => RejectCode | null;
  service?: (report: ErrorReport, n: number) => StepOutcome<ErrorReportAckMsg> | null;
}) {
  const p = opts.profile ?? profile();
  const clock = createManualClock(START);
  const rng = createRng(opts.seed ?? 'errors');
  const log = new ErrorRecorder({ deviceId: DEVICE_ID, periodMs: 1 });
  const uploads: Upload[] = [];
  const observed: DeviceEvent[] = [];
  const held: DeviceMessage[] = [];
  const mailbox: DeviceMessage[] = [];
  let state = initialDeviceState(p);
  let session = false;
  let draws = 0;
  let draining = false;
  const random = (): number => {
    draws++;
    return rng.next();
  };

  function answer(attempt: number, outcome: ErrorUploadOutcome): DeviceMessage {
    return { type: 'device.errors-result', attempt, outcome };
  }

  function tell(msg: DeviceMessage): void {
    mailbox.push(msg);
    if (draining) return;
    draining = true;
    for (let m = mailbox.shift(); m !== undefined; m = mailbox.shift()) receive(m);
    draining = false;
  }

  function receive(msg: DeviceMessage): void {
    const env = { now: clock.now(), wallNow: 0, random, behaviour: opts.behaviour, profile: p };
    if (msg.type === 'device.attest-result') session ||= msg.outcome.ok;
    const [next, effects] = transition(state, msg, env);
    state = next;
    for (const fx of effects) {
      switch (fx.kind) {
        case 'boot-core':
          mailbox.push({
            type: 'device.core-booted',
            deviceId: DEVICE_ID,
            bootId: new Uint8Array(16),
            bootCount: 1,
          });
          break;
        case 'connect':
          mailbox.push({ type: 'device.connected' });
          break;
        case 'request-challenge': {
          const code = opts.attest?.() ?? null;
          mailbox.push({
            type: 'device.challenge-result',
            epoch: fx.epoch,
            outcome:
              code === null
                ? { ok: true, value: { nonce: new Uint8Array(32), issuedAtMs: 0, expiresAtMs: 0 } }
                : { ok: false, failure: { kind: 'rejected', rejection: { code, message: code } } },
            sentAtWall: 0,
            receivedAtWall: 0,
          });
          break;
        }
        case 'sign':
          mailbox.push({
            type: 'device.evidence',
            epoch: fx.epoch,
            request: { evidence: new Uint8Array(1), signature: new Uint8Array(64) },
          });
          break;
        case 'submit':
          mailbox.push({
            type: 'device.attest-result',
            epoch: fx.epoch,
            outcome: {
              ok: true,
              value: {
                updateCertificate: new Uint8Array(1),
                clientCertificate: new Uint8Array(1),
                tenantCa: new Uint8Array(1),
                notAfterMs: clock.now() + 2 * DAY_MS,
                session: {
                  sessionId: new Uint8Array(16),
                  serverPublicKey: new Uint8Array(65),
                  wrappedKey: new Uint8Array(32),
                  expiresAtMs: clock.now() + 2 * DAY_MS,
                },
              },
            },
            sentAtWall: 0,
            receivedAtWall: 0,
          });
          break;
        case 'schedule':
          clock.setTimeout(() => tell(fx.msg), fx.delayMs);
          break;
        case 'record-error':
          log.record(fx.event);
          break;
        case 'release-error-report':
          log.acknowledged(fx.reportId);
          break;
        case 'upload-errors': {
          // As the shell: no report is cut before there is a session to send it with.
          const report = session ? log.next(fx.deviceTimeMs) : null;
          if (!session) mailbox.push(answer(fx.attempt, { kind: 'no-session' }));
          else if (report === null) mailbox.push(answer(fx.attempt, { kind: 'nothing' }));
          else {
            uploads.push({ report, atMs: clock.now() });
            const reply =
              opts.service === undefined ? ack(report.reportId) : opts.service(report, uploads.length);
            const msg = answer(fx.attempt, {
              kind: 'sent',
              reportId: report.reportId,
              events: report.events.length,
              reply: reply ?? lost,
            });
            if (reply === null) held.push(msg);
            else mailbox.push(msg);
          }
          break;
        }
        case 'observe':
          observed.push(fx.event);
          break;
        case 'heartbeat':
          break;
        default:
          fx satisfies never;
      }
    }
  }

  const reports = (): { result: string; reportId: string; events: number; code: string }[] =>
    observed.flatMap((e) =>
      e.kind === 'error-report'
        ? [{ result: e.result, reportId: e.reportId, events: e.events, code: e.code }]
        : [],
    );
  const recorded = (): string[] =>
    observed.flatMap((e) => (e.kind === 'error-recorded' ? [e.errorKind] : []));
  return {
    clock,
    tell,
    log,
    uploads,
    observed,
    held,
    reports,
    recorded,
    state: () => state,
    draws: () => draws,
    /** Powers the device on; it boots, attests (if the service lets it) and stays on. */
    start: () => tell({ type: 'device.power-on' }),
  };
}

describe('device error reports', () => {
  it('error reports - a failed update goes out at the device-ID phase of the day, acknowledged once; then idle', () => {
    const d = device({ behaviour: errors({}) });
    d.start();
    expect(d.state().phase).toBe('attested');
    d.tell({
      type: 'device.update-failed',
      component: 'app',
      name: 'blinky',
      version: '1.1.0',
      code: 'failed: INSTALL_FAILED',
    });
    expect(d.recorded()).toEqual(['update-failed']);
    const phase = firstUploadDelay(DEVICE_ID, DAY_MS);
    d.clock.advance(phase - 1);
    expect(d.uploads).toHaveLength(0);
    d.clock.advance(1);
    expect(d.uploads).toHaveLength(1);
    const report = d.uploads[0]!.report;
    expect(report.events).toEqual([
      {
        kind: 'update-failed',
        component: 'blinky',
        version: '1.1.0',
        exitCode: 0,
        atMs: START,
        detail: 'failed: INSTALL_FAILED',
      },
    ]);
    expect(d.reports()).toEqual([{ result: 'acked', reportId: report.reportId, events: 1, code: 'OK' }]);
    expect(d.log.pending()).toBe(0);
    expect(d.state().errors.upload).toBe('idle');
    // Nothing recorded since: the next days send nothing.
    d.clock.advance(3 * DAY_MS);
    expect(d.uploads).toHaveLength(1);
    expect(d.state().errors.nextUploadAtMs).toBe(START + phase + 4 * DAY_MS);
  });

  it('error reports - an OS update failure names the os component', () => {
    const d = device({ behaviour: errors({}) });
    d.start();
    d.tell({
      type: 'device.update-failed',
      component: 'os',
      name: 'azure-sphere-os',
      version: '26.01',
      code: 'rolled-back: BOOT_FAILED',
    });
    d.clock.advance(DAY_MS);
    expect(d.uploads[0]?.report.events.map((e) => [e.kind, e.component, e.version])).toEqual([
      ['update-failed', 'os', '26.01'],
    ]);
  });

  it('error reports - retryable refusals and lost replies repeat the same report with the retry policy until acknowledged', () => {
    const answers = [refusal('BAD_MAC'), lost, refusal('SESSION_EXPIRED'), refusal('OVERLOADED')];
    const d = device({
      behaviour: errors({}),
      service: (r, n) => answers[n - 1] ?? ack(r.reportId),
    });
    d.start();
    d.tell({ type: 'device.update-failed', component: 'app', name: 'blinky', version: '2', code: 'x' });
    d.clock.advance(DAY_MS);
    expect(d.uploads).toHaveLength(5);
    const id = d.uploads[0]!.report.reportId;
    expect(new Set(d.uploads.map((u) => u.report.reportId))).toEqual(new Set([id]));
    expect(d.reports().map((r) => `${r.result}:${r.code}`)).toEqual([
      'retry:BAD_MAC',
      'retry:TIMEOUT',
      'retry:SESSION_EXPIRED',
      'retry:OVERLOADED',
      'acked:OK',
    ]);
    // Without jitter the waits are the device's backoff curve: 1 s, 2 s, 4 s, 8 s.
    const gaps = d.uploads.slice(1).map((u, i) => u.atMs - d.uploads[i]!.atMs);
    expect(gaps).toEqual([1, 2, 3, 4].map((n) => backoffDelay(n, BEHAVIOUR.retry, () => 0.5)));
    expect(d.log.pending()).toBe(0);
    expect(d.state().errors.failures).toBe(0);
  });

  it('error reports - RATE_LIMITED is repeated no earlier than the service says', () => {
    const d = device({
      behaviour: errors({}),
      service: (r, n) => (n === 1 ? refusal('RATE_LIMITED', START + 10 * HOUR) : ack(r.reportId)),
    });
    d.start();
    d.tell({ type: 'device.update-failed', component: 'app', name: 'blinky', version: '2', code: 'x' });
    d.clock.advance(DAY_MS);
    expect(d.uploads).toHaveLength(2);
    expect(d.uploads[1]!.atMs).toBeGreaterThanOrEqual(START + 10 * HOUR);
  });

  it('error reports - a refusal for good drops that report and the next report still goes out', () => {
    // 1,001 events: two reports (at most 1,000 events each); the service refuses the first.
    const d = device({
      behaviour: errors({}),
      service: (r, n) => (n === 1 ? refusal('MALFORMED_INPUT') : ack(r.reportId)),
    });
    d.start();
    for (let i = 0; i < 1001; i++)
      d.tell({ type: 'device.update-failed', component: 'app', name: 'blinky', version: '2', code: `n${i}` });
    d.clock.advance(DAY_MS);
    expect(d.uploads.map((u) => u.report.events.length)).toEqual([1000, 1]);
    const [first, second] = d.uploads.map((u) => u.report.reportId);
    expect(first).not.toBe(second);
    expect(d.reports().map((r) => `${r.result}:${r.code}`)).toEqual(['refused:MALFORMED_INPUT', 'acked:OK']);
    expect(d.log.pending()).toBe(0);
    expect(RETRYABLE_ERROR_REPORT_CODES.has('MALFORMED_INPUT')).toBe(false);
  });

  it('error reports - a duplicate acknowledgement releases the report like an acknowledgement', () => {
    const d = device({ behaviour: errors({}), service: (r) => ack(r.reportId, true) });
    d.start();
    d.tell({ type: 'device.update-failed', component: 'app', name: 'blinky', version: '2', code: 'x' });
    d.clock.advance(DAY_MS);
    expect(d.reports().map((r) => r.result)).toEqual(['duplicate']);
    expect(d.log.pending()).toBe(0);
  });

  it('error reports - an acknowledgement of another report ID is no acknowledgement: the report is repeated', () => {
    const d = device({
      behaviour: errors({}),
      service: (r, n) => (n === 1 ? ack('er-somebody-else') : ack(r.reportId)),
    });
    d.start();
    d.tell({ type: 'device.update-failed', component: 'app', name: 'blinky', version: '2', code: 'x' });
    d.clock.advance(DAY_MS);
    expect(d.reports().map((r) => `${r.result}:${r.code}`)).toEqual(['retry:BAD_REPLY', 'acked:OK']);
  });

  it('error reports - refused attestations are recorded; without a session the upload waits for the first attestation', () => {
    let refusals = 3;
    const d = device({
      behaviour: errors({ uploadEveryMs: HOUR }),
      attest: () => (refusals-- > 0 ? 'MEASUREMENT_MISMATCH' : null),
    });
    d.start();
    // Refused at once; the retries (1 s, 2 s, 4 s) follow.
    expect(d.state().phase).toBe('backoff');
    d.clock.advance(firstUploadDelay(DEVICE_ID, HOUR));
    expect(d.state().phase).toBe('attested');
    // Attested after the third refusal, before the hourly upload: it went out with that session.
    expect(d.recorded()).toEqual(['attestation-failed', 'attestation-failed', 'attestation-failed']);
    expect(d.uploads).toHaveLength(1);
    expect(d.uploads[0]!.report.events.map((e) => [e.component, e.version, e.detail])).toEqual([
      ['os', '25.10', 'challenge: MEASUREMENT_MISMATCH'],
      ['os', '25.10', 'challenge: MEASUREMENT_MISMATCH'],
      ['os', '25.10', 'challenge: MEASUREMENT_MISMATCH'],
    ]);
  });

  it('error reports - no session at the upload time: waiting, then sent right after the attestation', () => {
    let accept = false;
    const d = device({
      behaviour: errors({ uploadEveryMs: HOUR }),
      attest: () => (accept ? null : 'UNKNOWN_DEVICE'),
    });
    d.start();
    d.clock.advance(HOUR);
    expect(d.uploads).toHaveLength(0);
    expect(d.state().errors.upload).toBe('waiting');
    accept = true;
    d.clock.advance(2 * 60_000); // the next attestation retry (backoff capped at 1 min)
    expect(d.state().phase).toBe('attested');
    // One report with every refusal up to the upload (none is cut before a session exists).
    expect(d.uploads).toHaveLength(1);
    expect(d.uploads[0]!.report.events.length).toBe(d.recorded().length);
    expect(d.reports().map((r) => r.result)).toEqual(['acked']);
  });

  it('error reports - an upload cut off by a power-off is repeated after the next boot and acknowledged as a duplicate', () => {
    const stored = new Set<string>();
    let hold = true;
    const d = device({
      behaviour: errors({}),
      service: (r) => {
        if (hold) {
          stored.add(r.reportId); // stored, but the answer never reaches the device
          return null;
        }
        return ack(r.reportId, stored.has(r.reportId));
      },
    });
    d.start();
    d.tell({ type: 'device.update-failed', component: 'app', name: 'blinky', version: '2', code: 'x' });
    d.clock.advance(DAY_MS);
    expect(d.uploads).toHaveLength(1);
    expect(d.state().errors.upload).toBe('sending');
    d.tell({ type: 'device.power-off' });
    hold = false;
    for (const late of d.held.splice(0)) d.tell(late); // the lost answer, late: ignored
    expect(d.reports()).toEqual([]);
    expect(d.state().errors.upload).toBe('waiting');
    d.tell({ type: 'device.power-on' });
    expect(d.uploads.map((u) => u.report.reportId)).toEqual([
      d.uploads[0]!.report.reportId,
      d.uploads[0]!.report.reportId,
    ]);
    expect(d.reports().map((r) => r.result)).toEqual(['duplicate']);
    expect(d.log.pending()).toBe(0);
  });
});

describe('device crashes', () => {
  it('crashes - with no crash rates nothing crashes and no random number is drawn', () => {
    const d = device({ behaviour: BEHAVIOUR });
    d.start();
    d.clock.advance(30 * DAY_MS);
    expect(d.recorded()).toEqual([]);
    expect(d.draws()).toBe(0);
  });

  it('crashes - sources: app rates spread over the apps, crashy images add to their app or the OS, unnamable apps skipped', () => {
    const firmware = {
      osVersion: '25.10',
      securityVersion: 5,
      images: [],
      apps: [
        { name: 'blinky', version: '1.0.0' },
        { name: 'sensor', version: '2.0.0' },
        { name: 'Bad Name', version: '1.0.0' },
      ],
    };
    const sources = crashSources(firmware, {
      ...DEFAULT_DEVICE_ERROR_BEHAVIOUR,
      appCrashesPerDay: 2,
      appExitsPerDay: 0,
      osCrashesPerDay: 0.5,
      crashyImages: [
        { kind: 'app', name: 'sensor', version: '2.0.0', crashesPerDay: 4 },
        { kind: 'app', name: 'sensor', version: '3.0.0', crashesPerDay: 100 },
        { kind: 'os', name: 'azure-sphere-os', version: '25.10', crashesPerDay: 1 },
      ],
    });
    expect(sources).toEqual([
      { kind: 'app-crash', component: 'blinky', version: '1.0.0', perDay: 1 },
      { kind: 'app-crash', component: 'sensor', version: '2.0.0', perDay: 1 },
      { kind: 'app-crash', component: 'sensor', version: '2.0.0', perDay: 4 },
      { kind: 'os-crash', component: 'os', version: '25.10', perDay: 0.5 },
      { kind: 'os-crash', component: 'os', version: '25.10', perDay: 1 },
    ]);
  });

  it('crashes - events: a crash exits with 128 + signal, an exit with a code 0-255, both restarted by the OS', () => {
    const rng = createRng('events');
    const app = { component: 'blinky', version: '1.0.0', perDay: 1 };
    for (let i = 0; i < 200; i++) {
      const c: ErrorEvent = crashEvent({ kind: 'app-crash', ...app }, 5, () => rng.next());
      expect([132, 134, 135, 136, 139]).toContain(c.exitCode);
      expect(c.detail).toMatch(/^SIG[A-Z]+; restarted by the OS$/);
      const x = crashEvent({ kind: 'app-exit', ...app }, 5, () => rng.next());
      expect(x.exitCode).toBeGreaterThanOrEqual(0);
      expect(x.exitCode).toBeLessThanOrEqual(255);
      expect(x.detail).toBe(`exited with code ${x.exitCode}; restarted by the OS`);
    }
  });

  it('crashes - over simulated days the counts follow the rates, and the same seed gives the same events', () => {
    const run = (seed: string): ErrorEvent[] => {
      const d = device({
        behaviour: errors({ appCrashesPerDay: 3, appExitsPerDay: 1 }),
        profile: profile([
          { name: 'blinky', version: '1.0.0' },
          { name: 'sensor', version: '2.0.0' },
        ]),
        seed,
      });
      d.start();
      d.clock.advance(200 * DAY_MS);
      expect(d.log.pending()).toBeLessThan(20); // uploaded daily
      return d.uploads.flatMap((u) => u.report.events);
    };
    const events = run('rates');
    const count = (kind: string, component?: string) =>
      events.filter((e) => e.kind === kind && (component === undefined || e.component === component)).length;
    // Poisson: 600 expected app crashes (σ ≈ 24), 200 exits (σ ≈ 14).
    expect(count('app-crash')).toBeGreaterThan(500);
    expect(count('app-crash')).toBeLessThan(700);
    expect(count('app-exit')).toBeGreaterThan(140);
    expect(count('app-exit')).toBeLessThan(260);
    expect(count('app-crash', 'blinky')).toBeGreaterThan(200);
    expect(count('app-crash', 'sensor')).toBeGreaterThan(200);
    expect(count('os-crash')).toBe(0);
    expect(run('rates')).toEqual(events);
    expect(run('other')).not.toEqual(events);
  });

  it('crashes - installing a crashy app release makes the device crash with that version', () => {
    const d = device({
      behaviour: errors({
        crashyImages: [{ kind: 'app', name: 'blinky', version: '1.3.0', crashesPerDay: 12 }],
      }),
    });
    d.start();
    d.clock.advance(5 * DAY_MS);
    expect(d.recorded()).toEqual([]);
    d.tell({
      type: 'device.firmware-installed',
      firmware: {
        osVersion: '25.10',
        securityVersion: 5,
        images: [],
        apps: [{ name: 'blinky', version: '1.3.0' }],
      },
    });
    d.clock.advance(5 * DAY_MS);
    const crashes = d.uploads.flatMap((u) => u.report.events);
    expect(crashes.length).toBeGreaterThan(30);
    expect(new Set(crashes.map((e) => `${e.kind} ${e.component} ${e.version}`))).toEqual(
      new Set(['app-crash blinky 1.3.0']),
    );
  });

  it('crashes - an OS crash reboots the device: off, booted again after osCrashRebootMs, attested again', () => {
    const d = device({ behaviour: errors({ osCrashesPerDay: 4, osCrashRebootMs: 60_000 }) });
    d.start();
    d.clock.advance(10 * DAY_MS);
    const crashes = d.uploads.flatMap((u) => u.report.events).filter((e) => e.kind === 'os-crash');
    const offs = d.observed.filter((e) => e.kind === 'phase' && e.to === 'off').length;
    const attested = d.observed.filter((e) => e.kind === 'attested').length;
    expect(crashes.length).toBeGreaterThan(10);
    expect(crashes.every((e) => e.component === 'os' && e.version === '25.10')).toBe(true);
    expect(offs).toBeGreaterThanOrEqual(crashes.length);
    expect(attested).toBeGreaterThan(crashes.length);
  });
});
