/**
 * bench:detect — detection latency under load: how long from a hostile request leaving the
 * attacker to its alert arriving on the tenant's WatchAlerts stream, while a fleet of genuine
 * devices keeps the shard busy. Real parts: nats-server with JetStream, a shard process on a
 * JetStream journal (alerts are journaled and applied before they are streamed), gRPC.
 *
 * Each sample: a device replays a request it already sent (a captured sealed update check), the
 * shard refuses it REPLAYED, raises the refusal alert and threat detection's REPLAYED_REQUEST,
 * both stored through the journal; the clock stops when each arrives on the stream. The baseline,
 * measured in the same run under the same load, is a genuine request's round trip: detection
 * cannot beat the request reaching the shard. Prints figures and, last:
 *
 *   BENCH detect p99_ms=.. p50_ms=.. baseline_p99_ms=.. ratio=<p99/baseline p99> aim_ms=100 ...
 *
 * Usage: node dist/deploy/bench/detect.js [--devices 200] [--load 800] [--samples 200]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connectNatsTransport, createRng } from '../../actors/runtime/index.js';
import type { Transport } from '../../actors/runtime/index.js';
import { appImage, attestOnce, manufactureIdentity, osImages } from '../../actors/security-core/index.js';
import type { ManufacturedIdentity } from '../../actors/security-core/index.js';
import type { DeviceSession } from '../../actors/device/index.js';
import { deviceSubject, encodeUpdateCheckRequest, partitionOf } from '../../proto/codec/index.js';
import { createOperatorClient } from '../../services/operator-api/index.js';
import { serviceClock } from '../../loadgen/runner/index.js';
import { LatencyRecorder } from '../../loadgen/scenario/index.js';
import { getFreePort, startNatsServer } from '../local/nats.js';
import { spawnManaged } from '../local/processes.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const TIMEOUT_MS = 30_000;

interface Device {
  readonly identity: ManufacturedIdentity;
  session: DeviceSession;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '200' },
      load: { type: 'string', default: '800' },
      samples: { type: 'string', default: '200' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    console.log('Usage: npm run bench:detect -- [--devices 200] [--load 800] [--samples 200]');
    return;
  }
  const loadDevices = Number(values.devices);
  const loadPerSecond = Number(values.load);
  const samples = Number(values.samples);

  const nats = await startNatsServer({ jetstream: true });
  const dir = mkdtempSync(join(tmpdir(), 'sphere-bench-detect-'));
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
      '--admin-token-file',
      tokenFile,
      '--journal',
      'bench-detect',
      // The load devices send far more than a device should: neither the rate limit nor the
      // flooding rule is what this bench measures.
      '--device-rate-burst',
      '1000000000',
      '--device-rate-per-hour',
      '1000000000',
      '--flood-max-requests',
      '1000000000',
    ],
    { ready: /^READY /, readyTimeoutMs: 30_000 },
  );
  const transports: Transport[] = [];
  const admin = createOperatorClient(`127.0.0.1:${grpcPort}`, token);
  let stopLoad = (): void => undefined;
  try {
    await shard.ready;
    const info = await admin.getServiceInfo();
    const created = await admin.createTenant('bench-detect');
    const tenant = admin.withToken(created.apiToken);
    const total = loadDevices + samples;
    const identities = Array.from({ length: total }, (_, i) => manufactureIdentity(`bench-detect-${i}`));
    await admin.registerEndorsements(identities.map((d) => d.attestationPublicKey));
    await tenant.claimDevices(identities.map((d) => d.deviceId));
    for (let i = 0; i < 4; i++)
      transports.push(await connectNatsTransport({ servers: nats.url, name: `bench-${i}` }));
    const link = (i: number): Transport => transports[i % transports.length] as Transport;
    const clock = serviceClock(info);
    const rng = createRng('bench-detect/boot-ids');
    const firmware = [...osImages('25.10'), appImage({ name: 'blinky', version: '1.0.0' })];
    const devices: Device[] = [];
    let next = 0;
    const attested: (Device | undefined)[] = new Array<Device | undefined>(total);
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < total; i = next++) {
          const identity = identities[i] as ManufacturedIdentity;
          const session = await attestOnce({
            transport: link(i),
            identity,
            images: firmware,
            osVersion: '25.10',
            securityVersion: 5,
            partitions: info.partitions,
            deviceTimeMs: clock.now(),
            timeoutMs: TIMEOUT_MS,
            bootId: rng.bytes(16),
          });
          attested[i] = { identity, session };
        }
      }),
    );
    for (const d of attested) if (d !== undefined) devices.push(d);
    const load = devices.slice(0, loadDevices);
    const hostile = devices.slice(loadDevices);

    const check = (d: Device): { subject: string; bytes: Uint8Array } => {
      const id = d.identity.deviceId;
      const body = encodeUpdateCheckRequest({
        deviceId: id,
        trustedRootVersion: 1,
        installed: [],
        deviceTimeMs: clock.now(),
      });
      return {
        subject: deviceSubject('update-check', partitionOf(id, info.partitions)),
        bytes: d.session.seal('update-check', body),
      };
    };

    // The load: genuine sealed update checks at `loadPerSecond`, round trips recorded (baseline).
    const baseline = new LatencyRecorder();
    let sent = 0;
    let failedLoad = 0;
    let running = true;
    const tick = 10;
    const loadStarted = performance.now();
    const loadTimer = setInterval(() => {
      for (let k = 0; k < (loadPerSecond * tick) / 1000; k++) {
        const d = load[sent % load.length] as Device;
        const i = sent++;
        const r = check(d);
        const t0 = performance.now();
        link(i)
          .request(r.subject, r.bytes, { timeoutMs: TIMEOUT_MS })
          .then(
            () => {
              if (running) baseline.record(performance.now() - t0);
            },
            () => failedLoad++,
          );
      }
    }, tick);
    stopLoad = () => {
      running = false;
      clearInterval(loadTimer);
    };

    // Watch the tenant's alerts; a map of waiters by device and type.
    const waiters = new Map<string, (atWall: number) => void>();
    const ac = new AbortController();
    const watching = (async () => {
      for await (const u of tenant.watchAlerts({ onlyNew: true, signal: ac.signal })) {
        const w = waiters.get(`${u.alert.deviceId} ${u.alert.type}`);
        waiters.delete(`${u.alert.deviceId} ${u.alert.type}`);
        w?.(performance.now());
      }
    })().catch((e: unknown) => {
      if (!ac.signal.aborted) throw e;
    });
    await new Promise((r) => setTimeout(r, 2000)); // the load reaches a steady state
    const arrival = (deviceId: string, type: string): Promise<number> =>
      new Promise((resolveArrival, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${type} alert for ${deviceId} in 30 s`)), 30_000);
        waiters.set(`${deviceId} ${type}`, (at) => {
          clearTimeout(timer);
          resolveArrival(at);
        });
      });

    const refusal = new LatencyRecorder();
    const detection = new LatencyRecorder();
    let missing = 0;
    for (const [i, d] of hostile.entries()) {
      const captured = check(d);
      // The genuine request first (what an attacker on the wire captures), then its replay.
      await link(i).request(captured.subject, captured.bytes, { timeoutMs: TIMEOUT_MS });
      const refused = arrival(d.identity.deviceId, 'REPLAYED');
      const detected = arrival(d.identity.deviceId, 'REPLAYED_REQUEST');
      const t0 = performance.now();
      void link(i)
        .request(captured.subject, captured.bytes, { timeoutMs: TIMEOUT_MS })
        .catch(() => undefined);
      try {
        const [a, b] = await Promise.all([refused, detected]);
        refusal.record(a - t0);
        detection.record(b - t0);
      } catch (e) {
        missing++;
        console.error(String(e));
      }
    }
    stopLoad();
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    ac.abort();
    await watching;

    const p99 = detection.percentile(99);
    const baseP99 = baseline.percentile(99);
    const achieved = baseline.count / loadSeconds;
    console.log(
      `load: ${loadDevices} attested devices sending sealed update checks, asked ${loadPerSecond}/s, answered ${achieved.toFixed(0)}/s over ${loadSeconds.toFixed(1)} s (${failedLoad} failed)`,
    );
    console.log(
      `hostile: ${samples} devices each replaying one captured request (${missing} alerts missing)`,
    );
    console.log(
      `replay -> REPLAYED alert on WatchAlerts: p50 ${refusal.percentile(50).toFixed(1)} ms, p99 ${refusal.percentile(99).toFixed(1)} ms, max ${refusal.max.toFixed(1)} ms`,
    );
    console.log(
      `replay -> REPLAYED_REQUEST detection on WatchAlerts: p50 ${detection.percentile(50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${detection.max.toFixed(1)} ms`,
    );
    console.log(
      `baseline (a genuine request's round trip, same load): p50 ${baseline.percentile(50).toFixed(1)} ms, p99 ${baseP99.toFixed(1)} ms`,
    );
    console.log(`aim: detection p99 under 100 ms: ${p99 < 100 ? 'met' : 'NOT met'}`);
    console.log(
      `BENCH detect p99_ms=${p99.toFixed(1)} p50_ms=${detection.percentile(50).toFixed(1)} refusal_p99_ms=${refusal.percentile(99).toFixed(1)} ` +
        `baseline_p99_ms=${baseP99.toFixed(1)} ratio=${(p99 / baseP99).toFixed(2)} aim_ms=100 samples=${detection.count} ` +
        `missing=${missing} load_per_s=${achieved.toFixed(0)} devices=${loadDevices}`,
    );
    if (missing > 0) process.exitCode = 1;
  } finally {
    stopLoad();
    admin.close();
    for (const t of transports) await t.close();
    await shard.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(),
  (e: unknown) => {
    console.error('bench:detect failed:', e);
    process.exit(1);
  },
);
