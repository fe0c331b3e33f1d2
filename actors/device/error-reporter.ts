/**
 * The device's error reporting, pure (no I/O, no timers): what a device records (app crashes and
 * exits, OS crashes, failed updates, refused attestations), the crashes it simulates, and its
 * upload loop. The device logic calls these on its messages; the shell keeps the
 * `ErrorRecorder` (services/error-reports) that buffers events and cuts reports, and sends them.
 *
 * ## Crashes
 *
 * A running device crashes as a Poisson process over simulated time: the rates of
 * {@link DeviceErrorBehaviour} (per device and day, app rates spread over its apps) plus those of
 * the crashy images it runs. The next crash is drawn from the device's seeded RNG when it boots
 * and whenever its firmware changes (the process is memoryless, so a re-draw is exact), and after
 * every crash. An OS crash reboots the device.
 *
 * ## Uploads
 *
 * Once per `uploadEveryMs` (at a phase derived from the device ID, so a fleet spreads its
 * uploads over the period), the device uploads what it recorded: report after report, each
 * repeated until acknowledged (a duplicate acknowledgement counts), then idle until the next
 * period. Without a session or a connection it waits for its next successful attestation. A
 * refusal that a repeat can overcome ({@link RETRYABLE_ERROR_REPORT_CODES}) or a lost reply is
 * retried with the device's backoff; any other refusal drops the report, so one bad report never
 * blocks the later ones.
 */
import { DAY_MS, OS_COMPONENT, errorEventProblems } from '../../services/error-reports/index.js';
import type { ErrorEvent, ErrorEventKind } from '../../services/error-reports/index.js';
import type { RejectCode } from '../../proto/codec/index.js';
import { backoffDelay } from './backoff.js';
import type { DeviceEffect, DeviceEnv, DeviceFirmware, DeviceState } from './logic.js';
import type { DeviceMessage, ErrorUploadOutcome } from './messages.js';

/** An image that makes the devices running it crash (a scenario's crashy release). */
export interface CrashyImage {
  readonly kind: 'os' | 'app';
  /** The app's name; an OS image is matched by version alone. */
  readonly name: string;
  readonly version: string;
  /** OS crashes (os image) or crashes of the app (app image) per simulated day. */
  readonly crashesPerDay: number;
}

/** Error knobs of a device; rates are per device and simulated day, times simulated ms. */
export interface DeviceErrorBehaviour {
  /** App crashes, spread evenly over the device's apps. */
  readonly appCrashesPerDay: number;
  /** App exits (a process ending with an exit code), spread evenly over the device's apps. */
  readonly appExitsPerDay: number;
  readonly osCrashesPerDay: number;
  /** Upload period (Azure Sphere: a day). */
  readonly uploadEveryMs: number;
  /** How long the device stays down after an OS crash before it boots again. */
  readonly osCrashRebootMs: number;
  readonly crashyImages: readonly CrashyImage[];
}

/** No crashes; failed updates and attestations are still recorded and uploaded daily. */
export const DEFAULT_DEVICE_ERROR_BEHAVIOUR: DeviceErrorBehaviour = {
  appCrashesPerDay: 0,
  appExitsPerDay: 0,
  osCrashesPerDay: 0,
  uploadEveryMs: DAY_MS,
  osCrashRebootMs: 60_000,
  crashyImages: [],
};

/** Refusals of an error report that a repeat (with the current session) can overcome. */
export const RETRYABLE_ERROR_REPORT_CODES: ReadonlySet<string> = new Set<RejectCode>([
  'SESSION_EXPIRED',
  'REPLAYED',
  'BAD_MAC',
  'RATE_LIMITED',
  'OVERLOADED',
  'INTERNAL',
]);

/**
 * `idle`: nothing to do until the next period; `waiting`: an upload is owed, for the next
 * successful attestation; `sending`: a request is out; `backoff`: a retry timer is set.
 */
export type ErrorUploadPhase = 'idle' | 'waiting' | 'sending' | 'backoff';

export interface ErrorReporterState {
  /** True simulated time of the next periodic upload; `null` before the first boot. */
  readonly nextUploadAtMs: number | null;
  readonly upload: ErrorUploadPhase;
  /** Stamps upload requests and retry timers: results and timers of an older attempt are ignored. */
  readonly attempt: number;
  /** Consecutive failed uploads (drives backoff). */
  readonly failures: number;
  /** Stamps crash timers: a reboot or new firmware re-draws the next crash. */
  readonly crashTimer: number;
}

/** How an upload attempt ended, as the run's recorder counts it. */
export type ErrorReportResult = 'acked' | 'duplicate' | 'refused' | 'retry';

export const INITIAL_ERROR_REPORTER_STATE: ErrorReporterState = {
  nextUploadAtMs: null,
  upload: 'idle',
  attempt: 0,
  failures: 0,
  crashTimer: 0,
};

type Step = [DeviceState, DeviceEffect[]];
type ErrorMessage = Extract<
  DeviceMessage,
  { type: 'device.errors-due' | 'device.errors-retry' | 'device.errors-result' | 'device.update-failed' }
>;

/** `signal name → number`: an app crash ends its process with exit code 128 + signal. */
const CRASH_SIGNALS = [
  ['SIGSEGV', 11],
  ['SIGABRT', 6],
  ['SIGBUS', 7],
  ['SIGILL', 4],
  ['SIGFPE', 8],
] as const;

const errorsOf = (env: DeviceEnv): DeviceErrorBehaviour =>
  env.behaviour.errors ?? DEFAULT_DEVICE_ERROR_BEHAVIOUR;

/** The device's own clock (what it stamps events and reports with), a whole ms. */
const deviceTime = (state: DeviceState, env: DeviceEnv): number =>
  Math.max(0, Math.round(env.now + state.clockOffsetMs));

const withErrors = (state: DeviceState, patch: Partial<ErrorReporterState>): DeviceState => ({
  ...state,
  errors: { ...state.errors, ...patch },
});

/**
 * Delay of a device's first upload after its first boot: a fixed fraction of the period taken
 * from its ID (bits 32..63), so a fleet's uploads are spread over the period without using the RNG.
 */
export function firstUploadDelay(deviceId: string, periodMs: number): number {
  const bits = Number.parseInt(deviceId.slice(8, 16), 16);
  return Number.isFinite(bits) ? Math.floor((bits / 2 ** 32) * periodMs) : 0;
}

/**
 * One event, or `null` when the service's validator would refuse it (an app name the error
 * model does not allow): recording it would only block the reports after it.
 */
function errorEvent(e: ErrorEvent): ErrorEvent | null {
  return errorEventProblems(e).length === 0 ? e : null;
}

function record(event: ErrorEvent | null): DeviceEffect[] {
  if (event === null) return [];
  return [
    { kind: 'record-error', event },
    { kind: 'observe', event: { kind: 'error-recorded', errorKind: event.kind } },
  ];
}

/** One way a running device crashes, with its rate per simulated day. */
export interface CrashSource {
  readonly kind: Extract<ErrorEventKind, 'app-crash' | 'app-exit' | 'os-crash'>;
  readonly component: string;
  readonly version: string;
  readonly perDay: number;
}

/** The crash sources of a device running `firmware` (rates above 0 only). */
export function crashSources(firmware: DeviceFirmware, b: DeviceErrorBehaviour): CrashSource[] {
  const out: CrashSource[] = [];
  const add = (s: CrashSource): void => {
    if (s.perDay > 0) out.push(s);
  };
  // Apps the error model can name (a scenario may give an app a name it cannot report).
  const apps = (firmware.apps ?? []).filter(
    (a) =>
      errorEventProblems({
        kind: 'app-crash',
        component: a.name,
        version: a.version,
        exitCode: 0,
        atMs: 0,
        detail: '',
      }).length === 0,
  );
  for (const app of apps) {
    const on = { component: app.name, version: app.version };
    add({ kind: 'app-crash', ...on, perDay: b.appCrashesPerDay / apps.length });
    add({ kind: 'app-exit', ...on, perDay: b.appExitsPerDay / apps.length });
    for (const image of b.crashyImages)
      if (image.kind === 'app' && image.name === app.name && image.version === app.version)
        add({ kind: 'app-crash', ...on, perDay: image.crashesPerDay });
  }
  const os = { kind: 'os-crash', component: OS_COMPONENT, version: firmware.osVersion } as const;
  add({ ...os, perDay: b.osCrashesPerDay });
  for (const image of b.crashyImages)
    if (image.kind === 'os' && image.version === firmware.osVersion)
      add({ ...os, perDay: image.crashesPerDay });
  return out;
}

/** Simulated ms until the next event of a Poisson process of `perDay` events a day (at least 1). */
export function exponentialDelay(perDay: number, random: () => number): number {
  return Math.max(1, Math.round((-Math.log(1 - random()) * DAY_MS) / perDay));
}

/** Picks a source with probability proportional to its rate. */
function pick(sources: readonly CrashSource[], total: number, random: () => number): CrashSource | undefined {
  let r = random() * total;
  for (const s of sources) {
    r -= s.perDay;
    if (r < 0) return s;
  }
  return sources[sources.length - 1];
}

/** The event a crash of `source` records at device time `atMs`. */
export function crashEvent(source: CrashSource, atMs: number, random: () => number): ErrorEvent {
  const base = { kind: source.kind, component: source.component, version: source.version, atMs };
  if (source.kind === 'app-crash') {
    const [name, signal] = CRASH_SIGNALS[Math.floor(random() * CRASH_SIGNALS.length)] ?? CRASH_SIGNALS[0];
    return { ...base, exitCode: 128 + signal, detail: `${name}; restarted by the OS` };
  }
  if (source.kind === 'app-exit') {
    const exitCode = Math.floor(random() * 256);
    return { ...base, exitCode, detail: `exited with code ${exitCode}; restarted by the OS` };
  }
  return { ...base, exitCode: 0, detail: 'kernel panic; the device rebooted' };
}

/** Sets the next crash timer for the firmware `state` runs (none when nothing can crash). */
export function armCrash(state: DeviceState, env: DeviceEnv): Step {
  const crashTimer = state.errors.crashTimer + 1;
  const next = withErrors(state, { crashTimer });
  const total = crashSources(state.firmware, errorsOf(env)).reduce((sum, s) => sum + s.perDay, 0);
  if (!(total > 0)) return [next, []];
  return [
    next,
    [
      {
        kind: 'schedule',
        delayMs: exponentialDelay(total, env.random),
        msg: { type: 'device.crash-due', timer: crashTimer },
      },
    ],
  ];
}

/**
 * A crash timer fired: records the crash and sets the next timer. `osCrashed` tells the caller
 * to power-cycle the device (a stale timer, or a device that is off, changes nothing).
 */
export function crashDue(
  state: DeviceState,
  timer: number,
  env: DeviceEnv,
): { state: DeviceState; effects: DeviceEffect[]; osCrashed: boolean } {
  if (timer !== state.errors.crashTimer || state.phase === 'off')
    return { state, effects: [], osCrashed: false };
  const sources = crashSources(state.firmware, errorsOf(env));
  const total = sources.reduce((sum, s) => sum + s.perDay, 0);
  const source = pick(sources, total, env.random);
  if (source === undefined) return { state, effects: [], osCrashed: false };
  const effects = record(errorEvent(crashEvent(source, deviceTime(state, env), env.random)));
  if (source.kind === 'os-crash') return { state, effects, osCrashed: true };
  const [next, armed] = armCrash(state, env);
  return { state: next, effects: [...effects, ...armed], osCrashed: false };
}

/** At boot: sets the next periodic upload (kept across power cycles) and the crash timer. */
export function armErrors(state: DeviceState, env: DeviceEnv): Step {
  const b = errorsOf(env);
  const nextUploadAtMs =
    state.errors.nextUploadAtMs ?? env.now + firstUploadDelay(env.profile.deviceId, b.uploadEveryMs);
  const [armed, effects] = armCrash(withErrors(state, { nextUploadAtMs }), env);
  effects.unshift({
    kind: 'schedule',
    delayMs: Math.max(0, nextUploadAtMs - env.now),
    msg: { type: 'device.errors-due', power: state.power },
  });
  return [armed, effects];
}

/** Power-off: timers and in-flight uploads are forgotten; an owed upload waits for the next boot. */
export function errorsPoweredOff(errors: ErrorReporterState): ErrorReporterState {
  return {
    ...errors,
    upload: errors.upload === 'idle' ? 'idle' : 'waiting',
    attempt: errors.attempt + 1,
    crashTimer: errors.crashTimer + 1,
  };
}

/** The security service refused an attestation: an `attestation-failed` event (OS component). */
export function attestationFailed(
  state: DeviceState,
  env: DeviceEnv,
  step: string,
  code: string,
): DeviceEffect[] {
  return record(
    errorEvent({
      kind: 'attestation-failed',
      component: OS_COMPONENT,
      version: state.firmware.osVersion,
      exitCode: 0,
      atMs: deviceTime(state, env),
      detail: `${step}: ${code}`,
    }),
  );
}

/** The device attested: an upload that waited for a session starts now. */
export function errorsAttested(state: DeviceState, env: DeviceEnv): Step {
  return state.errors.upload === 'waiting' ? startUpload(state, env) : [state, []];
}

function startUpload(state: DeviceState, env: DeviceEnv): Step {
  if (state.phase === 'off' || !state.connected) return [withErrors(state, { upload: 'waiting' }), []];
  const attempt = state.errors.attempt + 1;
  return [
    withErrors(state, { upload: 'sending', attempt }),
    [{ kind: 'upload-errors', attempt, deviceTimeMs: deviceTime(state, env) }],
  ];
}

function reportEvent(
  result: ErrorReportResult,
  sent: Extract<ErrorUploadOutcome, { kind: 'sent' }>,
  code: string,
): DeviceEffect {
  return {
    kind: 'observe',
    event: { kind: 'error-report', result, reportId: sent.reportId, events: sent.events, code },
  };
}

/** The report in flight is done with (stored, or refused for good): on to the next one. */
function released(
  state: DeviceState,
  env: DeviceEnv,
  sent: Extract<ErrorUploadOutcome, { kind: 'sent' }>,
  result: ErrorReportResult,
  code: string,
): Step {
  const [next, effects] = startUpload(withErrors(state, { failures: 0 }), env);
  return [
    next,
    [{ kind: 'release-error-report', reportId: sent.reportId }, reportEvent(result, sent, code), ...effects],
  ];
}

function uploadResult(state: DeviceState, outcome: ErrorUploadOutcome, env: DeviceEnv): Step {
  if (outcome.kind === 'nothing') return [withErrors(state, { upload: 'idle', failures: 0 }), []];
  if (outcome.kind === 'no-session') return [withErrors(state, { upload: 'waiting' }), []];
  const reply = outcome.reply;
  if (reply.ok && reply.value.reportId === outcome.reportId)
    return released(state, env, outcome, reply.value.duplicate ? 'duplicate' : 'acked', 'OK');
  const failure = reply.ok ? null : reply.failure;
  const rejection = failure?.kind === 'rejected' ? failure.rejection : null;
  if (rejection !== null && !RETRYABLE_ERROR_REPORT_CODES.has(rejection.code))
    return released(state, env, outcome, 'refused', rejection.code);
  // An acknowledgement of another report is no acknowledgement of this one: repeat it.
  const code =
    failure === null ? 'BAD_REPLY' : failure.kind === 'rejected' ? failure.rejection.code : failure.code;
  const failures = state.errors.failures + 1;
  let delay = backoffDelay(failures, env.behaviour.retry, env.random);
  if (rejection?.retryAfterMs !== undefined)
    delay = Math.max(delay, rejection.retryAfterMs - (rejection.serviceTimeMs ?? env.now));
  return [
    withErrors(state, { upload: 'backoff', failures }),
    [
      reportEvent('retry', outcome, code),
      {
        kind: 'schedule',
        delayMs: delay,
        msg: { type: 'device.errors-retry', attempt: state.errors.attempt },
      },
    ],
  ];
}

/** The error reporter's own messages: upload timers and results, and failed updates. */
export function errorsTransition(state: DeviceState, msg: ErrorMessage, env: DeviceEnv): Step {
  switch (msg.type) {
    case 'device.update-failed':
      return [
        state,
        record(
          errorEvent({
            kind: 'update-failed',
            component: msg.component === 'os' ? OS_COMPONENT : msg.name,
            version: msg.version,
            exitCode: 0,
            atMs: deviceTime(state, env),
            detail: msg.code,
          }),
        ),
      ];
    case 'device.errors-due': {
      if (msg.power !== state.power || state.phase === 'off') return [state, []];
      const every = errorsOf(env).uploadEveryMs;
      const next = withErrors(state, { nextUploadAtMs: env.now + every });
      const timer: DeviceEffect = {
        kind: 'schedule',
        delayMs: every,
        msg: { type: 'device.errors-due', power: state.power },
      };
      // A round still going on (or waiting for a session) takes the new events along.
      if (state.errors.upload !== 'idle') return [next, [timer]];
      const [started, effects] = startUpload(next, env);
      return [started, [...effects, timer]];
    }
    case 'device.errors-retry':
      if (msg.attempt !== state.errors.attempt || state.errors.upload !== 'backoff') return [state, []];
      return startUpload(state, env);
    case 'device.errors-result':
      if (msg.attempt !== state.errors.attempt || state.errors.upload !== 'sending') return [state, []];
      return uploadResult(state, msg.outcome, env);
    default:
      return msg satisfies never;
  }
}
