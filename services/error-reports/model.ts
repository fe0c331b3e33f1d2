/**
 * The error report model shared by devices and the service, and the one validator that turns an
 * untrusted decoded report into a domain {@link ErrorReport} (or a list of problems).
 *
 * A device uploads its error events once a day. One report holds at most
 * {@link MAX_EVENTS_PER_REPORT} events spanning at most {@link MAX_REPORT_SPAN_MS}; a device that
 * has more (after a long time offline) uploads several reports in order. Events are planned
 * (`update-failed`) or unplanned (`app-crash`, `app-exit` with its exit code, `os-crash`), plus
 * `attestation-failed` seen from the device's side.
 */
import type { ErrorInfo, Result } from '../../actors/runtime/index.js';
import type { DeviceId } from '../../proto/codec/index.js';
import { ERROR_EVENT_KINDS, parseDeviceId } from '../../proto/codec/index.js';
import type { ErrorEventKind } from '../../proto/codec/index.js';

// The event kinds are the device protocol's (one list for the wire and the store).
export { ERROR_EVENT_KINDS };
export type { ErrorEventKind };

/** The component name of the operating system; any other component is an application. */
export const OS_COMPONENT = 'os';

export const DAY_MS = 24 * 60 * 60 * 1000;
export const MAX_EVENTS_PER_REPORT = 1000;
export const MAX_REPORT_SPAN_MS = 14 * DAY_MS;
/** Limits on strings, in UTF-16 code units (`string.length`). */
export const MAX_COMPONENT_LENGTH = 64;
export const MAX_VERSION_LENGTH = 32;
export const MAX_DETAIL_LENGTH = 200;
export const MAX_REPORT_ID_LENGTH = 128;
/** The largest time a `Date` can hold: every accepted time has an ISO-8601 form. */
export const MAX_TIME_MS = 8.64e15;
/** A refusal lists at most this many problems (a hostile report must not yield a huge message). */
export const MAX_LISTED_PROBLEMS = 20;

/** Report IDs: 1..{@link MAX_REPORT_ID_LENGTH} characters of `[A-Za-z0-9._:-]`. */
export const REPORT_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** An application name (as the device protocol allows it); the OS is {@link OS_COMPONENT}. */
export const COMPONENT_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** A version such as `1.2.0` or `24.10+build.3`: 1..{@link MAX_VERSION_LENGTH} characters. */
export const VERSION_PATTERN = /^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$/;

/** One event as the device recorded it. Plain JSON. */
export interface ErrorEvent {
  readonly kind: ErrorEventKind;
  /**
   * {@link OS_COMPONENT} or the application's name ({@link COMPONENT_PATTERN}); `os-crash` is
   * always `os`, app exits and crashes never.
   */
  readonly component: string;
  /** Version of the component when the event happened ({@link VERSION_PATTERN}). */
  readonly version: string;
  /** Process exit code 0..255; 0 when not applicable. */
  readonly exitCode: number;
  /** Device time of the event, ms since the epoch. */
  readonly atMs: number;
  /** Short free text such as `SIGSEGV` or a reject code; at most {@link MAX_DETAIL_LENGTH}. */
  readonly detail: string;
}

/**
 * What a device uploads. Invariants (checked by {@link validateErrorReport}): at most
 * {@link MAX_EVENTS_PER_REPORT} events, `toMs - fromMs <= MAX_REPORT_SPAN_MS`, events ordered by
 * `atMs` within `[fromMs, toMs]`. `droppedEvents` counts events the device lost to its bounded
 * buffer since its previous report.
 */
export interface ErrorReport {
  readonly reportId: string;
  readonly deviceId: DeviceId;
  readonly fromMs: number;
  readonly toMs: number;
  readonly events: readonly ErrorEvent[];
  readonly droppedEvents: number;
}

export const ERROR_REPORT_PROBLEM_CODES = [
  'MALFORMED',
  'BAD_REPORT_ID',
  'BAD_DEVICE_ID',
  'DEVICE_MISMATCH',
  'TOO_MANY_EVENTS',
  'SPAN_TOO_LONG',
  'TIME_OUT_OF_RANGE',
  'TIME_OUT_OF_ORDER',
  'UNKNOWN_KIND',
  'EXIT_CODE_OUT_OF_RANGE',
  'BAD_STRING',
  'COMPONENT_MISMATCH',
] as const;
export type ErrorReportProblemCode = (typeof ERROR_REPORT_PROBLEM_CODES)[number];

/** One reason a report is refused; `field` is the input path, e.g. `events[3].exitCode`. */
export interface ErrorReportProblem {
  readonly code: ErrorReportProblemCode;
  readonly field: string;
  readonly message: string;
}

/** A refused report: `message` names the first problems; `problems` holds at most {@link MAX_LISTED_PROBLEMS}. */
export interface ErrorReportRejection extends ErrorInfo {
  readonly code: 'ERROR_REPORT_INVALID';
  readonly problems: readonly ErrorReportProblem[];
  /** True when more problems existed than are listed. */
  readonly truncated: boolean;
}

export interface ValidateErrorReportOptions {
  /** The authenticated sender: the report's `deviceId` must equal it. */
  readonly deviceId?: DeviceId;
}

/** Thrown in process for an event that can never be part of a valid report (a programming error). */
export class InvalidErrorEventError extends Error {
  override readonly name = 'InvalidErrorEventError';
  readonly problems: readonly ErrorReportProblem[];
  constructor(problems: readonly ErrorReportProblem[], options?: { cause?: unknown }) {
    super(`invalid error event: ${describeProblems(problems)}`, options);
    this.problems = problems;
  }
}

const KINDS: ReadonlySet<string> = new Set(ERROR_EVENT_KINDS);

export function isErrorEventKind(v: unknown): v is ErrorEventKind {
  return typeof v === 'string' && KINDS.has(v);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_TIME_MS;
}

/** Collects problems up to the listing cap; `full` tells the caller to stop looking. */
class Problems {
  readonly list: ErrorReportProblem[] = [];
  truncated = false;
  /** Every problem found, listed or not. */
  count = 0;

  add(code: ErrorReportProblemCode, field: string, message: string): void {
    this.count++;
    if (this.list.length < MAX_LISTED_PROBLEMS)
      this.list.push({ code, field, message: `${field}: ${message}` });
    else this.truncated = true;
  }

  get full(): boolean {
    return this.truncated;
  }
}

function describeProblems(problems: readonly ErrorReportProblem[], truncated = false): string {
  const shown = problems.slice(0, 5).map((p) => p.message);
  const more = problems.length - shown.length;
  if (truncated) return `${shown.join('; ')} (and more)`;
  return shown.join('; ') + (more > 0 ? ` (and ${more} more)` : '');
}

function checkString(
  p: Problems,
  v: unknown,
  field: string,
  maxLength: number,
  pattern?: RegExp,
): string | null {
  if (typeof v !== 'string') {
    p.add('MALFORMED', field, 'must be a string');
    return null;
  }
  if (v.length > maxLength) {
    p.add('BAD_STRING', field, `length ${v.length}, at most ${maxLength}`);
    return null;
  }
  if (pattern !== undefined && !pattern.test(v)) {
    p.add('BAD_STRING', field, `must match ${pattern.source}`);
    return null;
  }
  return v;
}

/** Checks one event; returns a fresh event holding only the known fields, or null. */
function checkEvent(p: Problems, v: unknown, field: string): ErrorEvent | null {
  if (!isRecord(v)) {
    p.add('MALFORMED', field, 'must be an object');
    return null;
  }
  const before = p.count;
  const { kind, exitCode, atMs } = v;
  if (!isErrorEventKind(kind))
    p.add('UNKNOWN_KIND', `${field}.kind`, `must be one of ${ERROR_EVENT_KINDS.join(', ')}`);
  const component = checkString(
    p,
    v.component,
    `${field}.component`,
    MAX_COMPONENT_LENGTH,
    v.component === OS_COMPONENT ? undefined : COMPONENT_PATTERN,
  );
  const version = checkString(p, v.version, `${field}.version`, MAX_VERSION_LENGTH, VERSION_PATTERN);
  const detail = checkString(p, v.detail, `${field}.detail`, MAX_DETAIL_LENGTH);
  if (typeof exitCode !== 'number' || !Number.isInteger(exitCode) || exitCode < 0 || exitCode > 255)
    p.add('EXIT_CODE_OUT_OF_RANGE', `${field}.exitCode`, 'must be an integer 0..255');
  if (!isTime(atMs)) p.add('TIME_OUT_OF_RANGE', `${field}.atMs`, `must be an integer 0..${MAX_TIME_MS}`);
  if (isErrorEventKind(kind) && component !== null) {
    if (kind === 'os-crash' && component !== OS_COMPONENT)
      p.add('COMPONENT_MISMATCH', `${field}.component`, `an os-crash is reported by '${OS_COMPONENT}'`);
    if ((kind === 'app-crash' || kind === 'app-exit') && component === OS_COMPONENT)
      p.add(
        'COMPONENT_MISMATCH',
        `${field}.component`,
        `an ${kind} names an application, not '${OS_COMPONENT}'`,
      );
  }
  if (p.count !== before) return null;
  return {
    kind: kind as ErrorEventKind,
    component: component as string,
    version: version as string,
    exitCode: exitCode as number,
    atMs: atMs as number,
    detail: detail as string,
  };
}

/**
 * The problems of one event, as the device-side recorder checks them before buffering (an event
 * with problems could only produce a report the service refuses). Empty when the event is valid.
 */
export function errorEventProblems(e: unknown, field = 'event'): readonly ErrorReportProblem[] {
  const p = new Problems();
  checkEvent(p, e, field);
  return p.list;
}

/**
 * Validates an untrusted decoded report: shape, report and device IDs, event count, span, times
 * (integers in `[0, MAX_TIME_MS]`, events ordered by `atMs` within `[fromMs, toMs]`), kinds, exit
 * codes, strings (lengths; component and version patterns, as the device protocol's codec has
 * them) and kind/component agreement. On success the value is a fresh report
 * with only the known fields (unknown input fields are dropped) and a branded device ID.
 * Stops looking after {@link MAX_LISTED_PROBLEMS} problems. O(events).
 */
export function validateErrorReport(
  input: unknown,
  options: ValidateErrorReportOptions = {},
): Result<ErrorReport, ErrorReportRejection> {
  const p = new Problems();
  const report = checkReport(p, input, options);
  if (report !== null && p.list.length === 0) return { ok: true, value: report };
  const id = isRecord(input) && typeof input.reportId === 'string' ? input.reportId.slice(0, 40) : '?';
  return {
    ok: false,
    error: {
      code: 'ERROR_REPORT_INVALID',
      message: `error report ${JSON.stringify(id)} refused: ${describeProblems(p.list, p.truncated)}`,
      problems: p.list,
      truncated: p.truncated,
    },
  };
}

function checkReport(p: Problems, v: unknown, options: ValidateErrorReportOptions): ErrorReport | null {
  if (!isRecord(v)) {
    p.add('MALFORMED', 'report', 'must be an object');
    return null;
  }
  const { reportId, fromMs, toMs, events, droppedEvents } = v;
  if (typeof reportId !== 'string' || !REPORT_ID_PATTERN.test(reportId))
    p.add('BAD_REPORT_ID', 'reportId', `must match ${REPORT_ID_PATTERN.source}`);
  const deviceId = typeof v.deviceId === 'string' ? parseDeviceId(v.deviceId) : null;
  if (deviceId === null) p.add('BAD_DEVICE_ID', 'deviceId', 'must be 128 lowercase hex characters');
  else if (options.deviceId !== undefined && deviceId !== options.deviceId)
    p.add('DEVICE_MISMATCH', 'deviceId', 'is not the device that sent the report');
  const timesOk = isTime(fromMs) && isTime(toMs);
  if (!isTime(fromMs)) p.add('TIME_OUT_OF_RANGE', 'fromMs', `must be an integer 0..${MAX_TIME_MS}`);
  if (!isTime(toMs)) p.add('TIME_OUT_OF_RANGE', 'toMs', `must be an integer 0..${MAX_TIME_MS}`);
  if (timesOk && toMs < fromMs) p.add('TIME_OUT_OF_ORDER', 'toMs', 'must not be before fromMs');
  if (timesOk && toMs - fromMs > MAX_REPORT_SPAN_MS)
    p.add(
      'SPAN_TOO_LONG',
      'toMs',
      `report spans ${toMs - fromMs} ms, at most ${MAX_REPORT_SPAN_MS} (14 days)`,
    );
  if (typeof droppedEvents !== 'number' || !Number.isSafeInteger(droppedEvents) || droppedEvents < 0)
    p.add('MALFORMED', 'droppedEvents', 'must be a non-negative integer');
  if (!Array.isArray(events)) {
    p.add('MALFORMED', 'events', 'must be an array');
    return null;
  }
  if (events.length > MAX_EVENTS_PER_REPORT) {
    // Do not walk a hostile array further: the count alone refuses it.
    p.add('TOO_MANY_EVENTS', 'events', `${events.length} events, at most ${MAX_EVENTS_PER_REPORT}`);
    return null;
  }
  const out: ErrorEvent[] = [];
  let prevAtMs = timesOk ? fromMs : 0;
  for (let i = 0; i < events.length && !p.full; i++) {
    const field = `events[${i}]`;
    const e = checkEvent(p, events[i] as unknown, field);
    if (e === null) continue;
    if (timesOk && (e.atMs < fromMs || e.atMs > toMs))
      p.add('TIME_OUT_OF_RANGE', `${field}.atMs`, `must be within [fromMs, toMs] = [${fromMs}, ${toMs}]`);
    else if (e.atMs < prevAtMs) p.add('TIME_OUT_OF_ORDER', `${field}.atMs`, 'events must be ordered by atMs');
    else prevAtMs = e.atMs;
    out.push(e);
  }
  if (p.list.length > 0 || deviceId === null) return null;
  return {
    reportId: reportId as string,
    deviceId,
    fromMs: fromMs as number,
    toMs: toMs as number,
    events: out,
    droppedEvents: droppedEvents as number,
  };
}
