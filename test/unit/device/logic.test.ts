import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { backoffDelay, initialDeviceState, transition } from '../../../actors/device/index.js';
import type {
  DeviceBehaviour,
  DeviceEffect,
  DeviceEnv,
  DeviceFault,
  DeviceMessage,
  DeviceProfile,
  DeviceState,
} from '../../../actors/device/index.js';
import { createManualClock, createRng } from '../../../actors/runtime/index.js';
import { osImages } from '../../../actors/security-core/index.js';
import { parseDeviceId } from '../../../proto/codec/index.js';
import type { AttestRequestMsg, DeviceId } from '../../../proto/codec/index.js';

const DEVICE_ID = parseDeviceId('d'.repeat(128)) as DeviceId;

const BEHAVIOUR: DeviceBehaviour = {
  attestEveryMs: 3_600_000,
  heartbeatEveryMs: 60_000,
  retry: { initialMs: 1_000, maxMs: 60_000, multiplier: 2, jitter: 0.2 },
  replayAfterMs: 5_000,
  renewBeforeMs: 60_000,
};

function profile(fault: DeviceFault | null = null, clockOffsetMs = 0): DeviceProfile {
  return {
    deviceId: DEVICE_ID,
    osVersion: '25.10',
    securityVersion: 5,
    images: osImages('25.10'),
    fault,
    clockOffsetMs,
  };
}

/** A fixed environment; `random` is seeded so results are reproducible. */
function env(p: DeviceProfile, now = 1_000_000, wallNow = 50, seed = 'device-logic'): DeviceEnv {
  const rng = createRng(seed);
  return { now, wallNow, random: () => rng.next(), behaviour: BEHAVIOUR, profile: p };
}

const ofKind = <K extends DeviceEffect['kind']>(
  effects: DeviceEffect[],
  kind: K,
): Extract<DeviceEffect, { kind: K }>[] =>
  effects.filter((e): e is Extract<DeviceEffect, { kind: K }> => e.kind === kind);

const NONCE = new Uint8Array(32).fill(7);
const BOOT_ID = new Uint8Array(16).fill(3);
const REQUEST: AttestRequestMsg = {
  evidence: new Uint8Array([1, 2, 3]),
  signature: new Uint8Array(64).fill(9),
};

function challengeOk(epoch: number): DeviceMessage {
  return {
    type: 'device.challenge-result',
    epoch,
    outcome: { ok: true, value: { nonce: NONCE, issuedAtMs: 0, expiresAtMs: 300_000 } },
    sentAtWall: 100,
    receivedAtWall: 110,
  };
}

function attestOk(epoch: number, notAfterMs = 9_000_000): DeviceMessage {
  return {
    type: 'device.attest-result',
    epoch,
    outcome: {
      ok: true,
      value: {
        updateCertificate: new Uint8Array(1),
        clientCertificate: new Uint8Array(1),
        tenantCa: new Uint8Array(1),
        notAfterMs,
        // The logic never reads the session (the shell opens it); any well-formed one will do.
        session: {
          sessionId: new Uint8Array(16).fill(1),
          serverPublicKey: new Uint8Array(65).fill(4),
          wrappedKey: new Uint8Array(32).fill(2),
          expiresAtMs: notAfterMs,
        },
      },
    },
    sentAtWall: 120,
    receivedAtWall: 150,
  };
}

function transportFail(
  epoch: number,
  code = 'TIMEOUT',
  step: 'challenge' | 'attest' = 'challenge',
): DeviceMessage {
  const outcome = { ok: false as const, failure: { kind: 'transport' as const, code, message: 'no reply' } };
  return step === 'challenge'
    ? { type: 'device.challenge-result', epoch, outcome, sentAtWall: 100, receivedAtWall: 200 }
    : { type: 'device.attest-result', epoch, outcome, sentAtWall: 100, receivedAtWall: 200 };
}

/** Drives a device from off to `challenging` (connected, epoch 1). */
function toChallenging(p: DeviceProfile, e: DeviceEnv = env(p)): DeviceState {
  let [s] = transition(initialDeviceState(p), { type: 'device.power-on' }, e);
  [s] = transition(s, { type: 'device.core-booted', deviceId: DEVICE_ID, bootId: BOOT_ID, bootCount: 1 }, e);
  [s] = transition(s, { type: 'device.connected' }, e);
  expect(s.phase).toBe('challenging');
  return s;
}

/** Drives a device through one full successful attestation. */
function toAttested(p: DeviceProfile, e: DeviceEnv = env(p)): DeviceState {
  let s = toChallenging(p, e);
  [s] = transition(s, challengeOk(s.epoch), e);
  [s] = transition(s, { type: 'device.evidence', epoch: s.epoch, request: REQUEST }, e);
  [s] = transition(s, attestOk(s.epoch), e);
  expect(s.phase).toBe('attested');
  return s;
}

describe('device logic happy path', () => {
  it('device - walks power-on → boot → connect → challenge → sign → submit → attested', () => {
    const p = profile(null, 250);
    const e = env(p, 1_000_000, 50);
    let s = initialDeviceState(p);
    expect(s.phase).toBe('off');
    expect(s.clockOffsetMs).toBe(250);

    let fx: DeviceEffect[];
    [s, fx] = transition(s, { type: 'device.power-on' }, e);
    expect(s.phase).toBe('booting');
    const boot = ofKind(fx, 'boot-core');
    expect(boot).toHaveLength(1);
    expect(boot[0]!.osVersion).toBe('25.10');
    expect(boot[0]!.securityVersion).toBe(5);
    expect(boot[0]!.images).toBe(p.images);
    expect(ofKind(fx, 'observe')[0]!.event).toEqual({ kind: 'phase', from: 'off', to: 'booting' });

    [s, fx] = transition(
      s,
      { type: 'device.core-booted', deviceId: DEVICE_ID, bootId: BOOT_ID, bootCount: 1 },
      e,
    );
    expect(s.phase).toBe('connecting');
    expect(s.bootId).toBe(BOOT_ID);
    expect(ofKind(fx, 'connect')).toHaveLength(1);

    [s, fx] = transition(s, { type: 'device.connected' }, e);
    expect(s.phase).toBe('challenging');
    expect(s.connected).toBe(true);
    expect(s.epoch).toBe(1);
    expect(s.attemptStartedWall).toBe(50);
    expect(ofKind(fx, 'request-challenge')).toEqual([{ kind: 'request-challenge', epoch: 1 }]);

    [s, fx] = transition(s, challengeOk(1), e);
    expect(s.phase).toBe('signing');
    expect(s.challengeMs).toBe(10);
    const sign = ofKind(fx, 'sign');
    expect(sign).toHaveLength(1);
    expect(sign[0]!.epoch).toBe(1);
    expect(sign[0]!.nonce).toBe(NONCE);
    expect(sign[0]!.deviceTimeMs).toBe(1_000_000 + 250);

    [s, fx] = transition(s, { type: 'device.evidence', epoch: 1, request: REQUEST }, e);
    expect(s.phase).toBe('submitting');
    expect(ofKind(fx, 'submit')).toEqual([{ kind: 'submit', epoch: 1, request: REQUEST }]);
    expect(s.captured).toBeNull(); // only replay devices capture

    [s, fx] = transition(s, attestOk(1, 9_000_000), e);
    expect(s.phase).toBe('attested');
    expect(s.certificatesNotAfterMs).toBe(9_000_000);
    expect(s.heartbeating).toBe(true);
    expect(s.failures).toBe(0);
    const schedules = ofKind(fx, 'schedule');
    expect(schedules).toContainEqual({
      kind: 'schedule',
      delayMs: BEHAVIOUR.attestEveryMs,
      msg: { type: 'device.attest-due', power: 1 },
    });
    expect(schedules).toContainEqual({
      kind: 'schedule',
      delayMs: BEHAVIOUR.heartbeatEveryMs,
      msg: { type: 'device.heartbeat-due', power: 1 },
    });
    const attested = ofKind(fx, 'observe').find((o) => o.event.kind === 'attested');
    expect(attested?.event).toEqual({
      kind: 'attested',
      challengeMs: 10,
      attestMs: 30,
      totalMs: 150 - 50,
      notAfterMs: 9_000_000,
      attempt: 1,
    });
  });

  it('device - a second attestation does not start a second heartbeat loop', () => {
    const p = profile();
    const e = env(p);
    let s = toAttested(p, e);
    let fx: DeviceEffect[];
    [s, fx] = transition(s, { type: 'device.attest-due', power: 1 }, e);
    expect(ofKind(fx, 'request-challenge')).toEqual([{ kind: 'request-challenge', epoch: 2 }]);
    [s] = transition(s, challengeOk(2), e);
    [s] = transition(s, { type: 'device.evidence', epoch: 2, request: REQUEST }, e);
    [s, fx] = transition(s, attestOk(2), e);
    const hb = ofKind(fx, 'schedule').filter((x) => x.msg.type === 'device.heartbeat-due');
    expect(hb).toHaveLength(0);
    expect(s.phase).toBe('attested');
  });

  it('device - heartbeat-due sends a heartbeat with device time and reschedules', () => {
    const p = profile(null, -500);
    const e = env(p, 2_000_000);
    const s = toAttested(p, e);
    const [s2, fx] = transition(s, { type: 'device.heartbeat-due', power: 1 }, e);
    expect(s2).toEqual(s);
    expect(fx).toEqual([
      { kind: 'heartbeat', bootId: BOOT_ID, deviceTimeMs: 2_000_000 - 500 },
      {
        kind: 'schedule',
        delayMs: BEHAVIOUR.heartbeatEveryMs,
        msg: { type: 'device.heartbeat-due', power: 1 },
      },
    ]);
  });

  it('device - power-on while already on is ignored', () => {
    const p = profile();
    const s = toChallenging(p);
    const [s2, fx] = transition(s, { type: 'device.power-on' }, env(p));
    expect(s2).toBe(s);
    expect(fx).toEqual([]);
  });

  it('device - transition is pure: same inputs give equal outputs and the input state is untouched', () => {
    const p = profile();
    const s = toChallenging(p);
    const snapshot = structuredClone(s);
    const a = transition(s, transportFail(1), env(p, 5, 5, 'same'));
    const b = transition(s, transportFail(1), env(p, 5, 5, 'same'));
    expect(a).toEqual(b);
    expect(s).toEqual(snapshot);
  });
});

describe('device logic renewal', () => {
  it('device - re-attests renewBefore ahead of certificate expiry when that is sooner than attestEvery', () => {
    const p = profile(null, 0);
    const e = env(p, 1_000_000);
    let s = toChallenging(p, e);
    [s] = transition(s, challengeOk(s.epoch), e);
    [s] = transition(s, { type: 'device.evidence', epoch: s.epoch, request: REQUEST }, e);
    // Certificates valid for 30 min only: the next attempt is due 30 min - renewBefore from now.
    const [, fx] = transition(s, attestOk(s.epoch, 1_000_000 + 1_800_000), e);
    const due = ofKind(fx, 'schedule').filter((x) => x.msg.type === 'device.attest-due');
    expect(due.map((x) => x.delayMs)).toEqual([1_800_000 - BEHAVIOUR.renewBeforeMs]);
  });

  it('device - keeps the attestEvery cadence when certificates outlive it', () => {
    const p = profile(null, 0);
    const e = env(p, 1_000_000);
    let s = toChallenging(p, e);
    [s] = transition(s, challengeOk(s.epoch), e);
    [s] = transition(s, { type: 'device.evidence', epoch: s.epoch, request: REQUEST }, e);
    const [, fx] = transition(s, attestOk(s.epoch, 1_000_000 + 10 * BEHAVIOUR.attestEveryMs), e);
    const due = ofKind(fx, 'schedule').filter((x) => x.msg.type === 'device.attest-due');
    expect(due.map((x) => x.delayMs)).toEqual([BEHAVIOUR.attestEveryMs]);
  });
});

describe('device logic failures', () => {
  it('device - a transport TIMEOUT moves to backoff and schedules backoffDelay(1)', () => {
    const p = profile();
    const s = toChallenging(p);
    const [s2, fx] = transition(s, transportFail(1, 'TIMEOUT'), env(p, 1_000_000, 50, 'fail-seed'));
    expect(s2.phase).toBe('backoff');
    expect(s2.failures).toBe(1);
    expect(s2.connected).toBe(true); // a timeout does not drop the connection
    const r = createRng('fail-seed');
    const expected = backoffDelay(1, BEHAVIOUR.retry, () => r.next());
    expect(ofKind(fx, 'schedule')).toEqual([
      { kind: 'schedule', delayMs: expected, msg: { type: 'device.attest-due', power: 1 } },
    ]);
    expect(ofKind(fx, 'observe').map((o) => o.event)).toContainEqual({
      kind: 'transport-error',
      step: 'challenge',
      code: 'TIMEOUT',
      message: 'no reply',
    });
  });

  it('device - a CLOSED transport failure marks the device disconnected so the retry reconnects', () => {
    const p = profile();
    const e = env(p);
    const s = toChallenging(p, e);
    const [s2] = transition(s, transportFail(1, 'CLOSED'), e);
    expect(s2.connected).toBe(false);
    const [s3, fx] = transition(s2, { type: 'device.attest-due', power: 1 }, e);
    expect(s3.phase).toBe('connecting');
    expect(ofKind(fx, 'connect')).toHaveLength(1);
    expect(s3.epoch).toBe(s2.epoch); // no attempt until connected
  });

  it('device - consecutive failures grow the delay exponentially up to the maximum', () => {
    const p = profile();
    const noJitter: DeviceBehaviour = { ...BEHAVIOUR, retry: { ...BEHAVIOUR.retry, jitter: 0 } };
    const e: DeviceEnv = { ...env(p), behaviour: noJitter };
    let s = toChallenging(p, e);
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      let fx: DeviceEffect[];
      [s, fx] = transition(s, transportFail(s.epoch), e);
      expect(s.failures).toBe(i + 1);
      delays.push(ofKind(fx, 'schedule')[0]!.delayMs);
      [s] = transition(s, { type: 'device.attest-due', power: 1 }, e);
      expect(s.phase).toBe('challenging');
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000]);
  });

  it('device - a success resets the failure count', () => {
    const p = profile();
    const e = env(p);
    let s = toChallenging(p, e);
    [s] = transition(s, transportFail(1), e);
    [s] = transition(s, { type: 'device.attest-due', power: 1 }, e);
    [s] = transition(s, challengeOk(s.epoch), e);
    [s] = transition(s, { type: 'device.evidence', epoch: s.epoch, request: REQUEST }, e);
    const [s2, fx] = transition(s, attestOk(s.epoch), e);
    expect(s2.failures).toBe(0);
    const ev = ofKind(fx, 'observe').find((o) => o.event.kind === 'attested')?.event;
    expect(ev?.kind === 'attested' && ev.attempt).toBe(2);
  });

  it('device - a service rejection records lastRejection and backs off', () => {
    const p = profile();
    const e = env(p);
    let s = toChallenging(p, e);
    [s] = transition(s, challengeOk(1), e);
    [s] = transition(s, { type: 'device.evidence', epoch: 1, request: REQUEST }, e);
    const [s2, fx] = transition(
      s,
      {
        type: 'device.attest-result',
        epoch: 1,
        outcome: {
          ok: false,
          failure: { kind: 'rejected', rejection: { code: 'MEASUREMENT_MISMATCH', message: 'bad kernel' } },
        },
        sentAtWall: 0,
        receivedAtWall: 1,
      },
      e,
    );
    expect(s2.phase).toBe('backoff');
    expect(s2.lastRejection).toBe('MEASUREMENT_MISMATCH');
    expect(ofKind(fx, 'observe').map((o) => o.event)).toContainEqual({
      kind: 'rejected',
      step: 'attest',
      code: 'MEASUREMENT_MISMATCH',
      message: 'bad kernel',
      replayed: false,
    });
  });

  it('device - CLOCK_SKEW with serviceTimeMs resynchronises the clock so the next deviceTimeMs is service time + elapsed', () => {
    const p = profile('wrongClock', -3_600_000);
    const t0 = 10_000_000;
    const e0 = env(p, t0);
    let s = toChallenging(p, e0);
    [s] = transition(s, challengeOk(1), e0);
    [s] = transition(s, { type: 'device.evidence', epoch: 1, request: REQUEST }, e0);
    const serviceTime = t0 + 42; // the service's clock is 42 ms ahead of true simulated time
    const t1 = t0 + 10;
    let fx: DeviceEffect[];
    [s, fx] = transition(
      s,
      {
        type: 'device.attest-result',
        epoch: 1,
        outcome: {
          ok: false,
          failure: {
            kind: 'rejected',
            rejection: { code: 'CLOCK_SKEW', message: 'skew', serviceTimeMs: serviceTime },
          },
        },
        sentAtWall: 0,
        receivedAtWall: 1,
      },
      env(p, t1),
    );
    expect(s.phase).toBe('backoff');
    expect(s.clockOffsetMs).toBe(serviceTime - t1);
    const correction = ofKind(fx, 'observe').find((o) => o.event.kind === 'clock-resynced')?.event;
    expect(correction).toEqual({ kind: 'clock-resynced', correctionMs: serviceTime - (t1 - 3_600_000) });
    const delay = ofKind(fx, 'schedule')[0]!.delayMs;
    expect(delay).toBeLessThanOrEqual(BEHAVIOUR.retry.initialMs);

    // the retry signs with the corrected clock
    const t2 = t1 + delay;
    const e2 = env(p, t2);
    [s] = transition(s, { type: 'device.attest-due', power: 1 }, e2);
    [s, fx] = transition(s, challengeOk(s.epoch), e2);
    expect(ofKind(fx, 'sign')[0]!.deviceTimeMs).toBe(serviceTime + (t2 - t1));
  });

  it('device - CLOCK_SKEW without serviceTimeMs leaves the clock alone', () => {
    const p = profile('wrongClock', 777);
    const e = env(p);
    const s = toChallenging(p, e);
    const [s2, fx] = transition(
      s,
      {
        type: 'device.challenge-result',
        epoch: 1,
        outcome: {
          ok: false,
          failure: { kind: 'rejected', rejection: { code: 'CLOCK_SKEW', message: 'skew' } },
        },
        sentAtWall: 0,
        receivedAtWall: 1,
      },
      e,
    );
    expect(s2.clockOffsetMs).toBe(777);
    expect(ofKind(fx, 'observe').some((o) => o.event.kind === 'clock-resynced')).toBe(false);
  });

  it('device - results from a stale epoch are ignored', () => {
    const p = profile();
    const e = env(p);
    let s = toChallenging(p, e);
    [s] = transition(s, transportFail(1), e); // attempt 1 timed out
    [s] = transition(s, { type: 'device.attest-due', power: 1 }, e); // attempt 2
    expect(s.epoch).toBe(2);
    // the late reply to attempt 1 arrives
    const [s2, fx] = transition(s, challengeOk(1), e);
    expect(s2).toBe(s);
    expect(fx).toEqual([]);
    const [s3, fx3] = transition(s, { type: 'device.evidence', epoch: 1, request: REQUEST }, e);
    expect(s3).toBe(s);
    expect(fx3).toEqual([]);
    const [s4, fx4] = transition(s, attestOk(1), e);
    expect(s4).toBe(s);
    expect(fx4).toEqual([]);
  });

  it('device - results arriving in the wrong phase are ignored even with the current epoch', () => {
    const p = profile();
    const e = env(p);
    const s = toChallenging(p, e);
    expect(transition(s, attestOk(s.epoch), e)).toEqual([s, []]);
    expect(transition(s, { type: 'device.evidence', epoch: s.epoch, request: REQUEST }, e)).toEqual([s, []]);
    expect(transition(s, { type: 'device.attest-due', power: 1 }, e)).toEqual([s, []]);
  });

  it('device - connect-failed backs off and the retry connects again', () => {
    const p = profile();
    const e = env(p);
    let [s] = transition(initialDeviceState(p), { type: 'device.power-on' }, e);
    [s] = transition(
      s,
      { type: 'device.core-booted', deviceId: DEVICE_ID, bootId: BOOT_ID, bootCount: 1 },
      e,
    );
    let fx: DeviceEffect[];
    [s, fx] = transition(s, { type: 'device.connect-failed', message: 'refused' }, e);
    expect(s.phase).toBe('backoff');
    expect(ofKind(fx, 'observe').map((o) => o.event)).toContainEqual({
      kind: 'transport-error',
      step: 'connect',
      code: 'CONNECT_FAILED',
      message: 'refused',
    });
    [s, fx] = transition(s, { type: 'device.attest-due', power: 1 }, e);
    expect(s.phase).toBe('connecting');
    expect(ofKind(fx, 'connect')).toHaveLength(1);
  });
});

describe('device logic faults and power', () => {
  it('device - a replay device resubmits the captured request (same bytes) instead of signing', () => {
    const p = profile('replay');
    const e = env(p);
    let s = toChallenging(p, e);
    let fx: DeviceEffect[];
    [s] = transition(s, challengeOk(1), e);
    [s] = transition(s, { type: 'device.evidence', epoch: 1, request: REQUEST }, e);
    expect(s.captured).toBe(REQUEST);
    [s, fx] = transition(s, attestOk(1), e);
    expect(ofKind(fx, 'schedule')).toContainEqual({
      kind: 'schedule',
      delayMs: BEHAVIOUR.replayAfterMs,
      msg: { type: 'device.attest-due', power: 1 },
    });

    [s] = transition(s, { type: 'device.attest-due', power: 1 }, e);
    [s, fx] = transition(s, challengeOk(s.epoch), e);
    expect(ofKind(fx, 'sign')).toHaveLength(0);
    const submit = ofKind(fx, 'submit');
    expect(submit).toHaveLength(1);
    expect(submit[0]!.request.evidence).toEqual(REQUEST.evidence);
    expect(submit[0]!.request.signature).toEqual(REQUEST.signature);
    expect(submit[0]!.epoch).toBe(s.epoch);
    expect(s.phase).toBe('submitting');
    expect(s.replaying).toBe(true);

    // the service refuses it: the rejection is flagged as a replay
    const [, fx2] = transition(
      s,
      {
        type: 'device.attest-result',
        epoch: s.epoch,
        outcome: {
          ok: false,
          failure: { kind: 'rejected', rejection: { code: 'NONCE_REUSED', message: 'reused' } },
        },
        sentAtWall: 0,
        receivedAtWall: 1,
      },
      e,
    );
    const rej = ofKind(fx2, 'observe').find((o) => o.event.kind === 'rejected')?.event;
    expect(rej?.kind === 'rejected' && rej.replayed).toBe(true);
  });

  it('device - a replay device keeps the first captured request, not later ones', () => {
    const p = profile('replay');
    const e = env(p);
    let s = toChallenging(p, e);
    [s] = transition(s, challengeOk(1), e);
    [s] = transition(s, { type: 'device.evidence', epoch: 1, request: REQUEST }, e);
    // a later (hypothetical) evidence with the captured one already set does not replace it
    const other: AttestRequestMsg = { evidence: new Uint8Array([9]), signature: new Uint8Array(64) };
    const forced: DeviceState = { ...s, phase: 'signing' };
    const [s2] = transition(forced, { type: 'device.evidence', epoch: s.epoch, request: other }, e);
    expect(s2.captured).toBe(REQUEST);
  });

  it('device - firmware written by the update agent is what the next power-on measures', () => {
    const p = profile();
    const e = env(p);
    const attested = toAttested(p, e);
    const firmware = {
      osVersion: '26.01',
      securityVersion: 6,
      images: [{ stage: 'rom', digest: new Uint8Array(32) }],
    };
    // Written while running: nothing changes until the device boots again.
    const [written, none] = transition(attested, { type: 'device.firmware-installed', firmware }, e);
    expect(none).toEqual([]);
    expect(written.phase).toBe('attested');
    const [off] = transition(written, { type: 'device.power-off' }, e);
    const [, fx] = transition(off, { type: 'device.power-on' }, e);
    expect(ofKind(fx, 'boot-core')).toEqual([{ kind: 'boot-core', ...firmware }]);
    // The first boot of a device runs its factory firmware.
    const [, factory] = transition(initialDeviceState(p), { type: 'device.power-on' }, e);
    expect(ofKind(factory, 'boot-core')[0]?.osVersion).toBe(p.osVersion);
  });

  it('device - after power-off, later timers and in-flight results are ignored', () => {
    const p = profile();
    const e = env(p);
    const attested = toAttested(p, e);
    let [s, fx] = transition(attested, { type: 'device.power-off' }, e);
    expect(s.phase).toBe('off');
    expect(s.connected).toBe(false);
    expect(s.bootId).toBeNull();
    expect(s.heartbeating).toBe(false);
    expect(s.epoch).toBe(attested.epoch + 1);
    expect(ofKind(fx, 'observe').map((o) => o.event)).toEqual([
      { kind: 'phase', from: 'attested', to: 'off' },
    ]);

    const late: DeviceMessage[] = [
      { type: 'device.attest-due', power: 1 },
      challengeOk(attested.epoch),
      challengeOk(s.epoch),
      { type: 'device.evidence', epoch: s.epoch, request: REQUEST },
      attestOk(s.epoch),
      { type: 'device.connected' },
      { type: 'device.connect-failed', message: 'x' },
      { type: 'device.core-booted', deviceId: DEVICE_ID, bootId: BOOT_ID, bootCount: 2 },
    ];
    for (const m of late) {
      [s, fx] = transition(s, m, e);
      expect(s.phase, m.type).toBe('off');
      expect(fx, m.type).toEqual([]);
    }
    [s, fx] = transition(s, { type: 'device.heartbeat-due', power: 1 }, e);
    expect(fx).toEqual([]);
    expect(s.heartbeating).toBe(false);
  });

  // Regression: timers carry the power cycle that set them, so a heartbeat timer from before a
  // power-off cannot start a second loop after the next power-on.
  it('device - one attested device heartbeats once per heartbeatEveryMs (simulated run)', () => {
    expect(heartbeatsOverTenIntervals(false)).toBe(10);
  });

  it('device - a quick power cycle does not leave two heartbeat loops running', () => {
    expect(heartbeatsOverTenIntervals(true)).toBe(10);
  });
});

/**
 * Runs `transition` against a manual clock (schedule effects become timers), attests, optionally
 * power-cycles half a heartbeat interval later and re-attests, then counts heartbeats over ten intervals.
 */
function heartbeatsOverTenIntervals(powerCycle: boolean): number {
  const p = profile();
  const clock = createManualClock(1_000_000);
  const rng = createRng('power-cycle');
  let state = initialDeviceState(p);
  let heartbeats = 0;
  const deliver = (msg: DeviceMessage): void => {
    const [next, effects] = transition(state, msg, {
      now: clock.now(),
      wallNow: clock.now(),
      random: () => rng.next(),
      behaviour: BEHAVIOUR,
      profile: p,
    });
    state = next;
    for (const fx of effects) {
      if (fx.kind === 'schedule') clock.setTimeout(() => deliver(fx.msg), fx.delayMs);
      if (fx.kind === 'heartbeat') heartbeats++;
    }
  };
  const attestNow = (): void => {
    deliver({ type: 'device.core-booted', deviceId: DEVICE_ID, bootId: BOOT_ID, bootCount: 1 });
    deliver({ type: 'device.connected' });
    deliver(challengeOk(state.epoch));
    deliver({ type: 'device.evidence', epoch: state.epoch, request: REQUEST });
    deliver(attestOk(state.epoch));
  };
  deliver({ type: 'device.power-on' });
  attestNow();
  expect(state.phase).toBe('attested');
  clock.advance(BEHAVIOUR.heartbeatEveryMs / 2);
  if (powerCycle) {
    deliver({ type: 'device.power-off' });
    deliver({ type: 'device.power-on' });
    attestNow(); // back up before the old heartbeat timer fires
    expect(state.phase).toBe('attested');
  }
  clock.advance(BEHAVIOUR.heartbeatEveryMs * 2); // let old and new timers settle
  heartbeats = 0;
  clock.advance(BEHAVIOUR.heartbeatEveryMs * 10);
  return heartbeats;
}

describe('device backoff', () => {
  const retryArb = fc.record({
    initialMs: fc.integer({ min: 1, max: 10_000 }),
    maxMs: fc.integer({ min: 1, max: 600_000 }),
    multiplier: fc.double({ min: 1, max: 4, noNaN: true }),
    jitter: fc.double({ min: 0, max: 1, noNaN: true }),
  });

  it('backoff - the delay stays within [base·(1−j), base·(1+j)] with base capped at maxMs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        retryArb,
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (failures, retry, r) => {
          const base = Math.min(retry.maxMs, retry.initialMs * retry.multiplier ** (failures - 1));
          const d = backoffDelay(failures, retry, () => r);
          expect(Number.isInteger(d)).toBe(true);
          expect(d).toBeGreaterThanOrEqual(Math.max(0, Math.round(base * (1 - retry.jitter))));
          expect(d).toBeLessThanOrEqual(Math.round(base * (1 + retry.jitter)));
          expect(d).toBeLessThanOrEqual(Math.round(retry.maxMs * (1 + retry.jitter)));
        },
      ),
    );
  });

  it('backoff - without jitter the delay is initial·multiplier^(n−1) capped at maxMs', () => {
    const retry = { initialMs: 500, maxMs: 10_000, multiplier: 3, jitter: 0 };
    const random = createRng('no-jitter');
    const got = [1, 2, 3, 4, 5, 100].map((n) => backoffDelay(n, retry, () => random.next()));
    expect(got).toEqual([500, 1500, 4500, 10_000, 10_000, 10_000]);
  });

  it('backoff - a failure count of 0 or less is treated as the first retry', () => {
    const retry = { initialMs: 800, maxMs: 10_000, multiplier: 2, jitter: 0 };
    expect(backoffDelay(0, retry, () => 0.5)).toBe(800);
    expect(backoffDelay(-3, retry, () => 0.5)).toBe(800);
  });

  it('backoff - the delay is never negative, even with jitter above 1', () => {
    const retry = { initialMs: 1000, maxMs: 10_000, multiplier: 2, jitter: 1.5 };
    expect(backoffDelay(1, retry, () => 0)).toBe(0);
  });

  it('backoff - a seeded random source makes the delay sequence reproducible', () => {
    const seq = (seed: string): number[] => {
      const r = createRng(seed);
      return [1, 2, 3, 4, 5].map((n) => backoffDelay(n, BEHAVIOUR.retry, () => r.next()));
    };
    expect(seq('a')).toEqual(seq('a'));
    expect(seq('a')).not.toEqual(seq('b'));
  });
});
