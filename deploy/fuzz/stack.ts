/**
 * A stack of its own for the campaign's over-the-wire entry points, started the way the
 * benchmarks start theirs (deploy/bench/attest.ts): a nats-server with JetStream on a free port
 * and a shard process from dist/ on its journal, then seeded for fuzzing (deploy/fuzz/target.ts).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectNatsTransport } from '../../actors/runtime/index.js';
import type { Transport } from '../../actors/runtime/index.js';
import { DEFAULT_PARTITIONS } from '../../proto/codec/index.js';
import { SHARD_HELP } from '../../services/shard/index.js';
import { startNatsServer } from '../local/nats.js';
import type { NatsServerHandle } from '../local/nats.js';
import { spawnManaged } from '../local/processes.js';
import type { ManagedProcess, Stoppable } from '../local/processes.js';
import { seedTarget } from './target.js';
import type { FuzzTarget } from './target.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface FuzzStack extends Stoppable {
  readonly target: FuzzTarget;
  /** The shard's last output lines (why it stopped, when it did). */
  shardTail(): string[];
}

/** Starts nats-server (JetStream) and a shard on journal `journal`, and seeds it. */
export async function startFuzzStack(journal: string, track: (s: Stoppable) => void): Promise<FuzzStack> {
  const nats: NatsServerHandle = await startNatsServer({ jetstream: true });
  track(nats);
  const dir = mkdtempSync(join(tmpdir(), 'sphere-fuzz-'));
  const tokenFile = join(dir, 'admin.token');
  const adminToken = randomBytes(24).toString('hex');
  writeFileSync(tokenFile, adminToken, { mode: 0o600 });
  let ready = '';
  const shard: ManagedProcess = spawnManaged(
    `shard (${journal})`,
    process.execPath,
    [
      join(root, 'dist/services/shard/main.js'),
      '--nats',
      nats.url,
      '--grpc-port',
      '0',
      '--metrics-port',
      '0',
      '--admin-token-file',
      tokenFile,
      '--journal',
      journal,
      '--shard-id',
      `shard-fuzz-${journal}`,
      // One genuine device sends most requests: no rate limit (where the shard has one).
      ...(SHARD_HELP.includes('--device-rate-burst') ? ['--device-rate-burst', '1000000000'] : []),
      ...(SHARD_HELP.includes('--device-rate-per-hour') ? ['--device-rate-per-hour', '1000000000'] : []),
    ],
    {
      ready: (line) => {
        if (line.startsWith('READY ')) ready = line;
        return ready !== '';
      },
      readyTimeoutMs: 60_000,
    },
  );
  track(shard);
  let devices: Transport | null = null;
  const stop = async (): Promise<void> => {
    await devices?.close().catch(() => undefined);
    await shard.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await shard.ready;
    const grpcAddress = /grpc=(\S+)/.exec(ready)?.[1] ?? '';
    const metricsUrl = /metrics=(\S+)/.exec(ready)?.[1] ?? '';
    devices = await connectNatsTransport({ servers: nats.url, name: `fuzz-devices-${journal}` });
    const target = await seedTarget({
      natsUrl: nats.url,
      devices,
      grpcAddress,
      adminToken,
      partitions: DEFAULT_PARTITIONS,
      journal,
      metricsText: async () => (await fetch(metricsUrl)).text(),
      shardRunning: () => shard.isRunning(),
    });
    return {
      target,
      shardTail: () => shard.tail(20),
      stop: async () => {
        target.seeds.tenantA.close();
        await stop();
      },
      kill: (signal) => {
        shard.kill(signal);
        nats.kill(signal);
      },
    };
  } catch (e) {
    await stop();
    throw new Error(`could not start the fuzz stack: ${String(e)}\n${shard.tail(20).join('\n')}`, {
      cause: e,
    });
  }
}
