import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, StringCodec } from 'nats';
import { afterEach, describe, expect, it } from 'vitest';
import { findNatsServer, startNatsServer, useNatsServer } from '../../fixtures/nats.js';
import type { NatsServerHandle } from '../../fixtures/nats.js';
import { pidAlive, repoRoot } from '../../fixtures/processes.js';

const sc = StringCodec();

describe('startNatsServer (core NATS)', () => {
  const nats = useNatsServer();

  it('listens on a free port on 127.0.0.1 and serves request/reply', async () => {
    const s = nats();
    expect(s.url).toBe(`nats://127.0.0.1:${s.port}`);
    expect(s.port).toBeGreaterThan(0);
    expect(s.storeDir).toBeUndefined();
    const nc = await connect({ servers: s.url });
    try {
      const sub = nc.subscribe('echo');
      void (async () => {
        for await (const m of sub) m.respond(sc.encode(`echo:${sc.decode(m.data)}`));
      })();
      const reply = await nc.request('echo', sc.encode('hi'), { timeout: 2_000 });
      expect(sc.decode(reply.data)).toBe('echo:hi');
    } finally {
      await nc.close();
    }
  });
});

describe('startNatsServer (JetStream)', () => {
  const nats = useNatsServer({ jetstream: true, monitorPort: 0 });

  it('supports JetStream KV put/get', async () => {
    const nc = await connect({ servers: nats().url });
    try {
      const kv = await nc.jetstream().views.kv('x');
      await kv.put('k', sc.encode('v1'));
      const e = await kv.get('k');
      expect(e && sc.decode(e.value)).toBe('v1');
    } finally {
      await nc.close();
    }
  });

  it('exposes the monitoring port when asked', async () => {
    const res = await fetch(`http://127.0.0.1:${nats().monitorPort}/varz`);
    const varz = (await res.json()) as { port: number };
    expect(varz.port).toBe(nats().port);
  });
});

describe('startNatsServer lifecycle', () => {
  let started: NatsServerHandle[] = [];
  afterEach(async () => {
    await Promise.all(started.map((s) => s.stop()));
    started = [];
  });

  it('stop() terminates the server and removes the temp JetStream store', async () => {
    const s = await startNatsServer({ jetstream: true });
    started.push(s);
    expect(s.storeDir).toBeDefined();
    const store = s.storeDir ?? '';
    expect(existsSync(store)).toBe(true);
    await s.stop();
    expect(await s.exited).not.toBeUndefined();
    expect(pidAlive(s.pid)).toBe(false);
    expect(existsSync(store)).toBe(false);
    await s.stop(); // idempotent
  });

  it('keeps a caller-provided store dir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sphere-test-store-'));
    try {
      const s = await startNatsServer({ jetstream: true, storeDir: dir });
      started.push(s);
      await s.stop();
      expect(existsSync(dir)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports startup failures with the server log', async () => {
    const first = await startNatsServer();
    started.push(first);
    await expect(startNatsServer({ port: first.port, readyTimeoutMs: 5_000 })).rejects.toThrow(
      /nats-server .*(exited|not ready)[\s\S]*Last log lines/,
    );
  });
});

describe('missing nats-server binary', () => {
  const saved = process.env['NATS_SERVER'];
  afterEach(() => {
    if (saved === undefined) delete process.env['NATS_SERVER'];
    else process.env['NATS_SERVER'] = saved;
  });

  it('startNatsServer explains how to install it', async () => {
    process.env['NATS_SERVER'] = '/nonexistent/nats-server';
    expect(findNatsServer()).toBeNull();
    const err = (await startNatsServer().catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('NatsServerNotFoundError');
    expect(err.message).toContain('NATS_SERVER=/nonexistent/nats-server');
    expect(err.message).toContain('apt-get install -y nats-server');
    expect(err.message).toMatch(
      /releases\/download\/v[\d.]+\/nats-server-v[\d.]+-linux-(amd64|arm64)\.tar\.gz/,
    );
    expect(err.message).toContain('export NATS_SERVER=/path/to/nats-server');
  });

  it('ensure-deps.sh fails with the same instructions', () => {
    const r = spawnSync('bash', ['deploy/local/ensure-deps.sh'], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, NATS_SERVER: '/nonexistent/nats-server' },
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('NATS_SERVER=/nonexistent/nats-server is not an executable file');
    expect(r.stderr).toContain('apt-get install -y nats-server');
    expect(r.stderr).toContain('export NATS_SERVER=/path/to/nats-server');
  });

  it('ensure-deps.sh without root/apt and no binary anywhere prints instructions and fails', () => {
    const r = spawnSync('bash', ['deploy/local/ensure-deps.sh'], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: {
        ...process.env,
        NATS_SERVER: '',
        PATH: `${join(process.execPath, '..')}:/bin`, // node, bash, coreutils; /bin has no nats-server on Debian
        SPHERE_NATS_SEARCH_DIRS: '/nonexistent',
        SPHERE_SKIP_APT: '1',
      },
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('nats-server not found');
    expect(r.stderr).toContain('apt-get install -y nats-server');
  });
});
