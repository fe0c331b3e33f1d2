/** The two shapes a fuzzed entry point's property takes, and the helpers its checks share. */
import type fc from 'fast-check';

/** A property over a pure function: inputs, and a check that throws what is wrong. */
export interface PureFuzz<I> {
  readonly arbitrary: fc.Arbitrary<I>;
  check(input: I): void;
  /**
   * Names the known bug a failure belongs to (`undefined`: not a known one). Inputs of a known
   * bug are counted and reported, not failed on, so fuzzing goes on looking for others; each
   * known bug has a minimal reproduction in test/fuzz that is marked `it.fails`.
   */
  known?(input: I, error: unknown): string | undefined;
}

/** A property over a running service: as {@link PureFuzz}, asynchronous, plus `settle`. */
export interface WireFuzz<I> {
  readonly arbitrary: fc.Arbitrary<I>;
  check(input: I): Promise<void>;
  /** Runs once after the last input (counters, liveness); throws what is wrong. */
  settle(): Promise<void>;
  /** Findings that are known bugs: reported, not failed on. */
  readonly notes: string[];
}

/** Fails the current check with `message` (fast-check shows it with the counterexample). */
export function fail(message: string): never {
  throw new Error(message);
}

/**
 * Deep equality of decoded values: plain objects by own enumerable keys whatever their prototype
 * (fast-check may build records without one), byte arrays by content, numbers with Object.is.
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array)
    return (
      a instanceof Uint8Array &&
      b instanceof Uint8Array &&
      a.length === b.length &&
      a.every((x, i) => x === b[i])
    );
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
