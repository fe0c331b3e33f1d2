/**
 * The responder of bench:rollout's raw NATS baseline, run as its own process (like the shard):
 * one NATS connection, one subscription on `bench.raw.*`, answering each request
 * `[offset u32 BE][length u32 BE]` with that slice of an in-memory image. No protobuf, no actors,
 * no batching beyond what nats.js does.
 *
 * Usage: node dist/deploy/bench/raw-responder.js --nats <url> --image-bytes <n>
 * Prints "READY" once subscribed; SIGTERM/SIGINT stop it.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { connect } from 'nats';

const RAW_SUBJECT_PREFIX = 'bench.raw';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { nats: { type: 'string' }, 'image-bytes': { type: 'string', default: '1048576' } },
  });
  if (values.nats === undefined) throw new Error('--nats <url> is required');
  const image = new Uint8Array(randomBytes(Number(values['image-bytes'])));
  const nc = await connect({ servers: values.nats, name: 'bench-raw-responder', noAsyncTraces: true });
  let served = 0;
  nc.subscribe(`${RAW_SUBJECT_PREFIX}.*`, {
    callback: (err, m) => {
      if (err !== null || m.data.length < 8) return;
      const view = new DataView(m.data.buffer, m.data.byteOffset, 8);
      const offset = view.getUint32(0);
      const length = view.getUint32(4);
      m.respond(image.subarray(offset, Math.min(image.length, offset + length)));
      served++;
    },
  });
  await nc.flush();
  process.stdout.write('READY\n');
  const stop = (): void => {
    process.stderr.write(`raw-responder: served ${served} requests\n`);
    nc.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: unknown) => {
  console.error('raw-responder failed:', e);
  process.exit(1);
});
