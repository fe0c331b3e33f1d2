import { describe, expect, it } from 'vitest';
import { compileShardOptions } from '../../../services/shard/options.js';

const base = ['--nats', 'nats://127.0.0.1:4222', '--admin-token', 'admin-token-0123456789'];
const compile = (...args: string[]) => {
  const o = compileShardOptions([...base, ...args], {});
  if (o === 'help') throw new Error('unexpected help');
  return o;
};

describe('shard options', () => {
  it('shard options - the journal is on by default, named, or off', () => {
    expect(compile().journal).toBe('sphere');
    expect(compile('--journal', 'fleet-a').journal).toBe('fleet-a');
    expect(compile('--no-journal').journal).toBeNull();
  });

  it('shard options - contradictory or invalid journal flags are refused with the flag named', () => {
    expect(() => compile('--journal', 'x', '--no-journal')).toThrow(/--journal and --no-journal/);
    expect(() => compile('--journal', 'Bad Name')).toThrow(/--journal must be/);
    expect(() => compile('--journal', '9lives')).toThrow(/starting with a letter/);
  });
});
