/**
 * The device side: one {@link ErrorRecorder} per device buffers error events and cuts them into
 * reports for the daily upload. Pure: no I/O, no timers, no clock; time arrives in `next(nowMs)`.
 *
 * ## Model
 *
 * - **Waiting buffer.** `record` appends to a buffer in record order. It holds at most
 *   `maxBufferedEvents`; recording into a full buffer drops the oldest waiting event, counted in
 *   the `droppedEvents` of the next report cut. The report in flight is never dropped from.
 * - **Sealing.** The first `next` call of each upload period (`periodMs`, a day by default) seals
 *   every waiting event: they belong to this period's reports. Events recorded after the seal wait
 *   for the next period, even if the upload of this period's reports is still going on.
 * - **Cutting.** When no report is in flight, `next` cuts one from the oldest sealed events, in
 *   record order, stopping before {@link MAX_EVENTS_PER_REPORT} events or before the span of
 *   their times would exceed {@link MAX_REPORT_SPAN_MS}; inside the report events are sorted by
 *   `atMs` (stable) and `[fromMs, toMs]` is their first and last time. It gets the ID
 *   `<idPrefix><seq>` with a per-recorder sequence from 1.
 * - **In flight.** `next` returns that same report object until `acknowledged(reportId)`, so a
 *   retried upload repeats the same `reportId` and the service deduplicates it. After the ack the
 *   next `next` cuts the following report at once: a device back from 30 days offline drains its
 *   backlog as several reports, in order, each within the limits.
 *
 * ## Invariants (checked by the property tests)
 *
 * 1. Every recorded event ends up in exactly one acknowledged report or is counted in exactly one
 *    report's `droppedEvents` (once everything is acknowledged).
 * 2. Every report `next` returns passes {@link validateErrorReport}.
 * 3. Report IDs strictly increase in sequence; for them to stay unique across reboots, persist
 *    {@link ErrorRecorder.snapshot} and {@link ErrorRecorder.restore} it, or give a prefix unique
 *    to the boot.
 *
 * Memory: at most `maxBufferedEvents` waiting events plus the report in flight. `record` is
 * amortised O(1); `next` is O(k log k) for a cut of k events, else O(1).
 */
import type { DeviceId } from '../../proto/codec/index.js';
import { parseDeviceId } from '../../proto/codec/index.js';
import type { ErrorEvent, ErrorReport } from './model.js';
import {
  DAY_MS,
  InvalidErrorEventError,
  MAX_DETAIL_LENGTH,
  MAX_EVENTS_PER_REPORT,
  MAX_REPORT_ID_LENGTH,
  MAX_REPORT_SPAN_MS,
  MAX_TIME_MS,
  errorEventProblems,
  validateErrorReport,
} from './model.js';

export const DEFAULT_MAX_BUFFERED_EVENTS = 10_000;
export const DEFAULT_REPORT_ID_PREFIX = 'er-';
/** Room left in a report ID for the sequence number (up to 2^53). */
const SEQ_DIGITS = 16;
const ID_PREFIX = /^[A-Za-z0-9._:-]*$/;

export interface ErrorRecorderOptions {
  readonly deviceId: DeviceId;
  /** Prefix of report IDs, `[A-Za-z0-9._:-]*`; default {@link DEFAULT_REPORT_ID_PREFIX}. */
  readonly idPrefix?: string;
  /** Upload period: events are sealed at most once per period; default one day. */
  readonly periodMs?: number;
  /** Waiting events kept before the oldest are dropped; default {@link DEFAULT_MAX_BUFFERED_EVENTS}. */
  readonly maxBufferedEvents?: number;
}

/**
 * Everything a recorder knows, as plain JSON: persist it to keep the report sequence (and the
 * unsent events) across a reboot.
 */
export interface ErrorRecorderState {
  readonly schema: 1;
  readonly deviceId: DeviceId;
  readonly idPrefix: string;
  readonly periodMs: number;
  readonly maxBufferedEvents: number;
  /** Sequence number of the next report cut. */
  readonly nextSeq: number;
  /** The first `next` at or after this time seals the waiting events; `null` before the first `next`. */
  readonly nextSealAtMs: number | null;
  readonly inFlight: ErrorReport | null;
  /** Waiting events in record order; the first `sealedCount` are sealed. */
  readonly waiting: readonly ErrorEvent[];
  readonly sealedCount: number;
  /** Dropped since the last cut report; goes into the next one. */
  readonly droppedSinceReport: number;
  readonly droppedTotal: number;
}

/** Counters for gauges and tests. */
export interface ErrorRecorderStats {
  readonly inFlightEvents: number;
  readonly sealedEvents: number;
  readonly openEvents: number;
  readonly droppedTotal: number;
  readonly reportsCut: number;
}

/** Thrown for recorder options or a snapshot that cannot work. */
export class ErrorRecorderOptionsError extends Error {
  override readonly name = 'ErrorRecorderOptionsError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

function positiveInt(v: number | undefined, fallback: number, name: string): number {
  const n = v ?? fallback;
  if (!Number.isSafeInteger(n) || n < 1)
    throw new ErrorRecorderOptionsError(`${name} must be a positive integer, got ${n}`);
  return n;
}

/** Buffers one device's error events and hands out its reports, oldest first. Not thread-safe; one owner. */
export class ErrorRecorder {
  readonly deviceId: DeviceId;
  readonly idPrefix: string;
  readonly periodMs: number;
  readonly maxBufferedEvents: number;
  /** Waiting events are `#waiting[#head..]`; the consumed front is trimmed now and then. */
  #waiting: ErrorEvent[] = [];
  #head = 0;
  #sealedCount = 0;
  #nextSeq = 1;
  #nextSealAtMs: number | null = null;
  #inFlight: ErrorReport | null = null;
  #droppedSinceReport = 0;
  #droppedTotal = 0;

  constructor(options: ErrorRecorderOptions) {
    if (parseDeviceId(options.deviceId) === null)
      throw new ErrorRecorderOptionsError('deviceId must be 128 lowercase hex characters');
    const prefix = options.idPrefix ?? DEFAULT_REPORT_ID_PREFIX;
    if (!ID_PREFIX.test(prefix) || prefix.length > MAX_REPORT_ID_LENGTH - SEQ_DIGITS)
      throw new ErrorRecorderOptionsError(
        `idPrefix must be at most ${MAX_REPORT_ID_LENGTH - SEQ_DIGITS} characters of [A-Za-z0-9._:-]`,
      );
    this.deviceId = options.deviceId;
    this.idPrefix = prefix;
    this.periodMs = positiveInt(options.periodMs, DAY_MS, 'periodMs');
    this.maxBufferedEvents = positiveInt(
      options.maxBufferedEvents,
      DEFAULT_MAX_BUFFERED_EVENTS,
      'maxBufferedEvents',
    );
  }

  /**
   * A recorder continuing from a {@link snapshot}: same sequence, same report in flight, same
   * waiting events. Throws {@link ErrorRecorderOptionsError} for a snapshot that is not one.
   */
  static restore(state: ErrorRecorderState): ErrorRecorder {
    const r = new ErrorRecorder(state);
    const counts = [state.nextSeq, state.sealedCount, state.droppedSinceReport, state.droppedTotal];
    if (state.schema !== 1 || !counts.every((n) => Number.isSafeInteger(n) && n >= 0) || state.nextSeq < 1)
      throw new ErrorRecorderOptionsError('not an error recorder snapshot');
    if (state.sealedCount > state.waiting.length || state.waiting.length > r.maxBufferedEvents)
      throw new ErrorRecorderOptionsError('snapshot holds more events than it can');
    if (state.inFlight !== null) {
      const v = validateErrorReport(state.inFlight, { deviceId: r.deviceId });
      if (!v.ok) throw new ErrorRecorderOptionsError(`snapshot's report in flight: ${v.error.message}`);
      r.#inFlight = v.value;
    }
    for (const e of state.waiting) r.#waiting.push(checkedEvent(e));
    r.#sealedCount = state.sealedCount;
    r.#nextSeq = state.nextSeq;
    r.#nextSealAtMs = state.nextSealAtMs;
    r.#droppedSinceReport = state.droppedSinceReport;
    r.#droppedTotal = state.droppedTotal;
    return r;
  }

  /**
   * Buffers one event. A `detail` longer than {@link MAX_DETAIL_LENGTH} is truncated; any other
   * invalid field throws {@link InvalidErrorEventError} (such an event could only yield a report the
   * service refuses, which would block every later report).
   */
  record(e: ErrorEvent): void {
    const event = checkedEvent(
      typeof e.detail === 'string' && e.detail.length > MAX_DETAIL_LENGTH
        ? { ...e, detail: e.detail.slice(0, MAX_DETAIL_LENGTH) }
        : e,
    );
    if (this.#waitingLength() >= this.maxBufferedEvents) this.#dropOldest();
    this.#waiting.push(event);
  }

  /**
   * The report to upload now, or `null` when there is none. Seals the waiting events on the first
   * call of each upload period, then returns the report in flight, else cuts the next one from
   * the sealed events. Call it once per upload attempt; `nowMs` is the device's time.
   */
  next(nowMs: number): ErrorReport | null {
    if (!Number.isSafeInteger(nowMs) || nowMs < 0 || nowMs > MAX_TIME_MS)
      throw new RangeError(`nowMs must be an integer 0..${MAX_TIME_MS}, got ${nowMs}`);
    if (this.#nextSealAtMs === null || nowMs >= this.#nextSealAtMs) {
      this.#sealedCount = this.#waitingLength();
      this.#nextSealAtMs = nowMs + this.periodMs;
    }
    if (this.#inFlight !== null) return this.#inFlight;
    if (this.#sealedCount === 0) return null;
    return (this.#inFlight = this.#cut());
  }

  /**
   * The service stored (or already had) `reportId`: it leaves the device. Returns false, and
   * changes nothing, when it is not the report in flight (a repeated or stray ack).
   */
  acknowledged(reportId: string): boolean {
    if (this.#inFlight === null || this.#inFlight.reportId !== reportId) return false;
    this.#inFlight = null;
    return true;
  }

  /** Events not yet acknowledged: the report in flight plus every waiting event. */
  pending(): number {
    return (this.#inFlight?.events.length ?? 0) + this.#waitingLength();
  }

  stats(): ErrorRecorderStats {
    const waiting = this.#waitingLength();
    return {
      inFlightEvents: this.#inFlight?.events.length ?? 0,
      sealedEvents: this.#sealedCount,
      openEvents: waiting - this.#sealedCount,
      droppedTotal: this.#droppedTotal,
      reportsCut: this.#nextSeq - 1,
    };
  }

  /** The whole state as plain JSON; see {@link ErrorRecorder.restore}. */
  snapshot(): ErrorRecorderState {
    return {
      schema: 1,
      deviceId: this.deviceId,
      idPrefix: this.idPrefix,
      periodMs: this.periodMs,
      maxBufferedEvents: this.maxBufferedEvents,
      nextSeq: this.#nextSeq,
      nextSealAtMs: this.#nextSealAtMs,
      inFlight: this.#inFlight,
      waiting: this.#waiting.slice(this.#head),
      sealedCount: this.#sealedCount,
      droppedSinceReport: this.#droppedSinceReport,
      droppedTotal: this.#droppedTotal,
    };
  }

  #waitingLength(): number {
    return this.#waiting.length - this.#head;
  }

  #dropOldest(): void {
    this.#consume(1);
    if (this.#sealedCount > 0) this.#sealedCount--;
    this.#droppedSinceReport++;
    this.#droppedTotal++;
  }

  /** Advances the head by `n`, trimming the consumed front once it is the larger half. */
  #consume(n: number): void {
    this.#head += n;
    if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
  }

  #cut(): ErrorReport {
    let n = 0;
    let fromMs = Number.POSITIVE_INFINITY;
    let toMs = Number.NEGATIVE_INFINITY;
    while (n < this.#sealedCount && n < MAX_EVENTS_PER_REPORT) {
      const e = this.#waiting[this.#head + n] as ErrorEvent;
      const lo = Math.min(fromMs, e.atMs);
      const hi = Math.max(toMs, e.atMs);
      if (hi - lo > MAX_REPORT_SPAN_MS) break;
      fromMs = lo;
      toMs = hi;
      n++;
    }
    const events = this.#waiting.slice(this.#head, this.#head + n).sort((a, b) => a.atMs - b.atMs);
    this.#consume(n);
    this.#sealedCount -= n;
    const report: ErrorReport = {
      reportId: `${this.idPrefix}${this.#nextSeq++}`,
      deviceId: this.deviceId,
      fromMs,
      toMs,
      events,
      droppedEvents: this.#droppedSinceReport,
    };
    this.#droppedSinceReport = 0;
    return report;
  }
}

function checkedEvent(e: ErrorEvent): ErrorEvent {
  const problems = errorEventProblems(e);
  if (problems.length > 0) throw new InvalidErrorEventError(problems);
  return {
    kind: e.kind,
    component: e.component,
    version: e.version,
    exitCode: e.exitCode,
    atMs: e.atMs,
    detail: e.detail,
  };
}
