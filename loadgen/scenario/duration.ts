/**
 * Durations and rates as written in scenario files.
 *
 * Every interval in a scenario is SIMULATED time unless a field says otherwise; these parsers only
 * turn text into numbers and know nothing about time compression.
 */

/** Milliseconds per unit suffix accepted by {@link parseDuration} and {@link parseRate}. */
export const DURATION_UNITS = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
} as const;

/** A unit suffix: `ms`, `s`, `m`, `h` or `d`. */
export type DurationUnit = keyof typeof DURATION_UNITS;

/** Thrown by {@link parseDuration} and {@link parseRate}; the message says what was expected. */
export class DurationError extends Error {
  override readonly name = 'DurationError';
  /** The value that could not be parsed. */
  readonly input: unknown;
  constructor(message: string, input: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.input = input;
  }
}

const SEGMENT = /(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)/gy;

/** Render any value briefly and unambiguously for an error message (strings quoted). */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a mapping' : `a ${typeof value}`;
}

/**
 * Parse a duration into milliseconds.
 *
 * Accepts a number (already milliseconds) or a string of one or more `<number><unit>` segments:
 * `"500ms"`, `"30s"`, `"5m"`, `"24h"`, `"2d"`, `"1.5h"`, `"1h30m"`. A bare numeric string such as
 * `"500"` is rejected because the unit is ambiguous. Negative and non-finite values are rejected.
 *
 * @throws {DurationError} with a message like `expected a duration like "30s" or "24h", got "soon"`.
 */
export function parseDuration(input: unknown): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) {
      throw new DurationError(`expected a duration of 0 ms or more, got ${describeValue(input)}`, input);
    }
    return input;
  }
  const expected = `expected a duration like "30s" or "24h"`;
  if (typeof input !== 'string') throw new DurationError(`${expected}, got ${describeValue(input)}`, input);
  const text = input.trim();
  if (/^\d+(\.\d+)?$/.test(text)) {
    throw new DurationError(`${expected}, got ${describeValue(input)} (add a unit: ms, s, m, h or d)`, input);
  }
  let total = 0;
  let consumed = 0;
  SEGMENT.lastIndex = 0;
  for (let match = SEGMENT.exec(text); match !== null; match = SEGMENT.exec(text)) {
    const unit = match[2] as DurationUnit;
    total += Number(match[1]) * DURATION_UNITS[unit];
    consumed = SEGMENT.lastIndex;
    // Allow spaces between segments ("1h 30m").
    while (text[SEGMENT.lastIndex] === ' ') SEGMENT.lastIndex++;
  }
  if (text === '' || consumed !== text.length || !Number.isFinite(total)) {
    throw new DurationError(`${expected}, got ${describeValue(input)}`, input);
  }
  return total;
}

/**
 * Parse an arrival rate into events per (simulated) second.
 *
 * Accepts a number (already per second) or `"<count>/<unit>"`: `"100/s"`, `"20/m"`, `"5/h"`,
 * `"0.5/s"`. The rate must be greater than zero.
 *
 * @throws {DurationError} with a message like `expected a rate like "20/s", got "fast"`.
 */
export function parseRate(input: unknown): number {
  const expected = `expected a rate like "20/s"`;
  let perSecond: number;
  if (typeof input === 'number') {
    perSecond = input;
  } else if (typeof input === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*\/\s*(ms|s|m|h|d)\s*$/.exec(input);
    if (match === null) throw new DurationError(`${expected}, got ${describeValue(input)}`, input);
    perSecond = (Number(match[1]) * 1_000) / DURATION_UNITS[match[2] as DurationUnit];
  } else {
    throw new DurationError(`${expected}, got ${describeValue(input)}`, input);
  }
  if (!Number.isFinite(perSecond) || perSecond <= 0) {
    throw new DurationError(`${expected} greater than zero, got ${describeValue(input)}`, input);
  }
  return perSecond;
}

/**
 * Format milliseconds compactly for people: `500ms`, `1.5s`, `5m`, `1h30m`, `2d`, `1d12h`.
 * Uses at most two units; the result parses back with {@link parseDuration} (up to rounding).
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms === 0) return '0s';
  if (ms < 1_000) return `${roundTo(ms, ms < 10 ? 2 : 0)}ms`;
  if (ms < 60_000) return `${roundTo(ms / 1_000, ms < 10_000 ? 2 : 1)}s`;
  const order = ['d', 'h', 'm', 's'] as const;
  const rounded = Math.round(ms / 1_000) * 1_000;
  for (let i = 0; i < order.length; i++) {
    const unit = order[i] ?? 's';
    const size = DURATION_UNITS[unit];
    if (rounded < size) continue;
    const major = Math.floor(rounded / size);
    const next = order[i + 1];
    const minor = next === undefined ? 0 : Math.floor((rounded - major * size) / DURATION_UNITS[next]);
    return minor > 0 && next !== undefined ? `${major}${unit}${minor}${next}` : `${major}${unit}`;
  }
  return '0s';
}

function roundTo(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
