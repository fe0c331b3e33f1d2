#!/usr/bin/env node
import { startShard } from './host.js';
import type { ShardOptions } from './host.js';
import { SHARD_HELP, compileShardOptions } from './options.js';

async function main(): Promise<void> {
  let opts: ShardOptions | 'help';
  try {
    opts = compileShardOptions(process.argv.slice(2), process.env);
  } catch (e) {
    console.error(`shard: ${e instanceof Error ? e.message : String(e)}\n\n${SHARD_HELP}`);
    process.exit(2);
  }
  if (opts === 'help') {
    console.log(SHARD_HELP);
    return;
  }
  const shard = await startShard(opts);
  process.stdout.write(
    `READY grpc=${shard.grpcAddress} metrics=${shard.metricsUrl ?? 'none'} tuf=${shard.tufUrl} shard=${shard.shardId}\n`,
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`shard: ${signal}, stopping`);
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    shard.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

process.on('unhandledRejection', (e) => console.error('shard: unhandled rejection (kept serving):', e));
main().catch((e: unknown) => {
  console.error('shard: failed to start:', e);
  process.exit(1);
});
