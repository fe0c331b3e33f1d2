import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  TUF_ERROR_CODES,
  createTufClientState,
  updateMetadata,
  verifyTarget,
} from '../../../actors/tuf/index.js';
import type { TufClientState, TufUpdateFiles } from '../../../actors/tuf/index.js';
import type { TufRepository } from '../../../services/updates/tuf/index.js';
import { DAY, FW, T0, currentFiles, decode, encode, file, makeRepo } from './fixtures.js';

const NAME = 'os/fw.bin';
const CUSTOM = { securityVersion: 3, kind: 'os', version: '1.2.3' } as const;
const ALL_CODES = new Set<string>(Object.values(TUF_ERROR_CODES));

function repoWithTarget(): TufRepository {
  const repo = makeRepo();
  repo.addTarget(NAME, FW, CUSTOM);
  repo.publish(T0 + 1000);
  return repo;
}

function trust(repo: TufRepository): TufClientState {
  const s = createTufClientState(file(repo, '1.root.json'));
  if (!s.ok) throw new Error(s.error.message);
  return s.value;
}

function updated(state: TufClientState, files: TufUpdateFiles, nowMs = T0 + 2000): TufClientState {
  const r = updateMetadata(state, files, nowMs);
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

function codeOf(r: { ok: boolean; error?: { code: string } }): string {
  return r.ok ? 'OK' : (r.error?.code ?? '?');
}

/** Flip one hex digit of the first signature, keeping the JSON valid. */
function flipSignature(bytes: Uint8Array): Uint8Array {
  const doc = decode(bytes);
  const sig = doc.signatures[0];
  if (!sig) throw new Error('no signature');
  sig.sig = (sig.sig[0] === '0' ? '1' : '0') + sig.sig.slice(1);
  return encode(doc);
}

describe('tuf client', () => {
  it('client - accepts a fresh repository and a listed target', () => {
    const repo = repoWithTarget();
    const state = updated(trust(repo), currentFiles(repo));
    expect(state.targets?.signed.version).toBe(2);
    const r = verifyTarget(state, NAME, FW, 3);
    expect(r).toEqual({
      ok: true,
      value: {
        name: NAME,
        length: FW.length,
        hashes: { sha256: createHash('sha256').update(FW).digest('hex') },
        securityVersion: 3,
        kind: 'os',
        version: '1.2.3',
        targetsVersion: 2,
      },
    });
  });

  it('client - accepts a later publish after an earlier one was trusted', () => {
    const repo = repoWithTarget();
    const s1 = updated(trust(repo), currentFiles(repo));
    repo.addTarget('app/a.bin', FW, { securityVersion: 1, kind: 'app', version: '0.1' });
    repo.publish(T0 + 3000);
    const s2 = updated(s1, currentFiles(repo), T0 + 4000);
    expect(codeOf(verifyTarget(s2, 'app/a.bin', FW, 0))).toBe('OK');
    // Same-version timestamp is tolerated (kept, §5.4.3.1).
    expect(codeOf(updateMetadata(s2, currentFiles(repo), T0 + 5000))).toBe('OK');
  });

  it('client - verifyTarget before any update is NOT_READY', () => {
    const repo = repoWithTarget();
    expect(codeOf(verifyTarget(trust(repo), NAME, FW, 0))).toBe(TUF_ERROR_CODES.NOT_READY);
  });

  describe('attacks', () => {
    it('attack - rollback: an older timestamp after a newer one was trusted', () => {
      const repo = repoWithTarget();
      const old = currentFiles(repo);
      repo.publish(T0 + 3000);
      const state = updated(trust(repo), currentFiles(repo), T0 + 4000);
      expect(codeOf(updateMetadata(state, old, T0 + 4000))).toBe(TUF_ERROR_CODES.ROLLBACK);
      // Control: the same old files are acceptable to a client that never saw the newer ones.
      expect(codeOf(updateMetadata(trust(repo), old, T0 + 4000))).toBe('OK');
    });

    it('attack - rollback: an older snapshot after a newer one was trusted', () => {
      const repo = repoWithTarget();
      const old = currentFiles(repo);
      repo.publish(T0 + 3000);
      const now = currentFiles(repo);
      const state = updated(trust(repo), now, T0 + 4000);
      const r = updateMetadata(state, { ...now, snapshot: old.snapshot, targets: old.targets }, T0 + 4000);
      expect(codeOf(r)).toBe(TUF_ERROR_CODES.ROLLBACK);
      expect(r.ok ? '' : r.error.message).toMatch(/^snapshot/);
    });

    it('attack - rollback: older targets after newer ones were trusted', () => {
      const repo = repoWithTarget();
      const old = currentFiles(repo);
      repo.publish(T0 + 3000);
      const now = currentFiles(repo);
      const state = updated(trust(repo), now, T0 + 4000);
      const r = updateMetadata(state, { ...now, targets: old.targets }, T0 + 4000);
      expect(codeOf(r)).toBe(TUF_ERROR_CODES.ROLLBACK);
      expect(r.ok ? '' : r.error.message).toMatch(/^targets/);
    });

    it('attack - rollback: an older root version presented as a newer root', () => {
      const repo = repoWithTarget();
      repo.rotateRoot(T0 + 3000);
      const state = trust(repo);
      const r = updateMetadata(
        state,
        { ...currentFiles(repo), roots: [file(repo, '1.root.json')] },
        T0 + 4000,
      );
      expect(codeOf(r)).toBe(TUF_ERROR_CODES.ROLLBACK);
    });

    it('attack - freeze: an expired timestamp is rejected', () => {
      const repo = repoWithTarget(); // timestamp signed at T0+1000, expires one day later
      const state = trust(repo);
      expect(codeOf(updateMetadata(state, currentFiles(repo), T0 + 1000 + DAY - 1))).toBe('OK');
      expect(codeOf(updateMetadata(state, currentFiles(repo), T0 + 1000 + DAY))).toBe(
        TUF_ERROR_CODES.EXPIRED,
      );
    });

    it('attack - freeze: an expired root is rejected even with fresh timestamps', () => {
      const repo = makeRepo({ expiries: { rootMs: DAY / 2 } });
      repo.publish(T0 + DAY);
      expect(codeOf(updateMetadata(trust(repo), currentFiles(repo), T0 + DAY))).toBe(TUF_ERROR_CODES.EXPIRED);
    });

    it('attack - mix-and-match: targets version N with a snapshot listing N+1', () => {
      const repo = repoWithTarget();
      const old = currentFiles(repo);
      const state = updated(trust(repo), old);
      repo.addTarget('evil-but-old-listing.bin', FW, CUSTOM);
      repo.publish(T0 + 3000);
      const now = currentFiles(repo);
      const mixed = { ...now, targets: old.targets };
      expect(codeOf(updateMetadata(state, mixed, T0 + 4000))).toBe(TUF_ERROR_CODES.MIX_AND_MATCH);
      expect(codeOf(updateMetadata(trust(repo), mixed, T0 + 4000))).toBe(TUF_ERROR_CODES.MIX_AND_MATCH);
    });

    it('attack - mix-and-match: a snapshot other than the one the timestamp lists', () => {
      const repo = repoWithTarget();
      const old = currentFiles(repo);
      repo.publish(T0 + 3000);
      const now = currentFiles(repo);
      const r = updateMetadata(
        trust(repo),
        { ...now, snapshot: old.snapshot, targets: old.targets },
        T0 + 4000,
      );
      expect(codeOf(r)).toBe(TUF_ERROR_CODES.MIX_AND_MATCH);
    });

    it('attack - bad signature: one flipped signature digit on the timestamp', () => {
      const repo = repoWithTarget();
      const files = currentFiles(repo);
      const r = updateMetadata(
        trust(repo),
        { ...files, timestamp: flipSignature(files.timestamp as Uint8Array) },
        T0,
      );
      expect(codeOf(r)).toBe(TUF_ERROR_CODES.BAD_SIGNATURE);
    });

    it('attack - bad signature: targets content altered after signing', () => {
      const repo = repoWithTarget();
      const files = currentFiles(repo);
      const doc = decode(files.targets as Uint8Array);
      const targets = doc.signed['targets'] as Record<string, { custom: { securityVersion: number } }>;
      const entry = targets[NAME];
      if (!entry) throw new Error('missing target');
      entry.custom.securityVersion = 99;
      const r = updateMetadata(trust(repo), { ...files, targets: encode(doc) }, T0);
      expect(codeOf(r)).toBe(TUF_ERROR_CODES.BAD_SIGNATURE);
    });

    it('attack - missing signature: timestamp with no signatures', () => {
      const repo = repoWithTarget();
      const files = currentFiles(repo);
      const doc = decode(files.timestamp as Uint8Array);
      doc.signatures = [];
      expect(codeOf(updateMetadata(trust(repo), { ...files, timestamp: encode(doc) }, T0))).toBe(
        TUF_ERROR_CODES.BAD_SIGNATURE,
      );
    });

    it('attack - below threshold: root threshold 2 with only one signature', () => {
      const repo = makeRepo({ thresholds: { root: 2 } });
      const full = file(repo, '1.root.json');
      expect(codeOf(createTufClientState(full))).toBe('OK');
      const doc = decode(full);
      expect(doc.signatures).toHaveLength(2);
      doc.signatures = doc.signatures.slice(1);
      expect(codeOf(createTufClientState(encode(doc)))).toBe(TUF_ERROR_CODES.BAD_SIGNATURE);
    });

    it('attack - below threshold: a new root signed only by its own new keys', () => {
      const repo = repoWithTarget();
      const state = trust(repo);
      repo.rotateRoot(T0 + 3000, ['root']);
      const doc = decode(file(repo, '2.root.json'));
      expect(doc.signatures).toHaveLength(2);
      const oldRootKey = (
        decode(file(repo, '1.root.json')).signed['roles'] as Record<string, { keyids: string[] }>
      )['root']?.keyids[0];
      doc.signatures = doc.signatures.filter((s) => s.keyid !== oldRootKey);
      const r = updateMetadata(state, { ...currentFiles(repo), roots: [encode(doc)] }, T0 + 4000);
      expect(codeOf(r)).toBe(TUF_ERROR_CODES.BAD_SIGNATURE);
    });

    it('attack - root rotation: timestamp keys rotated need the new root', () => {
      const repo = repoWithTarget();
      const state = updated(trust(repo), currentFiles(repo));
      repo.rotateRoot(T0 + 3000, ['root', 'timestamp']);
      const files = currentFiles(repo);
      expect(codeOf(updateMetadata(state, files, T0 + 4000))).toBe(TUF_ERROR_CODES.BAD_SIGNATURE);
      const r = updateMetadata(state, { ...files, roots: [file(repo, '2.root.json')] }, T0 + 4000);
      expect(codeOf(r)).toBe('OK');
      expect(r.ok && r.value.root.signed.version).toBe(2);
    });

    it('attack - root chain gap: version 3 without version 2', () => {
      const repo = repoWithTarget();
      repo.rotateRoot(T0 + 3000);
      repo.rotateRoot(T0 + 3000);
      const r = updateMetadata(
        trust(repo),
        { ...currentFiles(repo), roots: [file(repo, '3.root.json')] },
        T0 + 4000,
      );
      expect(codeOf(r)).toBe(TUF_ERROR_CODES.ROOT_VERSION_GAP);
      const chained = [file(repo, '3.root.json'), file(repo, '2.root.json')];
      expect(codeOf(updateMetadata(trust(repo), { ...currentFiles(repo), roots: chained }, T0 + 4000))).toBe(
        'OK',
      );
    });

    it('attack - wrong hash: same length, different bytes', () => {
      const repo = repoWithTarget();
      const state = updated(trust(repo), currentFiles(repo));
      const evil = Uint8Array.from(FW);
      evil[0] = (evil[0] ?? 0) ^ 1;
      expect(codeOf(verifyTarget(state, NAME, evil, 0))).toBe(TUF_ERROR_CODES.HASH_MISMATCH);
    });

    it('attack - wrong length: appended byte', () => {
      const repo = repoWithTarget();
      const state = updated(trust(repo), currentFiles(repo));
      const evil = new Uint8Array([...FW, 0]);
      expect(codeOf(verifyTarget(state, NAME, evil, 0))).toBe(TUF_ERROR_CODES.LENGTH_MISMATCH);
    });

    it('attack - unknown target: a name the targets role never listed', () => {
      const repo = repoWithTarget();
      const state = updated(trust(repo), currentFiles(repo));
      expect(codeOf(verifyTarget(state, 'os/other.bin', FW, 0))).toBe(TUF_ERROR_CODES.UNKNOWN_TARGET);
      expect(codeOf(verifyTarget(state, 'constructor', FW, 0))).toBe(TUF_ERROR_CODES.UNKNOWN_TARGET);
    });

    it('attack - security-version rollback: target below the device floor', () => {
      const repo = repoWithTarget();
      const state = updated(trust(repo), currentFiles(repo));
      expect(codeOf(verifyTarget(state, NAME, FW, 3))).toBe('OK');
      expect(codeOf(verifyTarget(state, NAME, FW, 4))).toBe(TUF_ERROR_CODES.SECURITY_VERSION_ROLLBACK);
    });

    it('attack - malformed: non-JSON bytes and wrong field types', () => {
      const repo = repoWithTarget();
      const state = trust(repo);
      const files = currentFiles(repo);
      expect(codeOf(createTufClientState(new Uint8Array([0xff, 0xfe, 0x00])))).toBe(
        TUF_ERROR_CODES.MALFORMED,
      );
      expect(codeOf(updateMetadata(state, { ...files, timestamp: '{"signed":' }, T0))).toBe(
        TUF_ERROR_CODES.MALFORMED,
      );
      const doc = decode(files.timestamp as Uint8Array);
      doc.signed['version'] = '2';
      expect(codeOf(updateMetadata(state, { ...files, timestamp: encode(doc) }, T0))).toBe(
        TUF_ERROR_CODES.MALFORMED,
      );
      const doc2 = decode(files.snapshot as Uint8Array);
      doc2.signed['_type'] = 'targets';
      expect(codeOf(updateMetadata(state, { ...files, snapshot: encode(doc2) }, T0))).toBe(
        TUF_ERROR_CODES.MALFORMED,
      );
      const doc3 = decode(files.targets as Uint8Array);
      doc3.signed['expires'] = 'tomorrow';
      expect(codeOf(updateMetadata(state, { ...files, targets: encode(doc3) }, T0))).toBe(
        TUF_ERROR_CODES.MALFORMED,
      );
    });

    it('attack - malformed: a target without an integer securityVersion', () => {
      const repo = makeRepo();
      repo.addTarget('plain.bin', FW);
      repo.publish(T0);
      const state = updated(trust(repo), currentFiles(repo));
      expect(codeOf(verifyTarget(state, 'plain.bin', FW, 0))).toBe(TUF_ERROR_CODES.MALFORMED);
    });
  });

  it('client - a rejected update leaves the trusted state usable', () => {
    const repo = repoWithTarget();
    const state = updated(trust(repo), currentFiles(repo));
    const files = currentFiles(repo);
    expect(codeOf(updateMetadata(state, { ...files, targets: 'nope' }, T0 + 2000))).toBe(
      TUF_ERROR_CODES.MALFORMED,
    );
    expect(codeOf(verifyTarget(state, NAME, FW, 0))).toBe('OK');
  });

  describe('fuzz', () => {
    type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

    /** Replaces the value reached by following `path` (indices mod child count) with `value`. */
    function mutateAt(doc: Json, path: readonly number[], value: Json): Json {
      if (path.length === 0 || doc === null || typeof doc !== 'object') return value;
      const [head = 0, ...rest] = path;
      if (Array.isArray(doc)) {
        if (doc.length === 0) return value;
        const i = head % doc.length;
        const copy = [...doc];
        copy[i] = mutateAt(doc[i] ?? null, rest, value);
        return copy;
      }
      const keys = Object.keys(doc);
      if (keys.length === 0) return value;
      const k = keys[head % keys.length] ?? '';
      return { ...doc, [k]: mutateAt(doc[k] ?? null, rest, value) };
    }

    const repo = repoWithTarget();
    repo.rotateRoot(T0 + 1500, ['timestamp']);
    const base = { ...currentFiles(repo), roots: [file(repo, '2.root.json')] };
    const rootV1 = file(repo, '1.root.json');
    const fields = ['timestamp', 'snapshot', 'targets', 'root2', 'root1'] as const;

    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant('value' as const),
        path: fc.array(fc.nat(), { maxLength: 6 }),
        value: fc.jsonValue({ maxDepth: 3 }),
      }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
    );

    function apply(bytes: Uint8Array, m: MutationT): Uint8Array {
      if (m.kind === 'truncate') return bytes.slice(0, m.at % (bytes.length + 1));
      if (m.kind === 'byte') {
        const out = Uint8Array.from(bytes);
        const i = m.at % out.length;
        out[i] = (out[i] ?? 0) ^ m.xor;
        return out;
      }
      return encode(mutateAt(JSON.parse(new TextDecoder().decode(bytes)) as Json, m.path, m.value as Json));
    }
    type MutationT =
      | { kind: 'value'; path: number[]; value: unknown }
      | { kind: 'truncate'; at: number }
      | { kind: 'byte'; at: number; xor: number };

    it('fuzz - arbitrary mutations of valid metadata never throw and always give a typed result', () => {
      // Control: the unmutated inputs verify, so a mutation is what causes any rejection.
      const good = createTufClientState(rootV1);
      expect(good.ok && codeOf(updateMetadata(good.value, base, T0 + 2000))).toBe('OK');
      fc.assert(
        fc.property(fc.constantFrom(...fields), mutation, (field, m) => {
          const files = { ...base, roots: [...base.roots] };
          let root1 = rootV1;
          if (field === 'root1') root1 = apply(rootV1, m);
          else if (field === 'root2') files.roots = [apply(base.roots[0] ?? new Uint8Array(), m)];
          else files[field] = apply(files[field] as Uint8Array, m);
          const s = createTufClientState(root1);
          expect(typeof s.ok).toBe('boolean');
          if (!s.ok) {
            expect(ALL_CODES.has(s.error.code)).toBe(true);
            return;
          }
          const r = updateMetadata(s.value, files, T0 + 2000);
          if (!r.ok) {
            expect(ALL_CODES.has(r.error.code)).toBe(true);
            expect(typeof r.error.message).toBe('string');
            return;
          }
          const t = verifyTarget(r.value, NAME, FW, 0);
          if (!t.ok) expect(ALL_CODES.has(t.error.code)).toBe(true);
        }),
        { numRuns: 400, seed: 0x7f5 },
      );
    });

    it('fuzz - byte-level corruption of hash-pinned snapshot or targets is never accepted', () => {
      // Timestamp is excluded: nothing pins its bytes, and e.g. upper-casing a signature
      // hex digit is a harmless re-encoding that still verifies.
      const s = createTufClientState(rootV1);
      if (!s.ok) throw new Error('root');
      fc.assert(
        fc.property(
          fc.constantFrom('snapshot', 'targets'),
          fc.nat(),
          fc.integer({ min: 1, max: 255 }),
          (field, at, xor) => {
            const bytes = Uint8Array.from(base[field] as Uint8Array);
            const i = at % bytes.length;
            bytes[i] = (bytes[i] ?? 0) ^ xor;
            const r = updateMetadata(s.value, { ...base, [field]: bytes }, T0 + 2000);
            // Flipping insignificant JSON whitespace is impossible here (compact JSON), so
            // every change must be caught by parsing, signature, or hash checks.
            return !r.ok && ALL_CODES.has(r.error.code);
          },
        ),
        { numRuns: 300, seed: 0x1ee7 },
      );
    });
  });
});
