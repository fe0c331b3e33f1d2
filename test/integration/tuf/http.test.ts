import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTufRepository,
  hashPrefixedTargetPath,
  serveTufRepositories,
} from '../../../services/updates/tuf/index.js';
import type { TufHttpServer, TufRepository } from '../../../services/updates/tuf/index.js';
import { createHash } from 'node:crypto';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const FW = new TextEncoder().encode('fw');

describe('tuf http', () => {
  let server: TufHttpServer;
  let repo: TufRepository;

  beforeAll(async () => {
    repo = createTufRepository({ nowMs: T0 });
    repo.addTarget('os/fw.bin', FW);
    repo.publish(T0);
    server = await serveTufRepositories({ port: 0, repos: (t) => (t === 'tenant-a' ? repo : undefined) });
  });
  afterAll(async () => {
    await server.close();
  });

  it('http - serves exact metadata bytes as application/json', async () => {
    for (const name of ['1.root.json', 'root.json', 'timestamp.json', '2.snapshot.json', '2.targets.json']) {
      const res = await fetch(`${server.url}/tenant-a/metadata/${name}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json');
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(repo.metadataFiles().get(name));
    }
  });

  it('http - serves targets by hash-prefixed path as octet-stream', async () => {
    const sha = createHash('sha256').update(FW).digest('hex');
    const res = await fetch(`${server.url}/tenant-a/targets/${hashPrefixedTargetPath('os/fw.bin', sha)}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(FW);
  });

  it('http - unknown tenant, file, route or unprefixed target is 404', async () => {
    for (const path of [
      '/tenant-b/metadata/root.json',
      '/tenant-a/metadata/3.root.json',
      '/tenant-a/other/root.json',
      '/tenant-a/targets/os/fw.bin',
      '/tenant-a/metadata/',
      '/',
      '/tenant-a/metadata/%E0%A4%A',
    ]) {
      const res = await fetch(`${server.url}${path}`);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
      await res.arrayBuffer();
    }
  });

  it('http - non-GET methods are 405', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await fetch(`${server.url}/tenant-a/metadata/root.json`, { method });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
      await res.arrayBuffer();
    }
  });
});
