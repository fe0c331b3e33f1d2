import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPrometheus } from '../../../deploy/local/prometheus.js';
import {
  distPath,
  pidAlive,
  repoRoot,
  useProcesses,
  waitDead,
  ensureDist,
} from '../../fixtures/processes.js';

// The compiled launcher (dist/deploy/local/stack.js, rebuilt when stale) with a fake shard that
// serves a tiny /metrics: with a prometheus binary the stack starts Prometheus, which scrapes the
// shard through the file_sd targets it wrote; --no-prometheus and a missing binary skip it.

const FAKE_SHARD = `
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
const { values } = parseArgs({ strict: false, options: { 'metrics-port': { type: 'string' }, 'grpc-port': { type: 'string' } } });
createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
  res.end('# TYPE sphere_shard_partitions_owned gauge\\nsphere_shard_partitions_owned{shard="shard-0"} 64\\n');
}).listen(Number(values['metrics-port']), '127.0.0.1', () => console.log('READY grpc=127.0.0.1:' + values['grpc-port']));
setInterval(() => {}, 1000);
`;

interface StackState {
  runDir: string;
  nats: { pid: number };
  shards: { pid: number; metrics: string }[];
  prometheus?: null | { pid: number; url: string; config: string; log: string };
}

const binary = findPrometheus();

describe('prometheus - behaviour', () => {
  describe('local stack integration', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'sphere-stack-prom-'));
    const runs = join(tmp, 'runs');
    const shardMain = join(tmp, 'fake-shard.mjs');
    writeFileSync(shardMain, FAKE_SHARD);
    const procs = useProcesses();
    beforeAll(() => ensureDist('deploy/local/prometheus.js'), 120_000);
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));

    const stack = (name: string, args: string[], env: Record<string, string> = {}) =>
      procs.spawn(name, process.execPath, [distPath('deploy/local/stack.js'), '--no-run', ...args], {
        cwd: repoRoot,
        env: { ...process.env, SPHERE_SHARD_MAIN: shardMain, SPHERE_RUNS_DIR: runs, ...env },
      });
    const latestState = (): StackState => {
      const last = readdirSync(runs).sort().pop();
      if (last === undefined) throw new Error('no run dir');
      return JSON.parse(readFileSync(join(runs, last, 'stack.json'), 'utf8')) as StackState;
    };

    it.skipIf(binary === null)(
      binary === null
        ? 'SKIPPED: no prometheus binary ($PROMETHEUS, $PATH, /usr/bin); install with `apt-get install prometheus`'
        : 'starts Prometheus, prints its URL, scrapes the shard, stops it with everything else',
      async () => {
        const p = stack('with-prom', []);
        await p.waitForLine(/keeping the stack running/, 40_000);
        const state = latestState();
        const prom = state.prometheus;
        if (!prom) throw new Error(`no prometheus in stack.json:\n${p.output().join('\n')}`);
        expect(p.output().join('\n')).toContain(`prometheus   ${prom.url}`);
        const targets = JSON.parse(
          readFileSync(join(state.runDir, 'prometheus-config/targets/sphere.json'), 'utf8'),
        ) as { targets: string[]; labels: Record<string, string> }[];
        const shardAddr = new URL(state.shards[0]?.metrics ?? '').host;
        expect(targets).toEqual([{ targets: [shardAddr], labels: { role: 'shard' } }]);

        const deadline = Date.now() + 20_000;
        for (;;) {
          const r = (await (await fetch(`${prom.url}/api/v1/query?query=up`)).json()) as {
            data: { result: { metric: Record<string, string>; value: [number, string] }[] };
          };
          const up = r.data.result.find((s) => s.metric['instance'] === shardAddr);
          if (up?.value[1] === '1') {
            expect(up.metric['job']).toBe('sphere-shard');
            break;
          }
          if (Date.now() > deadline) throw new Error(`shard target never up: ${JSON.stringify(r)}`);
          await new Promise((res) => setTimeout(res, 250));
        }

        expect(pidAlive(prom.pid)).toBe(true);
        process.kill(p.pid, 'SIGINT');
        expect((await p.exited).code).toBe(130);
        expect(await waitDead([prom.pid, state.nats.pid, ...state.shards.map((s) => s.pid)])).toEqual([]);
      },
      60_000,
    );

    it('--no-prometheus starts no Prometheus', async () => {
      const p = stack('no-prom', ['--no-prometheus']);
      await p.waitForLine(/keeping the stack running/, 40_000);
      expect(latestState().prometheus).toBeNull();
      expect(p.output().join('\n')).not.toMatch(/^\s*prometheus /m);
      process.kill(p.pid, 'SIGINT');
      expect((await p.exited).code).toBe(130);
    }, 60_000);

    it('without a prometheus binary: one line on how to install it, and the stack still starts', async () => {
      const p = stack('missing', [], { PROMETHEUS: join(tmp, 'no-such-prometheus') });
      await p.waitForLine(/keeping the stack running/, 40_000);
      expect(latestState().prometheus).toBeNull();
      const lines = p.output().filter((l) => /prometheus not found/.test(l));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('apt-get install');
      process.kill(p.pid, 'SIGINT');
      expect((await p.exited).code).toBe(130);
    }, 60_000);
  });
});
