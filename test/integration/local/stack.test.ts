import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  distPath,
  pidAlive,
  waitDead,
  repoRoot,
  useProcesses,
  ensureDist,
} from '../../fixtures/processes.js';

// Runs the compiled launcher (dist/deploy/local/stack.js, rebuilt in beforeAll when stale) with
// fake shard and runner entry points (SPHERE_SHARD_MAIN / SPHERE_RUNNER_MAIN) and the real
// default scenario file.

// Fake shard: checks its flags, has a grandchild, serves /metrics with the partitions it owns
// (half of 64), prints READY (unless FAKE_SHARD=crash).
const FAKE_SHARD = `
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
const { values } = parseArgs({ strict: false, options: {
  nats: { type: 'string' }, 'grpc-port': { type: 'string' }, 'metrics-port': { type: 'string' },
  'admin-token-file': { type: 'string' }, workers: { type: 'string' }, 'shard-id': { type: 'string' } } });
if (process.env.FAKE_SHARD === 'crash') { console.error('shard: cannot bind'); process.exit(3); }
createServer((req, res) => res.end('sphere_shard_partitions_owned{shard="' + values['shard-id'] + '"} 32\\n'))
  .listen(Number(values['metrics-port']), '127.0.0.1');
const g = spawn('sleep', ['1000'], { stdio: 'ignore' });
console.log('shard starting ' + JSON.stringify(values) + ' grandchild=' + g.pid);
setTimeout(() => console.log('READY grpc=127.0.0.1:' + values['grpc-port'] + ' metrics=http://127.0.0.1:' + values['metrics-port'] + '/metrics'), 100);
setInterval(() => {}, 1000);
`;

// Fake runner: checks that NATS answers, prints its flags, exits with FAKE_RUNNER_EXIT (or hangs).
const FAKE_RUNNER = `
import net from 'node:net';
const args = process.argv.slice(2);
const nats = new URL(args[args.indexOf('--nats') + 1].replace('nats://', 'http://'));
const info = await new Promise((res, rej) => {
  const s = net.connect(Number(nats.port), nats.hostname);
  s.once('data', (d) => { res(d.toString().split(' ')[0]); s.destroy(); });
  s.once('error', rej);
});
console.log('runner args ' + JSON.stringify(args) + ' nats=' + info);
if (process.env.FAKE_RUNNER_EXIT === 'hang') { console.log('RUNNER HANGING'); setInterval(() => {}, 1000); }
else process.exit(Number(process.env.FAKE_RUNNER_EXIT ?? 0));
`;

interface StackState {
  runDir: string;
  adminTokenFile: string;
  nats: { url: string; pid: number };
  shards: { pid: number; grpc: string; log: string }[];
  runner: { pid: number } | null;
}

function readStateIn(runs: string): StackState {
  const dirs = readdirSync(runs).sort();
  const last = dirs[dirs.length - 1];
  if (last === undefined) throw new Error('no run dir');
  return JSON.parse(readFileSync(join(runs, last, 'stack.json'), 'utf8')) as StackState;
}

function allPids(state: StackState): number[] {
  const logs = state.shards.map((s) => readFileSync(s.log, 'utf8')).join('\n');
  const grand = [...logs.matchAll(/grandchild=(\d+)/g)].map((m) => Number(m[1]));
  return [
    state.nats.pid,
    ...state.shards.map((s) => s.pid),
    ...(state.runner ? [state.runner.pid] : []),
    ...grand,
  ];
}

describe('local stack launcher (fake shard and runner)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'sphere-stack-test-'));
  const runs = join(tmp, 'runs');
  const shardMain = join(tmp, 'fake-shard.mjs');
  const runnerMain = join(tmp, 'fake-runner.mjs');
  writeFileSync(shardMain, FAKE_SHARD);
  writeFileSync(runnerMain, FAKE_RUNNER);
  const procs = useProcesses();
  beforeAll(() => ensureDist('deploy/local/stack.js'), 120_000);
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const stack = (name: string, args: string[], env: Record<string, string> = {}) =>
    procs.spawn(name, process.execPath, [distPath('deploy/local/stack.js'), ...args], {
      cwd: repoRoot,
      env: {
        ...process.env,
        SPHERE_SHARD_MAIN: shardMain,
        SPHERE_RUNNER_MAIN: runnerMain,
        SPHERE_RUNS_DIR: runs,
        ...env,
      },
    });
  const readState = (): StackState => readStateIn(runs);

  it('--help prints usage and exits 0', async () => {
    const p = stack('help', ['--help']);
    expect((await p.exited).code).toBe(0);
    expect(p.output().join('\n')).toContain('--keep-running');
  });

  it('runs the scenario and exits with the runner code 0; wires flags; cleans up', async () => {
    const p = stack('ok', ['--shards', '2', '--workers', '3']);
    const info = await p.exited;
    const out = p.output();
    expect(info.code, out.join('\n')).toBe(0);
    const state = readState();
    expect(state.shards).toHaveLength(2);
    const text = out.join('\n');
    expect(text).toContain(state.nats.url);
    expect(text).toMatch(/nats=INFO/);
    // Two shards: the runner's gRPC client gets both and fails over between them.
    expect(text).toContain(`"--grpc","ipv4:${state.shards[0]?.grpc},${state.shards[1]?.grpc}"`);
    expect(readFileSync(join(state.runDir, 'shard-0.log'), 'utf8')).toContain('"workers":"3"');
    // Each shard gets its own ID; the fleet starts once they have split the partitions.
    expect(readFileSync(join(state.runDir, 'shard-1.log'), 'utf8')).toContain('"shard-id":"shard-1"');
    expect(text).toContain('shards: partitions owned shard-0 32 · shard-1 32');
    expect(text).toContain(`"--admin-token-file","${state.adminTokenFile}"`);
    expect(statSync(state.adminTokenFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(state.adminTokenFile, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    for (const f of ['nats.log', 'shard-0.log', 'shard-1.log', 'runner.log'])
      expect(existsSync(join(state.runDir, f)), f).toBe(true);
    expect(readFileSync(join(state.runDir, 'shard-1.log'), 'utf8')).toMatch(/^READY /m);
    expect(await waitDead(allPids(state))).toEqual([]);
  });

  it('propagates threshold failure exit code 99', async () => {
    const p = stack('fail99', [], { FAKE_RUNNER_EXIT: '99' });
    expect((await p.exited).code).toBe(99);
    expect(p.output().join('\n')).toContain('a threshold or the verdict failed');
  });

  it('Ctrl-C while the scenario runs: exit 130, no orphans', async () => {
    const p = stack('sigint', [], { FAKE_RUNNER_EXIT: 'hang' });
    await p.waitForLine(/RUNNER HANGING/, 20_000);
    const state = readState();
    const pids = allPids(state);
    expect(pids.length).toBe(4); // nats, shard, its grandchild, runner
    expect(pids.every(pidAlive)).toBe(true);
    process.kill(p.pid, 'SIGINT');
    expect((await p.exited).code).toBe(130);
    expect(await waitDead(pids)).toEqual([]);
  });

  it('--keep-running keeps the stack up until SIGINT', async () => {
    const p = stack('keep', ['--keep-running']);
    await p.waitForLine(/press Ctrl-C to stop/, 20_000);
    const state = readState();
    const pids = allPids(state).filter((pid) => pid !== state.runner?.pid);
    expect(pids.every(pidAlive)).toBe(true);
    process.kill(p.pid, 'SIGINT');
    expect((await p.exited).code).toBe(130);
    expect(await waitDead(pids)).toEqual([]);
  });

  it('a shard that dies before READY fails the launch with its output', async () => {
    const p = stack('crash', [], { FAKE_SHARD: 'crash' });
    expect((await p.exited).code).toBe(1);
    expect(p.output().join('\n')).toMatch(/shard-0 .*exited \(code 3[\s\S]*cannot bind/);
    const state = readState();
    expect(await waitDead([state.nats.pid])).toEqual([]);
  });

  it('a missing entry point is reported clearly', async () => {
    const p = stack('missing', [], {
      SPHERE_SHARD_MAIN: join(tmp, 'nope/services/shard/main.js'),
      SPHERE_RUNNER_MAIN: join(tmp, 'nope/loadgen/cli.js'),
    });
    expect((await p.exited).code).toBe(1);
    const text = p.output().join('\n');
    expect(text).toContain('missing entry point');
    expect(text).toContain('nope/services/shard/main.js');
    expect(text).toContain('nope/loadgen/cli.js');
    expect(text).toContain('npm run build');
  });
});
