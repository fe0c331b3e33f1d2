/**
 * Devices' error reports against a real shard (real nats-server, shard in-process, crypto pool on
 * the compiled workers: run `npx tsc -p tsconfig.json` first). Real device actors attest, record
 * errors and upload them sealed with their session; a link between a device and NATS can lose the
 * reply to an upload or corrupt an upload's MAC, so the device's repeats meet the real service.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_DEVICE_ERROR_BEHAVIOUR,
  SessionSlot,
  deviceDefinition,
} from '../../../actors/device/index.js';
import type { DeviceBehaviour, DeviceEvent, DeviceMessage } from '../../../actors/device/index.js';
import { TransportError } from '../../../actors/runtime/index.js';
import type { ActorRef, ActorSystem, Transport } from '../../../actors/runtime/index.js';
import { securityCoreDefinition, sessionOpener } from '../../../actors/security-core/index.js';
import { firmwareFor, updateAgentDefinition } from '../../../actors/update-agent/index.js';
import type { UpdateAgentShellMessage } from '../../../actors/update-agent/index.js';
import {
  DEVICE_LIMITS,
  decodeAuthenticatedRequest,
  encodeAuthenticatedRequest,
} from '../../../proto/codec/index.js';
import {
  PARTITIONS,
  REQUEST_TIMEOUT_MS,
  bootedDevice,
  createTestTenant,
  endorse,
  endorseAndClaim,
  sampleValue,
  uniqueSeed,
  useShard,
} from '../../fixtures/shard.js';
import type { TestDevice, TestTenant } from '../../fixtures/shard.js';
import { FAST_UPDATES, agentSystem, fetchTufMetadata, until } from '../../fixtures/updates.js';

/** Time scale 1: attest at boot, retry fast, upload every 300 ms (at a per-device phase). */
const BEHAVIOUR: DeviceBehaviour = {
  attestEveryMs: 3_600_000,
  heartbeatEveryMs: 3_600_000,
  retry: { initialMs: 50, maxMs: 500, multiplier: 2, jitter: 0.2 },
  replayAfterMs: 3_600_000,
  renewBeforeMs: 0,
  errors: { ...DEFAULT_DEVICE_ERROR_BEHAVIOUR, uploadEveryMs: 300 },
};

/** What the link does to the device's n-th error report upload (1-based). */
type Tamper = (n: number) => 'pass' | 'lose-reply' | 'corrupt-mac';

/**
 * `t` as one device's link: other requests pass; error report uploads go through `tamper` (a
 * lost reply reaches the shard, but the device sees a timeout; a corrupted MAC reaches the shard).
 */
function link(t: Transport, tamper: Tamper): Transport {
  let n = 0;
  return {
    async request(subject, data, opts) {
      if (!subject.includes('.error-report.')) return t.request(subject, data, opts);
      const how = tamper(++n);
      if (how === 'corrupt-mac') {
        const framed = decodeAuthenticatedRequest(data, DEVICE_LIMITS.errorReport);
        if (!framed.ok) throw new Error(framed.error.message);
        const mac = Uint8Array.from(framed.value.mac);
        mac[0] = (mac[0] ?? 0) ^ 0x01;
        return t.request(subject, encodeAuthenticatedRequest({ ...framed.value, mac }), opts);
      }
      const reply = await t.request(subject, data, opts);
      if (how === 'lose-reply') throw new TransportError('TIMEOUT', 'the reply was lost on the way (test)');
      return reply;
    },
    publish: (subject, data) => t.publish(subject, data),
    serve: (subject, handler, opts) => t.serve(subject, handler, opts),
    flush: () => t.flush(),
    // Shared with the other devices: closed by the fixture.
    close: () => Promise.resolve(),
    get isClosed() {
      return t.isClosed;
    },
  };
}

interface Spawned {
  readonly ref: ActorRef<DeviceMessage>;
  readonly events: DeviceEvent[];
  /** Upload results as `result:code`, in order. */
  results(): string[];
  /** Kinds of the events it recorded, in order. */
  recorded(): string[];
}

describe('device error reports', () => {
  const env = useShard({ shardId: 'shard-error-reports', seed: 'error-reports' });
  let tenant: TestTenant;
  let system: ActorSystem;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    tenant = await createTestTenant(env().admin, 'Contoso Error Reports');
    ({ system, stop } = agentSystem());
  });
  afterAll(async () => {
    await stop();
  });

  const installed = [
    { kind: 'os' as const, name: 'azure-sphere-os', version: '25.10', securityVersion: 5 },
    { kind: 'app' as const, name: 'blinky', version: '1.0.0', securityVersion: 1 },
  ];

  /**
   * A device actor (and its security core) for `dev`, powered on. With `updates` (the tenant's
   * TUF root), an update agent whose installs fail runs beside it, wired as the fleet runner does.
   */
  function spawn(dev: TestDevice, tamper: Tamper = () => 'pass', updates?: Uint8Array): Spawned {
    const events: DeviceEvent[] = [];
    const core = system.spawn(
      securityCoreDefinition(
        `core:${dev.deviceId}`,
        dev.identity,
        updates === undefined ? {} : { updateRoot: updates },
      ),
    );
    const transport = link(env().devices, tamper);
    const session = new SessionSlot();
    let ref: ActorRef<DeviceMessage> | null = null;
    let agent: ActorRef<UpdateAgentShellMessage> | null = null;
    if (updates !== undefined)
      agent = system.spawn(
        updateAgentDefinition({
          name: `agent:${dev.deviceId}`,
          deviceId: dev.deviceId,
          installed,
          fault: 'installFails',
          defective: () => false,
          behaviour: FAST_UPDATES,
          core,
          device: () => ref,
          link: { connect: () => Promise.resolve(transport) },
          session,
          partitions: PARTITIONS,
          requestTimeoutMs: REQUEST_TIMEOUT_MS,
          installFailed: (f) =>
            ref?.tell({
              type: 'device.update-failed',
              component: f.kind,
              name: f.name,
              version: f.version,
              code: `${f.outcome}: ${f.code}`,
            }),
        }),
      );
    ref = system.spawn(
      deviceDefinition({
        name: `device:${dev.deviceId}`,
        profile: { deviceId: dev.deviceId, ...firmwareFor(installed), fault: null, clockOffsetMs: 0 },
        behaviour: BEHAVIOUR,
        core,
        link: { connect: () => Promise.resolve(transport) },
        session,
        openSession: sessionOpener(dev.identity),
        partitions: PARTITIONS,
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
        observe: (_profile, event) => {
          events.push(event);
          if (event.kind === 'attested') agent?.tell({ type: 'agent.device-attested' });
        },
        wallNow: () => performance.now(),
      }),
    );
    ref.tell({ type: 'device.power-on' });
    return {
      ref,
      events,
      results: () => events.flatMap((e) => (e.kind === 'error-report' ? [`${e.result}:${e.code}`] : [])),
      recorded: () => events.flatMap((e) => (e.kind === 'error-recorded' ? [e.errorKind] : [])),
    };
  }

  /** A fresh device, endorsed and claimed by the tenant, powered on and attested. */
  async function attested(label: string, tamper?: Tamper): Promise<Spawned> {
    const dev = bootedDevice(uniqueSeed(label));
    await endorseAndClaim(env().admin, tenant.client, [dev]);
    const d = spawn(dev, tamper);
    await until(
      () => d.events.some((e) => e.kind === 'attested'),
      (ok) => ok,
    );
    return d;
  }

  const failedUpdate: DeviceMessage = {
    type: 'device.update-failed',
    component: 'app',
    name: 'blinky',
    version: '1.1.0',
    code: 'failed: INSTALL_FAILED',
  };

  /** The shard's counts of stored and duplicate uploads, refusals by code, and stored events by kind. */
  async function counts() {
    const text = await env().shard.meter.metricsText();
    const uploads = (result: string, reason = 'OK') =>
      sampleValue(text, 'sphere_error_report_uploads_total', { result, reason });
    return {
      stored: uploads('stored'),
      duplicate: uploads('duplicate'),
      badMac: uploads('rejected', 'BAD_MAC'),
      events: (kind: string) => sampleValue(text, 'sphere_error_events_total', { kind }),
    };
  }

  /** Waits until the device's upload results end with `last`; returns all of them. */
  const settled = (d: Spawned, last: string): Promise<string[]> =>
    until(
      () => d.results(),
      (r) => r.includes(last),
    );

  it('error reports - a failed update reaches the shard in the next upload, stored once and acknowledged', async () => {
    const d = await attested('stored');
    const before = await counts();
    d.ref.tell(failedUpdate);
    expect(await settled(d, 'acked:OK')).toEqual(['acked:OK']);
    const after = await counts();
    expect(after.stored - before.stored).toBe(1);
    expect(after.duplicate - before.duplicate).toBe(0);
    expect(after.events('update-failed') - before.events('update-failed')).toBe(1);
    expect(d.recorded()).toEqual(['update-failed']);
  });

  it('error reports - a lost acknowledgement makes the device repeat the report: acknowledged as a duplicate, stored once', async () => {
    const d = await attested('lost-ack', (n) => (n === 1 ? 'lose-reply' : 'pass'));
    const before = await counts();
    d.ref.tell(failedUpdate);
    expect(await settled(d, 'duplicate:OK')).toEqual(['retry:TIMEOUT', 'duplicate:OK']);
    const after = await counts();
    expect(after.stored - before.stored).toBe(1);
    expect(after.duplicate - before.duplicate).toBe(1);
    expect(after.events('update-failed') - before.events('update-failed')).toBe(1);
  });

  it('error reports - a refused upload (BAD_MAC) is retried with the session until stored', async () => {
    const d = await attested('refused', (n) => (n === 1 ? 'corrupt-mac' : 'pass'));
    const before = await counts();
    d.ref.tell(failedUpdate);
    expect(await settled(d, 'acked:OK')).toEqual(['retry:BAD_MAC', 'acked:OK']);
    const after = await counts();
    expect(after.badMac - before.badMac).toBe(1);
    expect(after.stored - before.stored).toBe(1);
    expect(after.duplicate - before.duplicate).toBe(0);
  });

  it('error reports - refused attestations are recorded and uploaded once the device has a session', async () => {
    const dev = bootedDevice(uniqueSeed('unclaimed'));
    await endorse(env().admin, [dev]); // endorsed, not claimed: its attestations are refused
    const before = await counts();
    const d = spawn(dev);
    await until(
      () => d.recorded().length,
      (n) => n >= 2,
    );
    expect(d.results()).toEqual([]); // no session yet: nothing went out
    const claim = await tenant.client.claimDevices([dev.deviceId]);
    expect(claim.rejected).toEqual([]);
    expect(await settled(d, 'acked:OK')).toEqual(['acked:OK']);
    const recorded = d.recorded();
    expect(new Set(recorded)).toEqual(new Set(['attestation-failed']));
    const report = d.events.find((e) => e.kind === 'error-report');
    expect(report?.kind === 'error-report' ? report.events : 0).toBe(recorded.length);
    const after = await counts();
    expect(after.stored - before.stored).toBe(1);
    expect(after.events('attestation-failed') - before.events('attestation-failed')).toBe(recorded.length);
  });

  it('error reports - an install that fails on the device reaches the shard as update-failed, from the update agent through the device', async () => {
    const dev = bootedDevice(uniqueSeed('install-fails'));
    await endorseAndClaim(env().admin, tenant.client, [dev]);
    const product = await tenant.client.createProduct('error reports product');
    const group = product.deviceGroups.find((g) => g.name === 'Field Test');
    if (group === undefined) throw new Error('no Field Test group');
    await tenant.client.assignDevices(group.deviceGroupId, [dev.deviceId]);
    const image = await tenant.client.uploadImage({
      kind: 'app',
      name: 'blinky',
      version: '1.1.0',
      content: randomBytes(20 * 1024),
    });
    await tenant.client.createDeployment({
      deviceGroupId: group.deviceGroupId,
      imageId: image.image?.imageId ?? '',
      waves: [{ size: { $case: 'share', value: 1 } }],
      successThreshold: 0,
      errorCount: 100,
    });
    const root = await fetchTufMetadata(env().shard.tufUrl, tenant.tenantId);
    const before = await counts();
    const d = spawn(dev, () => 'pass', root);
    expect(await settled(d, 'acked:OK')).toEqual(['acked:OK']);
    expect(d.recorded()).toEqual(['update-failed']);
    const after = await counts();
    expect(after.stored - before.stored).toBe(1);
    expect(after.events('update-failed') - before.events('update-failed')).toBe(1);
  });
});
