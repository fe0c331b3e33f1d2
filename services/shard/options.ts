import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_POLICY } from '../attestation/index.js';
import { DEFAULT_DETECTION_CONFIG } from '../detection/index.js';
import { DEFAULT_SHARD_OPTIONS } from './host.js';
import type { ShardOptions } from './host.js';

/** `--help` text of the shard process. */
export const SHARD_HELP = `sphere shard: one security-service shard (attestation, certificates, alerts, operator API)

Usage: node dist/services/shard/main.js --nats <url> [options]

  --nats <url>                   NATS server URL (required)
  --grpc-host <host>             operator API bind host (default 127.0.0.1)
  --grpc-port <port>             operator API port, 0 = any free port (default 0)
  --metrics-port <port>          /metrics port, 0 = any free port (default 0)
  --tuf-port <port>              tenants' TUF repositories over HTTP, 0 = any free port (default 0)
  --admin-token-file <path>      file holding the service admin token
  --admin-token <token>          the admin token itself (or env SPHERE_ADMIN_TOKEN)
  --workers <n>                  crypto pool threads (default 1)
  --batch-size <n>               crypto pool items per task (default 64)
  --max-in-flight <n>            attestations in flight before answering OVERLOADED (default 2048)
  --partitions <n>               partitions of the device space (default 64)
  --time-scale <x>               simulated seconds per wall second (default 1)
  --nonce-ttl-ms <ms>            challenge nonce time to live, simulated (default 300000)
  --cert-lifetime-ms <ms>        device certificate validity, simulated (default 86400000)
  --min-security-version <n>     lowest accepted OS security version (default 3)
  --max-clock-skew-ms <ms>       accepted device clock error, simulated (default 300000)
  --device-rate-burst <n>        requests a device may send at once after attestation (default 600)
  --device-rate-per-hour <n>     its sustained rate, per simulated hour (default 600)
  --flood-max-requests <n>       threat detection: a device sending more requests than this per
                                 simulated minute raises DEVICE_FLOODING (default 120)
  --no-detection                 no threat detection (refusals still raise alerts)
  --seed <s>                     seed for the shard's randomness (default "shard")
  --shard-id <id>                name in metrics and alerts (default shard-0)
  --journal <name>               keep the service's state in JetStream: stream <NAME>_JOURNAL and
                                 object store <name>-blobs (default "sphere"); a restarted shard
                                 replays it and carries on where it stopped
  --no-journal                   keep state in memory only (lost when the process ends; then this
                                 shard is the only one and serves every partition)
  --replicas <n>                 JetStream replicas of the journal and leases: 3 on a 3-node
                                 cluster (default 1)
  --lease-ttl-ms <ms>            partition lease time to live, wall ms (default 6000): a dead
                                 shard's partitions move after about this long
  --unsafe-no-fencing            TEST ONLY: partition appends are not fenced and ignore lease
                                 deadlines, so two shards can act for one partition (to show that
                                 the chaos verdict catches it)
  --help                         this text

Prints "READY grpc=<host:port> metrics=<url> tuf=<url>" on stdout once serving; SIGINT/SIGTERM stop it.`;

/** Validates command-line options once into a filled ShardOptions; throws with the bad flag named. */
export function compileShardOptions(argv: string[], env: NodeJS.ProcessEnv): ShardOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      nats: { type: 'string' },
      'grpc-host': { type: 'string' },
      'grpc-port': { type: 'string' },
      'metrics-port': { type: 'string' },
      'tuf-port': { type: 'string' },
      'flood-max-requests': { type: 'string' },
      'no-detection': { type: 'boolean' },
      'admin-token-file': { type: 'string' },
      'admin-token': { type: 'string' },
      workers: { type: 'string' },
      'batch-size': { type: 'string' },
      'max-in-flight': { type: 'string' },
      partitions: { type: 'string' },
      'time-scale': { type: 'string' },
      'nonce-ttl-ms': { type: 'string' },
      'cert-lifetime-ms': { type: 'string' },
      'min-security-version': { type: 'string' },
      'max-clock-skew-ms': { type: 'string' },
      'device-rate-burst': { type: 'string' },
      'device-rate-per-hour': { type: 'string' },
      seed: { type: 'string' },
      'shard-id': { type: 'string' },
      journal: { type: 'string' },
      'no-journal': { type: 'boolean' },
      replicas: { type: 'string' },
      'lease-ttl-ms': { type: 'string' },
      'unsafe-no-fencing': { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) return 'help';
  const num = (
    flag: string,
    v: string | undefined,
    fallback: number,
    min: number,
    max: number,
    integer = true,
  ): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      throw new Error(
        `--${flag} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${v}"`,
      );
    }
    return n;
  };
  if (values.nats === undefined)
    throw new Error('--nats <url> is required (for example nats://127.0.0.1:4222)');
  let adminToken = values['admin-token'] ?? env['SPHERE_ADMIN_TOKEN'] ?? '';
  if (values['admin-token-file'] !== undefined)
    adminToken = readFileSync(values['admin-token-file'], 'utf8').trim();
  if (adminToken.length < 16) {
    throw new Error(
      'an admin token of at least 16 characters is required: --admin-token-file, --admin-token or SPHERE_ADMIN_TOKEN',
    );
  }
  const d = DEFAULT_SHARD_OPTIONS;
  const p = DEFAULT_POLICY;
  const DAY = 86_400_000;
  const shardId = values['shard-id'] ?? d.shardId;
  if (!/^[a-z0-9][a-z0-9_-]{0,31}$/i.test(shardId)) {
    throw new Error(
      `--shard-id must be 1 to 32 letters, digits, "-" or "_" (it names the shard's lease membership), got "${shardId}"`,
    );
  }
  const partitions = num('partitions', values.partitions, d.partitions, 1, 4096);
  const ttlMs = num('lease-ttl-ms', values['lease-ttl-ms'], d.lease.ttlMs, 300, 600_000);
  return {
    nats: values.nats,
    adminToken,
    grpcHost: values['grpc-host'] ?? d.grpcHost,
    grpcPort: num('grpc-port', values['grpc-port'], d.grpcPort, 0, 65535),
    metricsPort: num('metrics-port', values['metrics-port'], 0, 0, 65535),
    tufPort: num('tuf-port', values['tuf-port'], d.tufPort, 0, 65535),
    workers: num('workers', values.workers, d.workers, 1, 64),
    batchSize: num('batch-size', values['batch-size'], d.batchSize, 1, 4096),
    maxInFlight: num('max-in-flight', values['max-in-flight'], d.maxInFlight, 1, 1_000_000),
    partitions,
    timeScale: num('time-scale', values['time-scale'], d.timeScale, 0.001, 1e7, false),
    policy: {
      nonceTtlMs: num('nonce-ttl-ms', values['nonce-ttl-ms'], p.nonceTtlMs, 1, 30 * DAY),
      certificateLifetimeMs: num(
        'cert-lifetime-ms',
        values['cert-lifetime-ms'],
        p.certificateLifetimeMs,
        1000,
        3650 * DAY,
      ),
      minSecurityVersion: num(
        'min-security-version',
        values['min-security-version'],
        p.minSecurityVersion,
        0,
        1_000_000,
      ),
      maxClockSkewMs: num('max-clock-skew-ms', values['max-clock-skew-ms'], p.maxClockSkewMs, 0, 365 * DAY),
      deviceRateLimit: {
        burst: num('device-rate-burst', values['device-rate-burst'], p.deviceRateLimit.burst, 1, 1e9),
        perHour: num(
          'device-rate-per-hour',
          values['device-rate-per-hour'],
          p.deviceRateLimit.perHour,
          1,
          1e9,
        ),
      },
    },
    seed: values.seed ?? d.seed,
    shardId,
    journal: journalName(values.journal, values['no-journal'] === true),
    replicas: num('replicas', values.replicas, d.replicas, 1, 5),
    // Renew with two thirds of the time left (a renewal can fail and be retried in time), tick six
    // times per lease, and allow a tenth of it (at most 500 ms) of clock difference between shards.
    lease: {
      partitions,
      ttlMs,
      renewBeforeMs: Math.round((ttlMs * 2) / 3),
      skewMs: Math.min(500, Math.round(ttlMs / 10)),
      tickMs: Math.max(50, Math.round(ttlMs / 6)),
    },
    fencing: values['unsafe-no-fencing'] !== true,
    detection:
      values['no-detection'] === true
        ? null
        : {
            floodMaxRequests: num(
              'flood-max-requests',
              values['flood-max-requests'],
              DEFAULT_DETECTION_CONFIG.floodMaxRequests,
              1,
              1e9,
            ),
          },
  };
}

function journalName(name: string | undefined, off: boolean): string | null {
  if (off) {
    if (name !== undefined) throw new Error('--journal and --no-journal contradict each other; pick one');
    return null;
  }
  const n = name ?? 'sphere';
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(n)) {
    throw new Error(
      `--journal must be 1 to 32 characters of a-z, 0-9 and "-", starting with a letter, got "${n}"`,
    );
  }
  return n;
}
