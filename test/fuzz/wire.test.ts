/**
 * Fuzz over the wire: a real nats-server and a real shard (the shared fixtures), fuzzed bytes on
 * every device subject and through a raw gRPC client, then checks that the shard counted what it
 * refused and still serves. Run `npm run build` first (the crypto pool runs compiled workers).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY } from '../../services/attestation/index.js';
import type { AttestationPolicy } from '../../services/attestation/index.js';
import {
  decodeUpdateReportReply,
  deviceSubject,
  encodeUpdateReport,
  partitionOf,
} from '../../proto/codec/index.js';
import { FUZZ_ENTRY_POINTS } from '../../deploy/fuzz/entry-points.js';
import { OP_COUNTERS, openSession, sampleSum, seedTarget } from '../../deploy/fuzz/target.js';
import type { FuzzTarget } from '../../deploy/fuzz/target.js';
import { ADMIN_TOKEN, PARTITIONS, REQUEST_TIMEOUT_MS, useShard } from '../fixtures/shard.js';
import { fuzzIt } from './fuzz-it.js';

/** The fuzzer sends thousands of requests as one device: no rate limit (when the policy has one). */
const NO_RATE_LIMIT = (
  'deviceRateLimit' in DEFAULT_POLICY ? { deviceRateLimit: { burst: 1e9, perHour: 1e9 } } : {}
) as Partial<AttestationPolicy>;

describe('fuzz - device subjects and the operator API over the wire', () => {
  const env = useShard({ shardId: 'shard-fuzz', policy: NO_RATE_LIMIT });
  let target: FuzzTarget | null = null;

  beforeAll(async () => {
    const e = env();
    target = await seedTarget({
      natsUrl: e.natsUrl,
      devices: e.devices,
      grpcAddress: e.shard.grpcAddress,
      adminToken: ADMIN_TOKEN,
      partitions: PARTITIONS,
      journal: null,
      metricsText: () => e.shard.meter.metricsText(),
      // In process: a crash would end this test worker.
      shardRunning: () => true,
    });
  });
  afterAll(() => target?.seeds.tenantA.close());

  for (const entry of FUZZ_ENTRY_POINTS.filter((e) => e.needs === 'shard')) fuzzIt(entry, () => target);

  // BUG-3, found by the fuzzer: the refusal was counted by the handler and again by the gateway.
  it('update-report - a refused report is counted once in sphere_update_reports_total', async () => {
    const t = target ?? expect.fail('no target');
    const device = t.seeds.device;
    const session = await openSession(t, device);
    const body = encodeUpdateReport({
      deviceId: device.deviceId,
      deploymentId: 'd-00000000000000ff' as never,
      reportId: 'r-bug-3',
      outcome: 'failed',
      code: 'INSTALL_FAILED',
      deviceTimeMs: Date.now(),
    });
    const counter = OP_COUNTERS['update-report'] ?? 'sphere_update_reports_total';
    const before = sampleSum(await t.metricsText(), counter, { result: 'rejected' });
    const raw = await t.devices.request(
      deviceSubject('update-report', partitionOf(device.deviceId, t.partitions)),
      session === null ? body : session.seal('update-report', body),
      { timeoutMs: REQUEST_TIMEOUT_MS },
    );
    const r = decodeUpdateReportReply(raw);
    expect(r.ok && !r.value.ok && r.value.error.code).toBe('UNKNOWN_DEPLOYMENT');
    expect(sampleSum(await t.metricsText(), counter, { result: 'rejected' }) - before).toBe(1);
  });
});
