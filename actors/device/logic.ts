import type { AttestRequestMsg, DeviceId, RejectCode } from '../../proto/codec/index.js';
import type { ErrorEvent, ErrorEventKind } from '../../services/error-reports/index.js';
import type { ImageMeasurement } from '../security-core/index.js';
import { backoffDelay } from './backoff.js';
import {
  DEFAULT_DEVICE_ERROR_BEHAVIOUR,
  INITIAL_ERROR_REPORTER_STATE,
  armCrash,
  armErrors,
  attestationFailed,
  crashDue,
  errorsAttested,
  errorsPoweredOff,
  errorsTransition,
} from './error-reporter.js';
import type { DeviceErrorBehaviour, ErrorReportResult, ErrorReporterState } from './error-reporter.js';
import type { DeviceMessage, StepFailure } from './messages.js';

export { backoffDelay };

/** Fault profiles a scenario can assign to a device (see loadgen's FAULT_PROFILES). */
export const DEVICE_FAULTS = [
  'tamperedKernel',
  'unendorsed',
  'clonedKey',
  'replay',
  'belowMinVersion',
  'wrongClock',
] as const;
export type DeviceFault = (typeof DEVICE_FAULTS)[number];

/** Behaviour knobs, all in simulated milliseconds; validated once by the scenario compiler. */
export interface DeviceBehaviour {
  readonly attestEveryMs: number;
  readonly heartbeatEveryMs: number;
  readonly retry: {
    readonly initialMs: number;
    readonly maxMs: number;
    readonly multiplier: number;
    readonly jitter: number;
  };
  /** How long a replaying device waits after a success before replaying what it captured. */
  readonly replayAfterMs: number;
  /** Re-attest this long before the certificates expire when that comes before `attestEveryMs`. */
  readonly renewBeforeMs: number;
  /** Crashes and error report uploads; default `DEFAULT_DEVICE_ERROR_BEHAVIOUR` (no crashes, daily uploads). */
  readonly errors?: DeviceErrorBehaviour;
}

/** What a device boots: its OS build and the images it measures, in boot order. */
export interface DeviceFirmware {
  readonly osVersion: string;
  readonly securityVersion: number;
  /** Boot images in order, as this device loads them (tampered where its fault says so). */
  readonly images: readonly ImageMeasurement[];
  /** The applications it runs (what its crashes and error reports name); none when absent. */
  readonly apps?: readonly { readonly name: string; readonly version: string }[];
}

/**
 * What a device is: its factory firmware and its fault, fixed for the run (an update agent may
 * install other firmware later, see `device.firmware-installed`).
 */
export interface DeviceProfile extends DeviceFirmware {
  readonly deviceId: DeviceId;
  readonly fault: DeviceFault | null;
  /** Initial offset of the device clock from true simulated time (wrongClock devices). */
  readonly clockOffsetMs: number;
}

export type DevicePhase =
  'off' | 'booting' | 'connecting' | 'challenging' | 'signing' | 'submitting' | 'attested' | 'backoff';

export interface DeviceState {
  readonly phase: DevicePhase;
  /** What the next power-on boots: the factory firmware until an update installs another. */
  readonly firmware: DeviceFirmware;
  /** Power cycles so far; timers set in an earlier cycle are ignored. */
  readonly power: number;
  /** Increments with every attempt; replies carrying an older epoch are ignored. */
  readonly epoch: number;
  readonly connected: boolean;
  /** Consecutive failed attempts (drives backoff). */
  readonly failures: number;
  readonly clockOffsetMs: number;
  readonly bootId: Uint8Array | null;
  readonly certificatesNotAfterMs: number | null;
  readonly heartbeating: boolean;
  /** Wall time the current attempt's challenge was sent; only valid while an attempt runs. */
  readonly attemptStartedWall: number;
  /** Wall latency of the current attempt's challenge; only valid after it was answered. */
  readonly challengeMs: number;
  /** Replay devices keep the first request they sent, to replay it later. */
  readonly captured: AttestRequestMsg | null;
  readonly replaying: boolean;
  readonly lastRejection: RejectCode | null;
  /** Crash timers and the error report upload loop (see error-reporter.ts). */
  readonly errors: ErrorReporterState;
}

/** What an observer (the run's recorder) learns from a device. */
export type DeviceEvent =
  | { readonly kind: 'phase'; readonly from: DevicePhase; readonly to: DevicePhase }
  | {
      readonly kind: 'attested';
      readonly challengeMs: number;
      readonly attestMs: number;
      readonly totalMs: number;
      readonly notAfterMs: number;
      readonly attempt: number;
    }
  | {
      readonly kind: 'rejected';
      readonly step: 'challenge' | 'attest';
      readonly code: RejectCode;
      readonly message: string;
      readonly replayed: boolean;
    }
  | {
      readonly kind: 'transport-error';
      readonly step: 'connect' | 'challenge' | 'attest';
      readonly code: string;
      readonly message: string;
    }
  | { readonly kind: 'clock-resynced'; readonly correctionMs: number }
  | { readonly kind: 'error-recorded'; readonly errorKind: ErrorEventKind }
  /** One error report upload attempt ended; `code` is `OK` or the refusal's or transport's code. */
  | {
      readonly kind: 'error-report';
      readonly result: ErrorReportResult;
      readonly reportId: string;
      readonly events: number;
      readonly code: string;
    };

/** Side effects the shell carries out; logic never performs I/O. */
export type DeviceEffect =
  | {
      readonly kind: 'boot-core';
      readonly images: readonly ImageMeasurement[];
      readonly osVersion: string;
      readonly securityVersion: number;
    }
  | { readonly kind: 'connect' }
  | { readonly kind: 'request-challenge'; readonly epoch: number }
  | {
      readonly kind: 'sign';
      readonly epoch: number;
      readonly nonce: Uint8Array;
      readonly deviceTimeMs: number;
    }
  | { readonly kind: 'submit'; readonly epoch: number; readonly request: AttestRequestMsg }
  | { readonly kind: 'heartbeat'; readonly bootId: Uint8Array; readonly deviceTimeMs: number }
  /** Buffers an error event in the device's recorder. */
  | { readonly kind: 'record-error'; readonly event: ErrorEvent }
  /** Uploads the recorder's next report; the answer comes back as `device.errors-result` with `attempt`. */
  | { readonly kind: 'upload-errors'; readonly attempt: number; readonly deviceTimeMs: number }
  /** The report left the device: acknowledged, or refused for good. */
  | { readonly kind: 'release-error-report'; readonly reportId: string }
  | { readonly kind: 'schedule'; readonly delayMs: number; readonly msg: DeviceMessage }
  | { readonly kind: 'observe'; readonly event: DeviceEvent };

/** Inputs logic may read besides state and message: true simulated time, seeded randomness, wall time. */
export interface DeviceEnv {
  readonly now: number;
  readonly wallNow: number;
  readonly random: () => number;
  readonly behaviour: DeviceBehaviour;
  readonly profile: DeviceProfile;
}

export function initialDeviceState(profile: DeviceProfile): DeviceState {
  return {
    phase: 'off',
    firmware: {
      osVersion: profile.osVersion,
      securityVersion: profile.securityVersion,
      images: profile.images,
      ...(profile.apps === undefined ? {} : { apps: profile.apps }),
    },
    power: 0,
    epoch: 0,
    connected: false,
    failures: 0,
    clockOffsetMs: profile.clockOffsetMs,
    bootId: null,
    certificatesNotAfterMs: null,
    heartbeating: false,
    attemptStartedWall: 0,
    challengeMs: 0,
    captured: null,
    replaying: false,
    lastRejection: null,
    errors: INITIAL_ERROR_REPORTER_STATE,
  };
}

type Step = [DeviceState, DeviceEffect[]];

function moveTo(
  state: DeviceState,
  phase: DevicePhase,
  effects: DeviceEffect[],
  patch: Partial<DeviceState> = {},
): Step {
  if (state.phase !== phase)
    effects.unshift({ kind: 'observe', event: { kind: 'phase', from: state.phase, to: phase } });
  return [{ ...state, ...patch, phase }, effects];
}

function startAttempt(state: DeviceState, env: DeviceEnv): Step {
  if (!state.connected) return moveTo(state, 'connecting', [{ kind: 'connect' }]);
  const epoch = state.epoch + 1;
  return moveTo(state, 'challenging', [{ kind: 'request-challenge', epoch }], {
    epoch,
    attemptStartedWall: env.wallNow,
  });
}

function fail(
  state: DeviceState,
  env: DeviceEnv,
  step: 'connect' | 'challenge' | 'attest',
  failure: StepFailure,
): Step {
  const failures = state.failures + 1;
  const effects: DeviceEffect[] = [];
  let patch: Partial<DeviceState> = { failures };
  let delay = backoffDelay(failures, env.behaviour.retry, env.random);
  if (failure.kind === 'transport') {
    effects.push({
      kind: 'observe',
      event: { kind: 'transport-error', step, code: failure.code, message: failure.message },
    });
    if (failure.code === 'CLOSED' || failure.code === 'DISCONNECTED') patch = { ...patch, connected: false };
  } else {
    const r = failure.rejection;
    effects.push({
      kind: 'observe',
      event: {
        kind: 'rejected',
        step: step === 'connect' ? 'challenge' : step,
        code: r.code,
        message: r.message,
        replayed: state.replaying,
      },
    });
    patch = { ...patch, lastRejection: r.code };
    effects.push(...attestationFailed(state, env, step === 'connect' ? 'challenge' : step, r.code));
    if (r.retryAfterMs !== undefined) {
      // The service said when to come back (OVERLOADED): never earlier than that.
      delay = Math.max(delay, r.retryAfterMs - (r.serviceTimeMs ?? env.now));
    }
    if (r.code === 'CLOCK_SKEW' && r.serviceTimeMs !== undefined) {
      // Adopt the service's time (as a device would from an authenticated time source) and retry soon.
      const correction = r.serviceTimeMs - (env.now + state.clockOffsetMs);
      effects.push({ kind: 'observe', event: { kind: 'clock-resynced', correctionMs: correction } });
      patch = { ...patch, clockOffsetMs: state.clockOffsetMs + correction };
      delay = Math.min(delay, env.behaviour.retry.initialMs);
    }
  }
  effects.push({ kind: 'schedule', delayMs: delay, msg: { type: 'device.attest-due', power: state.power } });
  return moveTo(state, 'backoff', effects, patch);
}

/** Powers the device off: bumping the epoch orphans in-flight replies; pending timers find it off. */
function powerOff(state: DeviceState): Step {
  return moveTo(state, 'off', [], {
    epoch: state.epoch + 1,
    connected: false,
    heartbeating: false,
    bootId: null,
    errors: errorsPoweredOff(state.errors),
  });
}

/**
 * The device's state machine: power on → measured boot → connect → challenge → sign → submit →
 * attested, re-attesting every `attestEveryMs` and heartbeating every `heartbeatEveryMs`;
 * failures back off exponentially with jitter. Pure: same (state, message, env) → same result.
 */
export function transition(state: DeviceState, msg: DeviceMessage, env: DeviceEnv): Step {
  const { behaviour, profile } = env;
  switch (msg.type) {
    case 'device.power-on':
      if (state.phase !== 'off') return [state, []];
      return moveTo({ ...state, power: state.power + 1 }, 'booting', [
        {
          kind: 'boot-core',
          images: state.firmware.images,
          osVersion: state.firmware.osVersion,
          securityVersion: state.firmware.securityVersion,
        },
      ]);
    case 'device.firmware-installed': {
      // Flashed by the update agent; the device measures and runs it from its next boot on (its
      // apps crash as the new ones at once: an app update restarts the app).
      const flashed = { ...state, firmware: msg.firmware };
      return state.phase === 'off' ? [flashed, []] : armCrash(flashed, env);
    }
    case 'device.power-off':
      return powerOff(state);
    case 'device.core-booted': {
      if (state.phase !== 'booting') return [state, []];
      const [armed, errorEffects] = armErrors({ ...state, bootId: msg.bootId }, env);
      const [next, effects] = startAttempt(armed, env);
      return [next, [...effects, ...errorEffects]];
    }
    case 'device.connected':
      if (state.phase !== 'connecting') return [state, []];
      return startAttempt({ ...state, connected: true }, env);
    case 'device.connect-failed':
      if (state.phase !== 'connecting') return [state, []];
      return fail(state, env, 'connect', { kind: 'transport', code: 'CONNECT_FAILED', message: msg.message });
    case 'device.attest-due':
      if (msg.power !== state.power || (state.phase !== 'attested' && state.phase !== 'backoff'))
        return [state, []];
      return startAttempt(state, env);
    case 'device.heartbeat-due': {
      if (msg.power !== state.power) return [state, []];
      if (state.phase === 'off' || state.bootId === null) return [{ ...state, heartbeating: false }, []];
      const effects: DeviceEffect[] = [
        {
          kind: 'schedule',
          delayMs: behaviour.heartbeatEveryMs,
          msg: { type: 'device.heartbeat-due', power: state.power },
        },
      ];
      if (state.connected)
        effects.unshift({
          kind: 'heartbeat',
          bootId: state.bootId,
          deviceTimeMs: env.now + state.clockOffsetMs,
        });
      return [state, effects];
    }
    case 'device.challenge-result': {
      if (msg.epoch !== state.epoch || state.phase !== 'challenging') return [state, []];
      if (!msg.outcome.ok) return fail(state, env, 'challenge', msg.outcome.failure);
      const challengeMs = msg.receivedAtWall - msg.sentAtWall;
      if (profile.fault === 'replay' && state.captured !== null) {
        // A replaying device ignores the fresh nonce and resubmits what it captured earlier.
        return moveTo(
          state,
          'submitting',
          [{ kind: 'submit', epoch: state.epoch, request: state.captured }],
          {
            replaying: true,
            challengeMs,
          },
        );
      }
      return moveTo(
        state,
        'signing',
        [
          {
            kind: 'sign',
            epoch: state.epoch,
            nonce: msg.outcome.value.nonce,
            deviceTimeMs: env.now + state.clockOffsetMs,
          },
        ],
        { replaying: false, challengeMs },
      );
    }
    case 'device.evidence': {
      if (msg.epoch !== state.epoch || state.phase !== 'signing') return [state, []];
      const captured = profile.fault === 'replay' && state.captured === null ? msg.request : state.captured;
      return moveTo(state, 'submitting', [{ kind: 'submit', epoch: state.epoch, request: msg.request }], {
        captured,
      });
    }
    case 'device.attest-result': {
      if (msg.epoch !== state.epoch || state.phase !== 'submitting') return [state, []];
      if (!msg.outcome.ok) return fail(state, env, 'attest', msg.outcome.failure);
      const certs = msg.outcome.value;
      const effects: DeviceEffect[] = [
        {
          kind: 'observe',
          event: {
            kind: 'attested',
            challengeMs: state.challengeMs,
            attestMs: msg.receivedAtWall - msg.sentAtWall,
            totalMs: msg.receivedAtWall - state.attemptStartedWall,
            notAfterMs: certs.notAfterMs,
            attempt: state.failures + 1,
          },
        },
        {
          kind: 'schedule',
          delayMs:
            profile.fault === 'replay'
              ? behaviour.replayAfterMs
              : Math.max(
                  0,
                  Math.min(
                    behaviour.attestEveryMs,
                    certs.notAfterMs - (env.now + state.clockOffsetMs) - behaviour.renewBeforeMs,
                  ),
                ),
          msg: { type: 'device.attest-due', power: state.power },
        },
      ];
      if (!state.heartbeating) {
        effects.push({
          kind: 'schedule',
          delayMs: behaviour.heartbeatEveryMs,
          msg: { type: 'device.heartbeat-due', power: state.power },
        });
      }
      const [attested, attestedEffects] = moveTo(state, 'attested', effects, {
        failures: 0,
        certificatesNotAfterMs: certs.notAfterMs,
        heartbeating: true,
        lastRejection: null,
        replaying: false,
      });
      const [next, uploads] = errorsAttested(attested, env);
      return [next, [...attestedEffects, ...uploads]];
    }
    case 'device.crash-due': {
      const crashed = crashDue(state, msg.timer, env);
      if (!crashed.osCrashed) return [crashed.state, crashed.effects];
      // The OS went down: the device reboots (and attests again) after osCrashRebootMs.
      const [off, effects] = powerOff(crashed.state);
      const rebootMs = (behaviour.errors ?? DEFAULT_DEVICE_ERROR_BEHAVIOUR).osCrashRebootMs;
      return [
        off,
        [
          ...crashed.effects,
          ...effects,
          { kind: 'schedule', delayMs: rebootMs, msg: { type: 'device.power-on' } },
        ],
      ];
    }
    case 'device.update-failed':
    case 'device.errors-due':
    case 'device.errors-retry':
    case 'device.errors-result':
      return errorsTransition(state, msg, env);
    default:
      return msg satisfies never;
  }
}
