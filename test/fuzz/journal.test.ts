/**
 * Fuzz against a shard process on a JetStream journal (on a nats-server of its own): the
 * over-the-wire entry points again (the journal changes how requests are stored), a known bug of
 * report IDs in the journal, then records published straight into the journal (the known bug
 * there stops the shard, so it runs last). The shard runs from dist/: `npm run build` first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNatsTransport } from '../../actors/runtime/index.js';
import type { Transport } from '../../actors/runtime/index.js';
import {
  decodeUpdateReportReply,
  deviceSubject,
  encodeUpdateReport,
  partitionOf,
} from '../../proto/codec/index.js';
import { FUZZ_ENTRY_POINTS } from '../../deploy/fuzz/entry-points.js';
import { openSession, seedTarget } from '../../deploy/fuzz/target.js';
import type { FuzzTarget } from '../../deploy/fuzz/target.js';
import { SHARD_HELP } from '../../services/shard/index.js';
import { useNatsServer } from '../fixtures/nats.js';
import { useProcesses } from '../fixtures/processes.js';
import { ADMIN_TOKEN, PARTITIONS, REQUEST_TIMEOUT_MS } from '../fixtures/shard.js';
import { fuzzIt } from './fuzz-it.js';

const JOURNAL = 'fuzzjournal';

describe('fuzz - a shard on a JetStream journal', () => {
  const nats = useNatsServer({ jetstream: true });
  const procs = useProcesses();
  let devices: Transport | null = null;
  let target: FuzzTarget | null = null;

  beforeAll(async () => {
    const shard = procs.spawnEntry('services/shard/main.js', [
      '--nats',
      nats().url,
      '--admin-token',
      ADMIN_TOKEN,
      '--journal',
      JOURNAL,
      '--shard-id',
      'shard-fuzz-journal',
      // One genuine device sends most requests: no rate limit (where the shard has one).
      ...(SHARD_HELP.includes('--device-rate-burst') ? ['--device-rate-burst', '1000000000'] : []),
    ]);
    const ready = await shard.waitForLine(/^READY /);
    const metrics = /metrics=(\S+)/.exec(ready)?.[1] ?? '';
    devices = await connectNatsTransport({ servers: nats().url, name: 'fuzz-journal-devices' });
    target = await seedTarget({
      natsUrl: nats().url,
      devices,
      grpcAddress: /grpc=(\S+)/.exec(ready)?.[1] ?? '',
      adminToken: ADMIN_TOKEN,
      partitions: PARTITIONS,
      journal: JOURNAL,
      metricsText: async () => (await fetch(metrics)).text(),
      shardRunning: () => shard.isRunning(),
    });
  });
  afterAll(async () => {
    target?.seeds.tenantA.close();
    await devices?.close();
  });

  for (const entry of FUZZ_ENTRY_POINTS.filter((e) => e.needs === 'shard')) fuzzIt(entry, () => target);

  // BUG-7, found by the fuzzer: the report ID went raw into the Nats-Msg-Id header, which NATS
  // trims (a trailing space: never answered) or refuses (a line break: INTERNAL on every try).
  for (const reportId of ['r\n1', 'r\r\n2', 'r3 ', 'r4\t', 'r5\u00a0']) {
    it(`update-report - report ID ${JSON.stringify(reportId)} is stored and acknowledged, and so is its repeat (BUG-7)`, async () => {
      const t = target ?? expect.fail('no target');
      const device = t.seeds.device;
      const send = async (): Promise<unknown> => {
        const session = await openSession(t, device);
        const body = encodeUpdateReport({
          deviceId: device.deviceId,
          deploymentId: t.seeds.deploymentId ?? expect.fail('no deployment'),
          reportId,
          outcome: 'downloading',
          code: '',
          deviceTimeMs: Date.now(),
        });
        const raw = await t.devices.request(
          deviceSubject('update-report', partitionOf(device.deviceId, t.partitions)),
          session === null ? body : session.seal('update-report', body),
          { timeoutMs: REQUEST_TIMEOUT_MS },
        );
        return decodeUpdateReportReply(raw);
      };
      expect(await send()).toMatchObject({ ok: true, value: { ok: true, value: { reportId } } });
      // The repeat is acknowledged too, from the stored report.
      expect(await send()).toMatchObject({ ok: true, value: { ok: true, value: { reportId } } });
    });
  }

  for (const entry of FUZZ_ENTRY_POINTS.filter((e) => e.needs === 'journal')) fuzzIt(entry, () => target);
});
