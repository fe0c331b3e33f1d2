import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TufRepositoryError, createTufRepository, tufExpires } from '../../../services/updates/tuf/index.js';
import { DAY, FW, T0, countingRandom, decode, file, makeRepo } from './fixtures.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

describe('tuf repository', () => {
  it('repository - initial root is spec-shaped with keys, roles and thresholds', () => {
    const repo = makeRepo();
    const root = decode(file(repo, '1.root.json'));
    expect(file(repo, 'root.json')).toEqual(file(repo, '1.root.json'));
    expect(root.signed['_type']).toBe('root');
    expect(root.signed['spec_version']).toMatch(/^1\.0\.\d+$/);
    expect(root.signed['version']).toBe(1);
    expect(root.signed['expires']).toBe(tufExpires(T0 + 365 * DAY));
    expect(root.signed['expires']).toMatch(ISO);
    expect(root.signed['consistent_snapshot']).toBe(true);
    const keys = root.signed['keys'] as Record<
      string,
      { keytype: string; scheme: string; keyval: { public: string } }
    >;
    const roles = root.signed['roles'] as Record<string, { keyids: string[]; threshold: number }>;
    expect(Object.keys(roles).sort()).toEqual(['root', 'snapshot', 'targets', 'timestamp']);
    for (const role of Object.values(roles)) {
      expect(role.threshold).toBe(1);
      expect(role.keyids).toHaveLength(1);
      const k = keys[role.keyids[0] ?? ''];
      expect(k?.keytype).toBe('ed25519');
      expect(k?.scheme).toBe('ed25519');
      expect(k?.keyval.public).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(root.signatures).toHaveLength(1);
    expect(root.signatures[0]?.keyid).toBe(roles['root']?.keyids[0]);
    expect(root.signatures[0]?.sig).toMatch(/^[0-9a-f]{128}$/);
  });

  it('repository - key ids are the sha256 of the canonical key JSON', () => {
    const root = decode(file(makeRepo(), '1.root.json'));
    const keys = root.signed['keys'] as Record<string, { keyval: { public: string } }>;
    for (const [id, k] of Object.entries(keys)) {
      const canonical = `{"keytype":"ed25519","keyval":{"public":"${k.keyval.public}"},"scheme":"ed25519"}`;
      expect(id).toBe(sha(new TextEncoder().encode(canonical)));
    }
  });

  it('repository - publish bumps targets, snapshot and timestamp and links them by version, length and hash', () => {
    const repo = makeRepo();
    repo.addTarget('os/fw.bin', FW, { securityVersion: 3, kind: 'os', version: '1.2.3' });
    repo.publish(T0 + 1000);
    expect(repo.versions()).toEqual({ root: 1, targets: 2, snapshot: 2, timestamp: 2 });

    const targetsBytes = file(repo, '2.targets.json');
    const targets = decode(targetsBytes);
    expect(targets.signed['_type']).toBe('targets');
    expect(targets.signed['version']).toBe(2);
    expect(targets.signed['expires']).toBe(tufExpires(T0 + 1000 + 90 * DAY));
    expect(targets.signed['targets']).toEqual({
      'os/fw.bin': {
        length: FW.length,
        hashes: { sha256: sha(FW) },
        custom: { securityVersion: 3, kind: 'os', version: '1.2.3' },
      },
    });

    const snapshotBytes = file(repo, '2.snapshot.json');
    const snapshot = decode(snapshotBytes);
    expect(snapshot.signed['_type']).toBe('snapshot');
    expect(snapshot.signed['expires']).toBe(tufExpires(T0 + 1000 + 7 * DAY));
    expect(snapshot.signed['meta']).toEqual({
      'targets.json': { version: 2, length: targetsBytes.length, hashes: { sha256: sha(targetsBytes) } },
    });

    const timestamp = decode(file(repo, 'timestamp.json'));
    expect(timestamp.signed['_type']).toBe('timestamp');
    expect(timestamp.signed['version']).toBe(2);
    expect(timestamp.signed['expires']).toBe(tufExpires(T0 + 1000 + DAY));
    expect(timestamp.signed['meta']).toEqual({
      'snapshot.json': { version: 2, length: snapshotBytes.length, hashes: { sha256: sha(snapshotBytes) } },
    });
    // Consistent snapshots: older versions stay addressable.
    expect(repo.metadataFiles().has('1.targets.json')).toBe(true);
    expect(repo.metadataFiles().has('1.snapshot.json')).toBe(true);
  });

  it('repository - targets are served by hash-prefixed name only after publish', () => {
    const repo = makeRepo();
    repo.addTarget('os/fw.bin', FW);
    expect(repo.targetBytes(`os/${sha(FW)}.fw.bin`)).toBeUndefined();
    repo.publish(T0);
    expect(repo.targetBytes(`os/${sha(FW)}.fw.bin`)).toEqual(FW);
    expect(repo.targetBytes('os/fw.bin')).toBeUndefined();
  });

  it('repository - rotateTimestamp bumps only the timestamp', () => {
    const repo = makeRepo();
    repo.rotateTimestamp(T0 + 5000);
    expect(repo.versions()).toEqual({ root: 1, targets: 1, snapshot: 1, timestamp: 2 });
    expect(decode(file(repo, 'timestamp.json')).signed['expires']).toBe(tufExpires(T0 + 5000 + DAY));
  });

  it('repository - root threshold 2 yields two root keys and two signatures', () => {
    const repo = makeRepo({ thresholds: { root: 2 } });
    const root = decode(file(repo, '1.root.json'));
    const roles = root.signed['roles'] as Record<string, { keyids: string[]; threshold: number }>;
    expect(roles['root']).toMatchObject({ threshold: 2 });
    expect(roles['root']?.keyids).toHaveLength(2);
    expect(root.signatures.map((s) => s.keyid).sort()).toEqual([...(roles['root']?.keyids ?? [])].sort());
  });

  it('repository - identical seeds and clock give byte-identical metadata', () => {
    const a = createTufRepository({ nowMs: T0, randomBytes: countingRandom(7) });
    const b = createTufRepository({ nowMs: T0, randomBytes: countingRandom(7) });
    const c = createTufRepository({ nowMs: T0, randomBytes: countingRandom(8) });
    expect(file(a, 'timestamp.json')).toEqual(file(b, 'timestamp.json'));
    expect(file(a, '1.root.json')).not.toEqual(file(c, '1.root.json'));
  });

  it('repository - invalid arguments throw TufRepositoryError', () => {
    expect(() => makeRepo({ thresholds: { root: 0 } })).toThrow(TufRepositoryError);
    expect(() => makeRepo({ keys: { root: [new Uint8Array(31)] } })).toThrow(TufRepositoryError);
    const repo = makeRepo();
    expect(() => repo.addTarget('a/../b', FW)).toThrow(TufRepositoryError);
    expect(() => repo.addTarget('', FW)).toThrow(TufRepositoryError);
    expect(() => repo.addTarget('x', FW, { securityVersion: -1, kind: 'app', version: '1' })).toThrow(
      TufRepositoryError,
    );
  });
});
