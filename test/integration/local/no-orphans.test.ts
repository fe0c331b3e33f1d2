import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pidAlive, waitDead, useProcesses } from '../../fixtures/processes.js';
import { makeSandbox } from './deploy-sandbox.js';

// A supervisor with two managed children: `sleep 1000`, and a node process that ignores SIGTERM
// (forcing the SIGKILL escalation) and has its own `sleep 1000` grandchild.
const SUPERVISOR = `
import { installShutdownHandlers, spawnManaged } from './dist/deploy/local/processes.js';
const mode = process.argv[2];
const a = spawnManaged('sleeper', 'sleep', ['1000']);
const b = spawnManaged('stubborn', process.execPath, ['-e', \`
  const { spawn } = require('node:child_process');
  const g = spawn('sleep', ['1000'], { stdio: 'ignore' });
  process.on('SIGTERM', () => {});
  process.on('SIGINT', () => {});
  console.log('GRANDCHILD ' + g.pid);
  setInterval(() => {}, 1000);
\`], { ready: /^GRANDCHILD /, stopGraceMs: 300 });
installShutdownHandlers([a, b]);
await b.ready;
const gpid = Number(b.tail().find((l) => l.startsWith('GRANDCHILD ')).split(' ')[1]);
console.log('PIDS ' + JSON.stringify([a.pid, b.pid, gpid]));
if (mode === 'throw') setTimeout(() => { throw new Error('boom'); }, 50);
if (mode === 'exit') setTimeout(() => process.exit(0), 50);
setInterval(() => {}, 1000);
`;

describe('process supervisor leaves no orphans', () => {
  const root = makeSandbox();
  writeFileSync(join(root, 'supervisor.mjs'), SUPERVISOR);
  const procs = useProcesses();
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const cases = [
    { mode: 'sigint', signal: 'SIGINT', code: 130 },
    { mode: 'sigterm', signal: 'SIGTERM', code: 143 },
    { mode: 'throw', signal: undefined, code: 1 },
    { mode: 'exit', signal: undefined, code: 0 },
  ] as const;

  for (const c of cases) {
    it(`${c.mode}: all children and grandchildren are gone, exit code ${c.code}`, async () => {
      const sup = procs.spawn(`supervisor-${c.mode}`, process.execPath, ['supervisor.mjs', c.mode], {
        cwd: root,
      });
      const line = await sup.waitForLine(/^PIDS /, 15_000);
      const pids = JSON.parse(line.slice(5)) as number[];
      expect(pids).toHaveLength(3);
      expect(pids.every(pidAlive)).toBe(true);
      if (c.signal) process.kill(sup.pid, c.signal);
      const info = await sup.exited;
      expect(info.code, sup.output().join('\n')).toBe(c.code);
      expect(await waitDead(pids)).toEqual([]);
    });
  }
});
