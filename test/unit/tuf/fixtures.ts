/** Shared helpers for the TUF unit tests: deterministic repositories and file sets. */
import { createTufRepository } from '../../../services/updates/tuf/index.js';
import type { CreateTufRepositoryOptions, TufRepository } from '../../../services/updates/tuf/index.js';
import type { TufUpdateFiles } from '../../../actors/tuf/index.js';

export const T0 = Date.parse('2030-01-01T00:00:00Z');
export const DAY = 24 * 60 * 60 * 1000;
export const FW = new TextEncoder().encode('firmware image v1 - payload bytes');

/** A counter-based randomBytes so every repository is reproducible. */
export function countingRandom(start = 1): (n: number) => Uint8Array {
  let i = start;
  return (n) => new Uint8Array(n).fill(i++ & 0xff);
}

export function makeRepo(opts: Partial<CreateTufRepositoryOptions> = {}): TufRepository {
  return createTufRepository({ nowMs: T0, randomBytes: countingRandom(), ...opts });
}

export function file(repo: TufRepository, name: string): Uint8Array {
  const b = repo.metadataFiles().get(name);
  if (b === undefined) throw new Error(`no metadata file ${name}`);
  return b;
}

/** The current timestamp/snapshot/targets a client would fetch. */
export function currentFiles(repo: TufRepository): TufUpdateFiles {
  const v = repo.versions();
  return {
    timestamp: file(repo, 'timestamp.json'),
    snapshot: file(repo, `${v.snapshot}.snapshot.json`),
    targets: file(repo, `${v.targets}.targets.json`),
  };
}

export function decode(b: Uint8Array): {
  signed: Record<string, unknown>;
  signatures: { keyid: string; sig: string }[];
} {
  return JSON.parse(new TextDecoder().decode(b)) as never;
}

export function encode(v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v));
}
