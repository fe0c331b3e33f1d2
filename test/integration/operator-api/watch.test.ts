/**
 * WatchRollout on a live shard: the stream's snapshot, updates as device reports arrive over
 * real NATS, its end after a final state; refusals (tenant scoping, authentication, malformed
 * IDs); watchers released on cancel and on shard shutdown; and `sphere rollout watch` (the
 * compiled CLI) following a rollout to its exit code.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { UpdateReportOutcome } from '../../../proto/codec/index.js';
import type { Rollout } from '../../../proto/gen/sphere/operator/v1/operator.js';
import { DEFAULT_POLICY } from '../../../services/attestation/index.js';
import { OperatorCallError, createOperatorClient } from '../../../services/operator-api/index.js';
import type { RolloutUpdate } from '../../../services/operator-api/index.js';
import { DEFAULT_SHARD_OPTIONS, startShard } from '../../../services/shard/index.js';
import { ADMIN_TOKEN, createTestTenant, sampleValue, useShard } from '../../fixtures/shard.js';
import type { TestTenant } from '../../fixtures/shard.js';
import { ensureDist, useProcesses } from '../../fixtures/processes.js';
import { rolloutFleet, sendUpdateReport } from '../../fixtures/updates.js';

const env = useShard({ seed: 'watch' });
const procs = useProcesses();

/** A running two-wave deployment (half, then all) of `n` devices; halts at 2 failures. */
async function deployment(label: string, n = 4): Promise<{ t: TestTenant; id: string }> {
  const { t, groupId, imageId } = await rolloutFleet(env().admin, label, n);
  const created = await t.client.createDeployment({
    deviceGroupId: groupId,
    imageId,
    waves: [{ size: { $case: 'share', value: 0.5 } }, { size: { $case: 'share', value: 1 } }],
    successThreshold: 1,
    errorCount: 2,
  });
  return { t, id: created.rollout?.deploymentId ?? '' };
}

/** Sends an update report as the device would (acknowledged by the shard). */
const report = (deviceId: string, deploymentId: string, outcome: UpdateReportOutcome) =>
  sendUpdateReport(env().devices, deviceId, deploymentId, outcome);

async function waveDevices(t: TestTenant, id: string, wave: number): Promise<string[]> {
  const r = await t.client.getDeployment(id, true);
  return r.rollout?.devices.filter((d) => d.wave === wave).map((d) => d.deviceId) ?? [];
}

const count = (r: Rollout, state: string): number =>
  r.waves.reduce((sum, w) => sum + (w.devicesByState[state] ?? 0), 0);

/** Reads the stream until a message satisfies `ready`; fails if the stream ends first. */
async function nextUntil(
  it: AsyncIterator<RolloutUpdate>,
  seen: RolloutUpdate[],
  ready: (r: Rollout) => boolean,
): Promise<RolloutUpdate> {
  for (;;) {
    const next = await it.next();
    if (next.done === true) throw new Error(`stream ended; last state ${seen.at(-1)?.rollout.state}`);
    seen.push(next.value);
    if (ready(next.value.rollout)) return next.value;
  }
}

/** The OperatorCallError a watch fails with (before or after its first message). */
async function watchError(updates: AsyncIterable<RolloutUpdate>): Promise<OperatorCallError> {
  try {
    const it = updates[Symbol.asyncIterator]();
    while ((await it.next()).done !== true) {
      /* drain */
    }
  } catch (e) {
    if (e instanceof OperatorCallError) return e;
    throw e;
  }
  throw new Error('expected the watch to fail');
}

const metricsText = (): Promise<string> => env().shard.meter.metricsText();

/** Polls the shard's metrics until `ready` (the server learns of a cancel asynchronously). */
async function untilMetrics(ready: (text: string) => boolean): Promise<string> {
  for (let i = 0; i < 500; i++) {
    const text = await metricsText();
    if (ready(text)) return text;
    await new Promise((r) => setTimeout(r, 10));
  }
  return metricsText();
}

const watchers = (text: string, id: string): number =>
  sampleValue(text, 'sphere_rollout_watchers', { deployment: id });
const watchCalls = (text: string, code: string): number =>
  sampleValue(text, 'sphere_grpc_requests_total', { method: 'watchRollout', code });

describe('watch rollout', () => {
  it('watch - a snapshot first, then updates as reports arrive, and the stream ends after the final state', async () => {
    const { t, id } = await deployment('watch-ok');
    const okBefore = watchCalls(await metricsText(), 'OK');
    const seen: RolloutUpdate[] = [];
    const it = t.client.watchRollout(id, { minIntervalMs: 50 })[Symbol.asyncIterator]();

    const first = await nextUntil(it, seen, () => true);
    expect(first.sequence).toBe(1);
    expect(first.rollout).toMatchObject({ deploymentId: id, state: 'running', currentWave: 1, attempted: 2 });
    expect(first.rollout.devices).toEqual([]); // the view, without the per-device list
    expect(watchers(await metricsText(), id)).toBe(1);

    for (const d of await waveDevices(t, id, 1)) {
      await report(d, id, 'downloading');
      await report(d, id, 'succeeded');
    }
    const wave2 = await nextUntil(it, seen, (r) => r.currentWave === 2);
    expect(wave2.rollout).toMatchObject({ state: 'running', attempted: 4 });
    for (const d of await waveDevices(t, id, 2)) await report(d, id, 'succeeded');
    const done = await nextUntil(it, seen, (r) => r.state === 'completed');
    expect(done.rollout).toMatchObject({ currentWave: 2, failures: 0, attempted: 4 });
    expect(count(done.rollout, 'succeeded')).toBe(4);
    // The server ends the stream after the final state (status OK, no error).
    expect(await it.next()).toEqual({ done: true, value: undefined });

    // Numbered 1, 2, 3, ... and never backwards.
    expect(seen.map((u) => u.sequence)).toEqual(seen.map((_, i) => i + 1));
    for (let i = 1; i < seen.length; i++) {
      const [a, b] = [seen[i - 1]?.rollout, seen[i]?.rollout];
      if (a === undefined || b === undefined) continue;
      expect(count(b, 'succeeded')).toBeGreaterThanOrEqual(count(a, 'succeeded'));
      expect(b.currentWave).toBeGreaterThanOrEqual(a.currentWave);
    }
    const text = await untilMetrics((m) => watchers(m, id) === 0);
    expect(watchers(text, id)).toBe(0);
    expect(watchCalls(text, 'OK') - okBefore).toBe(1);
  });

  it('watch - a finished rollout sends its final state and ends; a halt carries its reason', async () => {
    const { t, id } = await deployment('watch-halt');
    const [a, b] = await waveDevices(t, id, 1);
    await report(a ?? '', id, 'failed');
    await report(b ?? '', id, 'failed');
    const seen: RolloutUpdate[] = [];
    for await (const u of t.client.watchRollout(id)) {
      seen.push(u);
      if (u.rollout.state === 'halted') break;
    }
    const last = seen.at(-1)?.rollout;
    expect(last).toMatchObject({ state: 'halted', haltReason: 'error-count', failures: 2 });
    // Watching it again: one message, the final state, then the end.
    const again: RolloutUpdate[] = [];
    for await (const u of t.client.watchRollout(id)) again.push(u);
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ sequence: 1, rollout: { state: 'halted', haltReason: 'error-count' } });
  });

  it('watch - refusals: another tenant NOT_FOUND, no or bad token UNAUTHENTICATED, malformed ID MALFORMED_INPUT', async () => {
    const { t, id } = await deployment('watch-refusals', 2);
    const before = await metricsText();
    const other = await createTestTenant(env().admin, 'watch-refusals-other');
    const notFound = await watchError(other.client.watchRollout(id));
    expect(notFound).toMatchObject({ code: 'NOT_FOUND', grpcCode: 5 });
    // An ID that does not exist reads exactly the same.
    expect((await watchError(t.client.watchRollout('d-0000000000000000'))).code).toBe('NOT_FOUND');
    const anonymous = createOperatorClient(env().shard.grpcAddress, '');
    try {
      expect(await watchError(anonymous.watchRollout(id))).toMatchObject({
        code: 'UNAUTHENTICATED',
        grpcCode: 16,
      });
      expect((await watchError(anonymous.withToken('not-a-token').watchRollout(id))).code).toBe(
        'UNAUTHENTICATED',
      );
    } finally {
      anonymous.close();
    }
    // The admin token is not a tenant's.
    expect((await watchError(env().admin.watchRollout(id))).code).toBe('FORBIDDEN');
    const malformed = await watchError(t.client.watchRollout('d-XYZ'));
    expect(malformed).toMatchObject({ code: 'MALFORMED_INPUT', grpcCode: 3 });
    expect(malformed.message).toContain('deployment_id');
    const after = await metricsText();
    expect(watchCalls(after, 'NOT_FOUND') - watchCalls(before, 'NOT_FOUND')).toBe(2);
    expect(watchCalls(after, 'UNAUTHENTICATED') - watchCalls(before, 'UNAUTHENTICATED')).toBe(2);
    expect(watchCalls(after, 'MALFORMED_INPUT') - watchCalls(before, 'MALFORMED_INPUT')).toBe(1);
    expect(watchers(after, id)).toBe(0);
  });

  it('watch - leaving the loop or aborting the signal cancels the stream and removes the watcher', async () => {
    const { t, id } = await deployment('watch-cancel', 2);
    const cancelledBefore = watchCalls(await metricsText(), 'CANCELLED');

    for await (const u of t.client.watchRollout(id)) {
      expect(u.sequence).toBe(1);
      expect(watchers(await metricsText(), id)).toBe(1);
      break;
    }
    expect(watchers(await untilMetrics((m) => watchers(m, id) === 0), id)).toBe(0);

    const abort = new AbortController();
    const seen: RolloutUpdate[] = [];
    for await (const u of t.client.watchRollout(id, { signal: abort.signal })) {
      seen.push(u);
      expect(watchers(await metricsText(), id)).toBe(1);
      abort.abort(); // the iteration then ends quietly
    }
    expect(seen).toHaveLength(1);
    const text = await untilMetrics(
      (m) => watchers(m, id) === 0 && watchCalls(m, 'CANCELLED') >= cancelledBefore + 2,
    );
    expect(watchers(text, id)).toBe(0);
    expect(watchCalls(text, 'CANCELLED') - cancelledBefore).toBe(2);
  });

  it('watch - closing the shard ends open watches with UNAVAILABLE instead of holding the shutdown', async () => {
    const shard = await startShard({
      ...DEFAULT_SHARD_OPTIONS,
      nats: env().natsUrl,
      adminToken: ADMIN_TOKEN,
      metricsPort: null,
      policy: DEFAULT_POLICY,
      seed: 'watch-close',
      shardId: 'shard-watch-close',
    });
    const admin = createOperatorClient(shard.grpcAddress, ADMIN_TOKEN);
    try {
      const { t, groupId, imageId } = await rolloutFleet(admin, 'watch-close', 2);
      const created = await t.client.createDeployment({
        deviceGroupId: groupId,
        imageId,
        waves: [{ size: { $case: 'share', value: 1 } }],
        errorCount: 1,
      });
      const it = t.client.watchRollout(created.rollout?.deploymentId ?? '')[Symbol.asyncIterator]();
      expect((await it.next()).value).toMatchObject({ sequence: 1 });
      const ended = it.next().then(
        () => null,
        (e: unknown) => e,
      );
      await shard.close();
      expect(await ended).toMatchObject({ code: 'UNAVAILABLE', grpcCode: 14 });
    } finally {
      admin.close();
      await shard.close();
    }
  });
});

describe('sphere rollout watch (CLI)', () => {
  let tokenFile = '';
  let tenant: TestTenant | undefined;
  beforeAll(() => ensureDist('loadgen/cli.js'), 120_000);

  const watchCli = (id: string, extra: string[] = []) =>
    procs.spawnEntry(
      'loadgen/cli.js',
      ['rollout', 'watch', '--grpc', env().shard.grpcAddress, '--token-file', tokenFile, ...extra, id],
      { name: 'rollout-watch' },
    );

  it('cli - prints a block per update and exits 0 when the rollout completes', async () => {
    const { t, id } = await deployment('watch-cli-ok', 2);
    tenant = t;
    tokenFile = join(mkdtempSync(join(tmpdir(), 'sphere-watch-')), 'token');
    writeFileSync(tokenFile, `${t.apiToken}\n`);
    const cli = watchCli(id, ['--interval', '50']);
    await cli.waitForLine(/^deployment d-/);
    for (const d of await waveDevices(t, id, 1)) await report(d, id, 'succeeded');
    // Reports are applied asynchronously: wave 2's devices are known once the CLI shows it open.
    await cli.waitForLine(/^▸ +2 /);
    for (const d of await waveDevices(t, id, 2)) await report(d, id, 'succeeded');
    const exit = await cli.exited;
    const out = cli.output();
    expect(exit.code, out.join('\n')).toBe(0);
    expect(out[0]).toContain('█ succeeded');
    expect(out).toContainEqual(
      expect.stringMatching(
        /^deployment d-[0-9a-f]{16} · image i-[0-9a-f]{16} · completed · wave 2\/2 · failures 0\/2 attempted$/,
      ),
    );
    expect(out).toContainEqual(expect.stringMatching(/^▸ +2 {2}█+ +1 +0 +0 +0 +1 +0 +0$/));
    expect(out.at(-1)).toBe('✓ rollout completed');
    expect(out.join('\n')).not.toContain('\x1b'); // not a TTY: no cursor movement
  });

  it('cli - exits 3 when the rollout halts, 1 when the call is refused, 2 on bad usage', async () => {
    const { t, id } = await deployment('watch-cli-halt', 2);
    writeFileSync(tokenFile, t.apiToken);
    const cli = watchCli(id);
    await cli.waitForLine(/^deployment d-/);
    const [a] = await waveDevices(t, id, 1);
    await report(a ?? '', id, 'failed');
    // One of one failed in wave 1: the success threshold can no longer be met.
    const exit = await cli.exited;
    expect(exit.code, cli.output().join('\n')).toBe(3);
    expect(cli.output()).toContainEqual(expect.stringContaining('halted ('));
    expect(cli.output().at(-1)).toMatch(/^✗ rollout halted: /);

    if (tenant === undefined) throw new Error('first CLI test did not run');
    writeFileSync(tokenFile, tenant.apiToken); // another tenant's deployment
    const refused = watchCli(id);
    expect((await refused.exited).code).toBe(1);
    expect(refused.output().join('\n')).toContain('NOT_FOUND');

    const usage = watchCli('d-nothex');
    expect((await usage.exited).code).toBe(2);
    expect(usage.output().join('\n')).toContain('"d-" + 16 hex characters');
  });
});
