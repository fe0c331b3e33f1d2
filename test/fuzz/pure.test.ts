/**
 * Fuzz - every pure entry point of the table (decoders, deserializers, parsers) with its CI
 * number of fast-check inputs and the fixed seed (FUZZ_SEED / FUZZ_RUNS / FUZZ_PATH override).
 */
import { describe } from 'vitest';
import { FUZZ_ENTRY_POINTS } from '../../deploy/fuzz/entry-points.js';
import { fuzzIt } from './fuzz-it.js';

describe('fuzz - pure entry points', () => {
  for (const entry of FUZZ_ENTRY_POINTS.filter((e) => e.needs === 'none')) fuzzIt(entry, () => null);
});
