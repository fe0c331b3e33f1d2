/**
 * Byte sizes as written in scenario files: `4096` (bytes), `"64KiB"`, `"1MiB"`, `"1.5KiB"`.
 * Binary units only: `KB`/`MB` are refused with a hint, so nobody wonders whether 1 KB is 1000
 * or 1024 bytes.
 */
import { describeValue } from './duration.js';

/** Bytes per unit suffix accepted by {@link parseSize}. */
export const SIZE_UNITS = {
  B: 1,
  KiB: 1024,
  MiB: 1024 * 1024,
  GiB: 1024 * 1024 * 1024,
} as const;

/** A unit suffix: `B`, `KiB`, `MiB` or `GiB`. */
export type SizeUnit = keyof typeof SIZE_UNITS;

/** Thrown by {@link parseSize}; the message says what was expected. */
export class SizeError extends Error {
  override readonly name = 'SizeError';
}

const SIZE = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*$/;

/**
 * Parse a size into a whole number of bytes.
 *
 * Accepts a number (bytes), a numeric string (bytes) or `<number><unit>` with a binary unit:
 * `"512B"`, `"64KiB"`, `"1MiB"`, `"1.5KiB"`. The result must be a whole number of bytes.
 *
 * @throws {SizeError} with a message like `expected a size like "64KiB" or "1MiB", got "big"`.
 */
export function parseSize(input: unknown): number {
  const expected = 'expected a size like "64KiB", "1MiB" or a number of bytes';
  let bytes: number;
  if (typeof input === 'number') {
    bytes = input;
  } else if (typeof input === 'string') {
    const match = SIZE.exec(input);
    if (match === null) throw new SizeError(`${expected}, got ${describeValue(input)}`);
    const unit = match[2] ?? '';
    if (unit !== '' && !Object.hasOwn(SIZE_UNITS, unit)) {
      const binary = {
        k: 'KiB',
        kb: 'KiB',
        kib: 'KiB',
        m: 'MiB',
        mb: 'MiB',
        mib: 'MiB',
        g: 'GiB',
        gb: 'GiB',
      }[unit.toLowerCase()];
      const hint = binary === undefined ? 'units: B, KiB, MiB, GiB' : `did you mean "${match[1]}${binary}"?`;
      throw new SizeError(`${expected}, got ${describeValue(input)} (${hint})`);
    }
    bytes = Number(match[1]) * (unit === '' ? 1 : SIZE_UNITS[unit as SizeUnit]);
  } else {
    throw new SizeError(`${expected}, got ${describeValue(input)}`);
  }
  if (!Number.isFinite(bytes) || bytes < 0) throw new SizeError(`${expected}, got ${describeValue(input)}`);
  if (!Number.isSafeInteger(bytes)) {
    throw new SizeError(`must be a whole number of bytes, got ${describeValue(input)} (${bytes} bytes)`);
  }
  return bytes;
}

/** Format bytes compactly: `512B`, `64KiB`, `1.5KiB`, `1MiB` (parses back with {@link parseSize}). */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  for (const unit of ['GiB', 'MiB', 'KiB'] as const) {
    const size = SIZE_UNITS[unit];
    if (bytes >= size) {
      const value = bytes / size;
      return `${Number.isInteger(value) ? value : Number(value.toFixed(2))}${unit}`;
    }
  }
  return `${bytes}B`;
}
