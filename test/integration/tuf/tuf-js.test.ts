import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Updater } from 'tuf-js';
import { createTufRepository, serveTufRepositories } from '../../../services/updates/tuf/index.js';
import type {
  TufHttpServer,
  TufRepository,
  TufServableRepository,
} from '../../../services/updates/tuf/index.js';

// tuf-js checks expiry against the wall clock, so the repository is signed "now" (test-only).
const NOW = Date.now();
const FW = new TextEncoder().encode('sphere os image 23.10 - signed payload');
const APP = new TextEncoder().encode('telemetry app 2.0');

describe('tuf-js interop', () => {
  const repos = new Map<string, TufServableRepository>();
  let server: TufHttpServer;
  const dirs: string[] = [];

  const tempDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'tuf-it-'));
    dirs.push(d);
    return d;
  };

  /** A fresh client directory seeded with the repository's version-1 root as root.json. */
  function updaterFor(
    tenant: string,
    repo: TufRepository,
    metadataDir = tempDir(),
  ): { updater: Updater; dir: string } {
    const root = repo.metadataFiles().get('1.root.json');
    if (!root) throw new Error('no root');
    try {
      readFileSync(join(metadataDir, 'root.json'));
    } catch {
      writeFileSync(join(metadataDir, 'root.json'), root);
    }
    const updater = new Updater({
      metadataBaseUrl: `${server.url}/${tenant}/metadata/`,
      targetBaseUrl: `${server.url}/${tenant}/targets/`,
      metadataDir,
      targetDir: tempDir(),
      config: { fetchRetries: 0 },
    });
    return { updater, dir: metadataDir };
  }

  beforeAll(async () => {
    server = await serveTufRepositories({ port: 0, repos: (t) => repos.get(t) });
  });
  afterAll(async () => {
    await server.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('interop - stock tuf-js refreshes and downloads a published target', async () => {
    const repo = createTufRepository({ nowMs: NOW });
    repo.addTarget('os/sphere-os.img', FW, { securityVersion: 5, kind: 'os', version: '23.10' });
    repo.publish(NOW);
    repos.set('contoso', repo);

    const { updater } = updaterFor('contoso', repo);
    await updater.refresh();
    const info = await updater.getTargetInfo('os/sphere-os.img');
    expect(info?.length).toBe(FW.length);
    expect(info?.custom).toEqual({ securityVersion: 5, kind: 'os', version: '23.10' });
    if (!info) throw new Error('target not found');
    const path = await updater.downloadTarget(info, join(tempDir(), 'img'));
    expect(new Uint8Array(readFileSync(path))).toEqual(FW);
  });

  it('interop - a second refresh after re-publish sees the new target', async () => {
    const repo = createTufRepository({ nowMs: NOW });
    repo.addTarget('os/sphere-os.img', FW, { securityVersion: 5, kind: 'os', version: '23.10' });
    repo.publish(NOW);
    repos.set('fabrikam', repo);
    const dir = tempDir();
    const first = updaterFor('fabrikam', repo, dir).updater;
    await first.refresh();
    expect(await first.getTargetInfo('apps/telemetry.bin')).toBeUndefined();

    repo.addTarget('apps/telemetry.bin', APP, { securityVersion: 1, kind: 'app', version: '2.0' });
    repo.publish(NOW + 1000);
    const second = updaterFor('fabrikam', repo, dir).updater;
    await second.refresh();
    const info = await second.getTargetInfo('apps/telemetry.bin');
    if (!info) throw new Error('new target not visible');
    const path = await second.downloadTarget(info, join(tempDir(), 'app'));
    expect(new Uint8Array(readFileSync(path))).toEqual(APP);
    expect(JSON.parse(readFileSync(join(dir, 'timestamp.json'), 'utf8'))).toMatchObject({
      signed: { version: 3 },
    });
  });

  it('interop - tuf-js follows a root rotation of the timestamp key', async () => {
    const repo = createTufRepository({ nowMs: NOW });
    repo.addTarget('os/sphere-os.img', FW, { securityVersion: 5, kind: 'os', version: '23.10' });
    repo.publish(NOW);
    repos.set('rotating', repo);
    const dir = tempDir();
    await updaterFor('rotating', repo, dir).updater.refresh();
    repo.rotateRoot(NOW + 1000, ['root', 'timestamp']);
    const next = updaterFor('rotating', repo, dir).updater;
    await next.refresh();
    expect(JSON.parse(readFileSync(join(dir, 'root.json'), 'utf8'))).toMatchObject({
      signed: { version: 2 },
    });
  });

  it('interop - tuf-js rejects a timestamp rolled back to an older version', async () => {
    const repo = createTufRepository({ nowMs: NOW });
    repo.addTarget('os/sphere-os.img', FW, { securityVersion: 5, kind: 'os', version: '23.10' });
    repo.publish(NOW);
    const oldTimestamp = repo.metadataFiles().get('timestamp.json');
    if (!oldTimestamp) throw new Error('no timestamp');
    repo.publish(NOW + 1000);
    // The attacker serves everything current except an older, validly signed timestamp.
    let attack = false;
    repos.set('victim', {
      metadataFiles: () => {
        const files = new Map(repo.metadataFiles());
        if (attack) files.set('timestamp.json', oldTimestamp);
        return files;
      },
      targetBytes: (p) => repo.targetBytes(p),
    });
    const dir = tempDir();
    await updaterFor('victim', repo, dir).updater.refresh();
    attack = true;
    await expect(updaterFor('victim', repo, dir).updater.refresh()).rejects.toThrow(/timestamp version/i);
    // Control: a client with no prior trust accepts the same (older but genuine) timestamp.
    await expect(updaterFor('victim', repo).updater.refresh()).resolves.toBeUndefined();
  });
});
