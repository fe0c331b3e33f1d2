/**
 * bench:attest — end-to-end attestations per second against a real local stack (nats-server +
 * a shard process with N crypto workers), next to the crypto-only limit measured in the same run
 * on the same number of workers: the same signatures, verifications and certificate signings in
 * a tight loop. Prints figures and, last, one machine-readable line:
 *
 *   BENCH attest rate=<e2e/s> limit=<crypto-only/s> ratio=<rate/limit> p50_ms=.. p99_ms=.. ...
 *
 * Usage: node dist/deploy/bench/attest.js [--devices 10000] [--workers 1] [--pool 8] [--batch 64]
 *        [--mode shared|per-device]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ActorSystem, createPromMeter, createRng } from '../../actors/runtime/index.js';
import { runCryptoOnlyLimit } from '../../services/crypto-pool/index.js';
import { createOperatorClient } from '../../services/operator-api/index.js';
import { compileScenario, planFleet } from '../../loadgen/scenario/index.js';
import {
  FleetLinks,
  RunRecorder,
  enrollFleet,
  manufactureFleet,
  serviceClock,
  spawnFleet,
} from '../../loadgen/runner/index.js';
import { getFreePort, startNatsServer } from '../local/nats.js';
import { spawnManaged } from '../local/processes.js';

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '10000' },
      workers: { type: 'string', default: '1' },
      pool: { type: 'string', default: '8' },
      batch: { type: 'string', default: '64' },
      mode: { type: 'string', default: 'shared' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    console.log(
      'Usage: npm run bench:attest -- [--devices 10000] [--workers 1] [--pool 8] [--batch 64] [--mode shared|per-device]',
    );
    return;
  }
  const devices = Number(values.devices);
  const workers = Number(values.workers);
  const mode = values.mode === 'per-device' ? 'per-device' : 'shared';
  const scenario = compileScenario({
    name: 'bench-attest',
    seed: `bench-${devices}`,
    timeScale: 1,
    duration: '1h',
    fleet: { size: devices },
    connections: mode === 'shared' ? { mode, pool: Number(values.pool) } : { mode },
    stages: [{ bootStorm: { devices: '100%', within: '1ms' } }, { hold: { for: '59m' } }],
    device: { requestTimeout: 60_000 },
    service: { nonceTtl: '10m', maxClockSkew: '10m' },
  });

  const nats = await startNatsServer({ jetstream: true });
  const dir = mkdtempSync(join(tmpdir(), 'sphere-bench-'));
  const tokenFile = join(dir, 'admin.token');
  const token = randomBytes(24).toString('hex');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  const grpcPort = await getFreePort();
  const shard = spawnManaged(
    'shard',
    process.execPath,
    [
      join(root, 'dist/services/shard/main.js'),
      '--nats',
      nats.url,
      '--grpc-port',
      String(grpcPort),
      '--metrics-port',
      '0',
      '--admin-token-file',
      tokenFile,
      '--workers',
      String(workers),
      '--batch-size',
      String(values.batch),
      // Measure the pipeline, not load shedding: every device of the storm is admitted.
      '--max-in-flight',
      String(devices),
      '--nonce-ttl-ms',
      String(scenario.service.nonceTtlMs),
      '--max-clock-skew-ms',
      String(scenario.service.maxClockSkewMs),
    ],
    { ready: /^READY /, readyTimeoutMs: 30_000 },
  );
  const meter = createPromMeter();
  let links: FleetLinks | null = null;
  let system: ActorSystem | null = null;
  try {
    await shard.ready;
    const grpc = `127.0.0.1:${grpcPort}`;
    const admin = createOperatorClient(grpc, token);
    const info = await admin.getServiceInfo();
    const plans = planFleet(scenario);
    const memBefore = process.memoryUsage();
    const identities = manufactureFleet(plans);
    await enrollFleet(admin, 'bench', plans, identities);
    const clock = serviceClock(info);
    const recorder = new RunRecorder(plans, meter);
    links = new FleetLinks(nats.url, scenario.connections, meter);
    await links.ready();
    system = new ActorSystem({ clock, rng: createRng('bench'), meter, name: 'bench' });
    const refs = spawnFleet({
      system,
      scenario,
      plans,
      identities,
      links,
      recorder,
      partitions: info.partitions,
      updateRoot: null,
    });
    const cpu0 = {
      loadgen: cpuSeconds(process.pid),
      shard: cpuSeconds(shard.pid),
      nats: cpuSeconds(nats.pid),
    };
    const t0 = performance.now();
    for (const ref of refs) ref.tell({ type: 'device.power-on' });
    // Done when every device attested once (or the wait gives up after 5 minutes).
    const timeline: string[] = [];
    let nextSample = 0;
    while (recorder.byResult['ok'] !== devices && performance.now() - t0 < 300_000) {
      await new Promise((r) => setTimeout(r, 20));
      if (process.env['SPHERE_BENCH_TIMELINE'] !== undefined && performance.now() - t0 >= nextSample) {
        nextSample += 250;
        const phases: Record<string, number> = {};
        for (const t of recorder.tracks) phases[t.phase] = (phases[t.phase] ?? 0) + 1;
        timeline.push(
          `${((performance.now() - t0) / 1000).toFixed(2)}s ok=${recorder.byResult['ok'] ?? 0} ${JSON.stringify(phases)}`,
        );
      }
    }
    for (const line of timeline) console.log(line);
    const elapsedMs = performance.now() - t0;
    const cpu = {
      loadgen: cpuSeconds(process.pid) - cpu0.loadgen,
      shard: cpuSeconds(shard.pid) - cpu0.shard,
      nats: cpuSeconds(nats.pid) - cpu0.nats,
    };
    const memAfter = process.memoryUsage();
    const ok = recorder.byResult['ok'] ?? 0;
    const rate = (ok / elapsedMs) * 1000;
    const failures = recorder.attestations - ok;
    await system.shutdown();
    system = null;
    await links.close();
    links = null;
    admin.close();
    await shard.stop();

    const limit = await runCryptoOnlyLimit({
      workers,
      attestations: Math.max(4000, devices),
      batchSize: Number(values.batch),
    });
    const ratio = rate / limit.attestationsPerSecond;
    const lat = recorder.attestLatency;
    const perDeviceKb = (memAfter.rss - memBefore.rss) / devices / 1024;
    const heapPerDeviceKb = (memAfter.heapUsed - memBefore.heapUsed) / devices / 1024;
    console.log(
      `devices ${devices} (${mode}${mode === 'shared' ? `, ${String(values.pool)} connections` : ''}), shard workers ${workers}, batch ${values.batch}`,
    );
    console.log(
      `end-to-end: ${ok} attestations in ${(elapsedMs / 1000).toFixed(2)} s = ${rate.toFixed(0)}/s (${failures} failed attempts)`,
    );
    console.log(
      `latency (challenge -> certificates, wall): p50 ${lat.percentile(50).toFixed(1)} ms, p90 ${lat.percentile(90).toFixed(1)} ms, p99 ${lat.percentile(99).toFixed(1)} ms, max ${lat.max.toFixed(1)} ms`,
    );
    const us = (sec: number) => ((sec / Math.max(1, ok)) * 1e6).toFixed(0);
    console.log(
      `CPU during the storm (per attestation): loadgen ${cpu.loadgen.toFixed(2)} s (${us(cpu.loadgen)} µs), ` +
        `shard incl. workers ${cpu.shard.toFixed(2)} s (${us(cpu.shard)} µs), nats-server ${cpu.nats.toFixed(2)} s (${us(cpu.nats)} µs)`,
    );
    console.log(
      `crypto-only limit on ${workers} worker(s): ${limit.attestationsPerSecond.toFixed(0)}/s (1 device sign + 1 verify + 2 certificate signs + a session key wrapped and unwrapped per attestation)`,
    );
    console.log(`ratio end-to-end / limit: ${ratio.toFixed(2)}`);
    console.log(
      `loadgen memory per device: ${perDeviceKb.toFixed(1)} KB RSS, ${heapPerDeviceKb.toFixed(1)} KB heap`,
    );
    console.log(
      `BENCH attest rate=${rate.toFixed(0)} limit=${limit.attestationsPerSecond.toFixed(0)} ratio=${ratio.toFixed(2)} ` +
        `p50_ms=${lat.percentile(50).toFixed(0)} p99_ms=${lat.percentile(99).toFixed(0)} devices=${devices} workers=${workers} ` +
        `mode=${mode} failed=${failures} rss_kb_per_device=${perDeviceKb.toFixed(1)}`,
    );
  } finally {
    await system?.shutdown();
    await links?.close();
    await shard.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error('bench:attest failed:', e);
    process.exit(1);
  },
);
