/**
 * Images over the real operator gRPC API of a live shard, published into the tenant's TUF
 * repository, which the shard serves over HTTP: a stock TUF client (tuf-js) refreshes the
 * metadata and downloads the image.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Updater } from 'tuf-js';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestTenant, useShard, callError } from '../../fixtures/shard.js';

const env = useShard({ seed: 'images' });
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'sphere-tuf-'));
  dirs.push(d);
  return d;
};

/** A tuf-js client for `tenantId` that trusts the repository's first root (trust on first use). */
async function updaterFor(tenantId: string): Promise<Updater> {
  const base = `${env().shard.tufUrl}/${tenantId}`;
  const metadataDir = tempDir();
  const root = await fetch(`${base}/metadata/1.root.json`);
  expect(root.status).toBe(200);
  writeFileSync(join(metadataDir, 'root.json'), Buffer.from(await root.arrayBuffer()));
  return new Updater({
    metadataBaseUrl: `${base}/metadata/`,
    targetBaseUrl: `${base}/targets/`,
    metadataDir,
    targetDir: tempDir(),
    config: { fetchRetries: 0 },
  });
}

describe('operator api images and TUF', () => {
  it('images - an uploaded image is signed into the tenant repository and a stock TUF client downloads it', async () => {
    const t = await createTestTenant(env().admin, 'images-tuf');
    const content = Buffer.alloc(256 * 1024, 7);
    const up = await t.client.uploadImage({
      kind: 'os',
      name: 'azure-sphere-os',
      version: '25.10',
      securityVersion: 5,
      content,
    });
    expect(up.image).toMatchObject({
      kind: 'os',
      name: 'azure-sphere-os',
      version: '25.10',
      securityVersion: 5,
      length: content.length,
      sha256: createHash('sha256').update(content).digest('hex'),
      targetName: 'os/azure-sphere-os/25.10.img',
    });
    expect(up.image?.imageId).toMatch(/^i-[0-9a-f]{16}$/);
    expect(up.targetsVersion).toBe(2);

    const updater = await updaterFor(t.tenantId);
    await updater.refresh();
    const info = await updater.getTargetInfo('os/azure-sphere-os/25.10.img');
    expect(info?.length).toBe(content.length);
    expect(info?.custom).toEqual({ securityVersion: 5, kind: 'os', version: '25.10' });
    if (info === undefined) throw new Error('target not found');
    const path = await updater.downloadTarget(info);
    expect(Buffer.compare(readFileSync(path), content)).toBe(0);

    // A second image moves the repository on; a fresh refresh sees both.
    await t.client.uploadImage({
      kind: 'app',
      name: 'blinky',
      version: '1.1.0',
      content: Buffer.from('app-image'),
    });
    const again = await updaterFor(t.tenantId);
    await again.refresh();
    expect(await again.getTargetInfo('app/blinky/1.1.0.img')).toBeDefined();
    expect((await t.client.listImages()).images.map((i) => i.targetName)).toEqual([
      'os/azure-sphere-os/25.10.img',
      'app/blinky/1.1.0.img',
    ]);
  });

  it('images - uploads are validated, immutable and tenant-scoped', async () => {
    const a = await createTestTenant(env().admin, 'images-a');
    const b = await createTestTenant(env().admin, 'images-b');
    await a.client.uploadImage({ kind: 'app', name: 'pump', version: '2.0.0', content: Buffer.from('x') });
    expect(
      (
        await callError(
          a.client.uploadImage({ kind: 'app', name: 'pump', version: '2.0.0', content: Buffer.from('y') }),
        )
      ).code,
    ).toBe('ALREADY_EXISTS');
    const bad = await callError(
      a.client.uploadImage({ kind: 'firmware', name: 'x', version: '1', content: Buffer.from('x') }),
    );
    expect([bad.code, bad.message]).toEqual([
      'MALFORMED_INPUT',
      'kind must be one of os, app, got "firmware"',
    ]);
    expect(
      (
        await callError(
          a.client.uploadImage({ kind: 'app', name: '../etc', version: '1', content: Buffer.from('x') }),
        )
      ).message,
    ).toContain('name');
    expect(
      (
        await callError(
          a.client.uploadImage({ kind: 'app', name: 'empty', version: '1', content: Buffer.alloc(0) }),
        )
      ).message,
    ).toContain('content');
    // B sees none of A's images, and A's repository is not B's.
    expect((await b.client.listImages()).images).toEqual([]);
    const targets = await fetch(`${env().shard.tufUrl}/${b.tenantId}/metadata/1.targets.json`);
    expect(targets.status).toBe(200);
    expect(JSON.stringify(await targets.json())).not.toContain('pump');
    expect((await fetch(`${env().shard.tufUrl}/t-0000000000000000/metadata/1.root.json`)).status).toBe(404);
  });
});
