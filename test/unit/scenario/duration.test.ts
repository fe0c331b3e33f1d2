import { describe, expect, test } from 'vitest';
import { DurationError, formatDuration, parseDuration, parseRate } from '../../../loadgen/scenario/index.js';

describe('duration', () => {
  test('duration - parses every unit', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('2d')).toBe(172_800_000);
  });

  test('duration - numbers are milliseconds, decimals and compound values work', () => {
    expect(parseDuration(1500)).toBe(1500);
    expect(parseDuration(0)).toBe(0);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1h 30m')).toBe(5_400_000);
    expect(parseDuration(' 10s ')).toBe(10_000);
  });

  test('duration - rejects bad input with a message saying what was expected', () => {
    expect(() => parseDuration('soon')).toThrow('expected a duration like "30s" or "24h", got "soon"');
    expect(() => parseDuration('500')).toThrow(/add a unit/);
    expect(() => parseDuration('10 parsecs')).toThrow(DurationError);
    expect(() => parseDuration('5x')).toThrow(DurationError);
    expect(() => parseDuration('')).toThrow(DurationError);
    expect(() => parseDuration(-1)).toThrow(/0 ms or more/);
    expect(() => parseDuration(Number.NaN)).toThrow(DurationError);
    expect(() => parseDuration(true)).toThrow('got true');
    expect(() => parseDuration({})).toThrow('got a mapping');
  });

  test('rate - parses per second, per minute and per hour into per second', () => {
    expect(parseRate('100/s')).toBe(100);
    expect(parseRate('20/m')).toBeCloseTo(1 / 3, 12);
    expect(parseRate('3600/h')).toBe(1);
    expect(parseRate('0.5/s')).toBe(0.5);
    expect(parseRate(7)).toBe(7);
  });

  test('rate - rejects malformed and non-positive rates', () => {
    expect(() => parseRate('fast')).toThrow('expected a rate like "20/s", got "fast"');
    expect(() => parseRate('20')).toThrow(DurationError);
    expect(() => parseRate('0/s')).toThrow(/greater than zero/);
    expect(() => parseRate(-3)).toThrow(/greater than zero/);
    expect(() => parseRate('10/fortnight')).toThrow(DurationError);
  });

  test('format - renders compact durations that parse back', () => {
    expect(formatDuration(500)).toBe('500ms');
    expect(formatDuration(1_500)).toBe('1.5s');
    expect(formatDuration(300_000)).toBe('5m');
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(172_800_000)).toBe('2d');
    expect(formatDuration(169_210_000)).toBe('1d23h');
    for (const ms of [500, 1_500, 300_000, 5_400_000, 172_800_000]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});
