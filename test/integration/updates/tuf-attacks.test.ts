/**
 * Attacks on the update channel, one by one: a man-in-the-middle between a device and the live
 * shard rewrites update checks and image chunks. Each attack must be refused by the device's
 * security core with its TUF code, reported (the rollout counts the device as failed), counted in
 * `sphere_update_refusals_total{code}` and alerted to the tenant as UPDATE_VERIFICATION_FAILED.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { Transport } from '../../../actors/runtime/index.js';
import {
  decodeChunkReply,
  decodeUpdateCheckReply,
  encodeChunkReply,
  encodeUpdateCheckReply,
} from '../../../proto/codec/index.js';
import type { ChunkMsg, UpdateCheckMsg } from '../../../proto/codec/index.js';
import {
  bootedDevice,
  createTestTenant,
  endorseAndClaim,
  sampleValue,
  uniqueSeed,
  useShard,
} from '../../fixtures/shard.js';
import type { TestTenant } from '../../fixtures/shard.js';
import { agentSystem, fetchTufMetadata, spawnAgent, until } from '../../fixtures/updates.js';

const env = useShard({ seed: 'tuf-attacks' });
const agents = agentSystem();
/** Agents whose clock runs two days ahead of the service (they see its metadata as expired). */
const lateAgents = agentSystem(2 * 86_400_000);
afterAll(async () => {
  await agents.stop();
  await lateAgents.stop();
});

interface Tamper {
  check?: (c: UpdateCheckMsg) => UpdateCheckMsg;
  chunk?: (c: ChunkMsg, imageLength: number) => ChunkMsg;
}

/** A transport that rewrites update-check and update-chunk replies on their way to the device. */
function manInTheMiddle(inner: Transport, current: () => Tamper, imageLength: number): Transport {
  return {
    request: async (subject, data, opts) => {
      const reply = await inner.request(subject, data, opts);
      const tamper = current();
      if (subject.startsWith('sphere.dev.v1.update-check.') && tamper.check !== undefined) {
        const d = decodeUpdateCheckReply(reply);
        if (!d.ok || !d.value.ok) return reply;
        return encodeUpdateCheckReply({ ok: true, value: tamper.check(d.value.value) });
      }
      if (subject.startsWith('sphere.dev.v1.update-chunk.') && tamper.chunk !== undefined) {
        const d = decodeChunkReply(reply);
        if (!d.ok || !d.value.ok) return reply;
        return encodeChunkReply({ ok: true, value: tamper.chunk(d.value.value, imageLength) });
      }
      return reply;
    },
    publish: (s, d) => inner.publish(s, d),
    serve: (s, h, o) => inner.serve(s, h, o),
    flush: () => inner.flush(),
    close: () => Promise.resolve(),
    get isClosed() {
      return inner.isClosed;
    },
  };
}

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

/** Rewrites one role's signed JSON without re-signing it. */
function editJson(
  b: Uint8Array,
  edit: (md: { signatures: { keyid: string; sig: string }[] }) => void,
): Uint8Array {
  const md = JSON.parse(text(b)) as { signatures: { keyid: string; sig: string }[] };
  edit(md);
  return bytes(JSON.stringify(md));
}

const IMAGE_BYTES = 40_000;

describe('TUF attacks on the update channel', () => {
  let t: TestTenant;
  let productId: string;
  let appImageId: string;
  /** Metadata as first published (captured by the attacker right after the tenant was created). */
  let stale: { timestamp: Uint8Array; snapshot: Uint8Array; targets: Uint8Array };

  async function groupFor(label: string, deviceId: string): Promise<string> {
    const g = await t.client.createDeviceGroup({ productId, name: label });
    const id = g.deviceGroup?.deviceGroupId ?? '';
    await t.client.assignDevices(id, [deviceId]);
    return id;
  }

  async function deploy(groupId: string, imageId: string): Promise<string> {
    const d = await t.client.createDeployment({
      deviceGroupId: groupId,
      imageId,
      waves: [{ size: { $case: 'share', value: 1 } }],
      errorCount: 5,
    });
    return d.rollout?.deploymentId ?? '';
  }

  /** Runs one attacked device through `deployments` in turn; returns its last report's code. */
  async function attack(
    label: string,
    tamper: (round: number) => Tamper,
    o: { late?: boolean; imageId?: string; rounds?: number } = {},
  ): Promise<string> {
    const { admin, shard, devices: transport } = env();
    const device = bootedDevice(uniqueSeed(label));
    await endorseAndClaim(admin, t.client, [device]);
    const groupId = await groupFor(label, device.deviceId);
    const root = await fetchTufMetadata(shard.tufUrl, t.tenantId);
    let round = 0;
    const link = manInTheMiddle(transport, () => tamper(round), IMAGE_BYTES);
    const h = await spawnAgent({
      system: (o.late === true ? lateAgents : agents).system,
      device,
      root,
      transport: link,
    });
    let last = '';
    const rounds = o.rounds ?? 1;
    for (; round < rounds; round++) {
      const imageId =
        round === 0
          ? (o.imageId ?? appImageId)
          : ((
              await t.client.uploadImage({
                kind: 'app',
                name: 'blinky',
                version: `2.${round}.0-${label}`,
                content: randomBytes(IMAGE_BYTES),
              })
            ).image?.imageId ?? '');
      const deploymentId = await deploy(groupId, imageId);
      h.agent.tell({ type: 'update.check-due' });
      h.agent.tell({ type: 'agent.device-attested' });
      const final = await until(
        () => t.client.getDeployment(deploymentId, true),
        (r) => ['succeeded', 'failed'].includes(r.rollout?.devices[0]?.state ?? ''),
      );
      // The rollout shows the outcome once the report is applied; the agent records the
      // acknowledgement a moment later.
      const acked = () =>
        h.events.findLast((e) => e.kind === 'report' && e.acked && e.deploymentId === deploymentId);
      const state = final.rollout?.devices[0]?.state;
      const report = await until(acked, (e) => e?.kind === 'report' && e.outcome === state, 500);
      last =
        report?.kind === 'report'
          ? `${final.rollout?.devices[0]?.state}:${report.code}`
          : `no report (rollout ${final.rollout?.state}, device ${final.rollout?.devices[0]?.state}; agent saw ${JSON.stringify(h.events)})`;
    }
    return last;
  }

  async function expectAlerted(code: string): Promise<void> {
    const alerts = await t.client.listAlerts({ type: 'UPDATE_VERIFICATION_FAILED', limit: 1000 });
    expect(alerts.alerts.map((a) => a.evidence['code'])).toContain(code);
    const metrics = await env().shard.meter.metricsText();
    expect(sampleValue(metrics, 'sphere_update_refusals_total', { code })).toBeGreaterThanOrEqual(1);
  }

  it('TUF attacks - setup: a tenant, a product, an image; the attacker keeps the first metadata', async () => {
    const { admin, shard } = env();
    t = await createTestTenant(admin, 'tuf-attacks');
    stale = {
      timestamp: await fetchTufMetadata(shard.tufUrl, t.tenantId, 'timestamp.json'),
      snapshot: await fetchTufMetadata(shard.tufUrl, t.tenantId, '1.snapshot.json'),
      targets: await fetchTufMetadata(shard.tufUrl, t.tenantId, '1.targets.json'),
    };
    productId = (await t.client.createProduct('tuf-attacks product')).product?.productId ?? '';
    const image = await t.client.uploadImage({
      kind: 'app',
      name: 'blinky',
      version: '1.1.0',
      content: randomBytes(IMAGE_BYTES),
    });
    appImageId = image.image?.imageId ?? '';
    // Untampered, the same path succeeds: what fails below fails because of the attack.
    expect(await attack('control', () => ({}))).toBe('succeeded:');
  });

  it('TUF attacks - a forged signature on targets is refused (TUF_BAD_SIGNATURE)', async () => {
    const code = await attack('bad-signature', () => ({
      check: (c) => ({
        ...c,
        metadata: {
          ...c.metadata,
          targets: editJson(c.metadata.targets, (md) => {
            const s = md.signatures[0];
            if (s !== undefined) s.sig = (s.sig.startsWith('0') ? '1' : '0') + s.sig.slice(1);
          }),
        },
      }),
    }));
    expect(code).toBe('failed:TUF_BAD_SIGNATURE');
    await expectAlerted('TUF_BAD_SIGNATURE');
  });

  it('TUF attacks - stripped signatures on snapshot are refused (TUF_BAD_SIGNATURE, below threshold)', async () => {
    const code = await attack('no-signature', () => ({
      check: (c) => ({
        ...c,
        metadata: { ...c.metadata, snapshot: editJson(c.metadata.snapshot, (md) => (md.signatures = [])) },
      }),
    }));
    expect(code).toBe('failed:TUF_BAD_SIGNATURE');
  });

  it('TUF attacks - an older targets file with current snapshot is refused (TUF_MIX_AND_MATCH)', async () => {
    const code = await attack('mix-and-match', () => ({
      check: (c) => ({ ...c, metadata: { ...c.metadata, targets: stale.targets } }),
    }));
    expect(code).toBe('failed:TUF_MIX_AND_MATCH');
    await expectAlerted('TUF_MIX_AND_MATCH');
  });

  it('TUF attacks - replayed old metadata after a newer one was trusted is refused (TUF_ROLLBACK)', async () => {
    // Round 0 is honest (the device comes to trust current metadata); round 1 replays the first.
    const code = await attack(
      'rollback',
      (round) => (round === 0 ? {} : { check: (c) => ({ ...c, metadata: { roots: [], ...stale } }) }),
      { rounds: 2 },
    );
    expect(code).toBe('failed:TUF_ROLLBACK');
    await expectAlerted('TUF_ROLLBACK');
  });

  it('TUF attacks - metadata past its expiry (a freeze) is refused (TUF_EXPIRED)', async () => {
    const code = await attack('freeze', () => ({}), { late: true });
    expect(code).toBe('failed:TUF_EXPIRED');
    await expectAlerted('TUF_EXPIRED');
  });

  it('TUF attacks - a tampered image byte is refused (TUF_HASH_MISMATCH)', async () => {
    const code = await attack('hash', () => ({
      chunk: (c) => {
        if (c.offset !== 0) return c;
        const data = Uint8Array.from(c.data);
        data[0] = (data[0] ?? 0) ^ 0xff;
        return { ...c, data };
      },
    }));
    expect(code).toBe('failed:TUF_HASH_MISMATCH');
    await expectAlerted('TUF_HASH_MISMATCH');
  });

  it('TUF attacks - a truncated image is refused (TUF_LENGTH_MISMATCH)', async () => {
    const code = await attack('length', () => ({
      chunk: (c, length) => (c.offset + c.data.length === length ? { ...c, data: c.data.subarray(1) } : c),
    }));
    expect(code).toBe('failed:TUF_LENGTH_MISMATCH');
    await expectAlerted('TUF_LENGTH_MISMATCH');
  });

  it('TUF attacks - an offer for a target the metadata does not list is refused (TUF_UNKNOWN_TARGET)', async () => {
    const code = await attack('unknown-target', () => ({
      check: (c) => ({ ...c, offers: c.offers.map((o) => ({ ...o, targetName: 'app/blinky/6.6.6.img' })) }),
    }));
    expect(code).toBe('failed:TUF_UNKNOWN_TARGET');
  });

  it('TUF attacks - an old OS disguised as a newer security version is refused (TUF_SECURITY_VERSION_ROLLBACK)', async () => {
    // The OS image is really security version 3 (the device has 5 burnt in); the attacker
    // rewrites the offer so the agent downloads it, and the core checks the signed metadata.
    const os = await t.client.uploadImage({
      kind: 'os',
      name: 'azure-sphere-os',
      version: '24.10',
      securityVersion: 3,
      content: randomBytes(IMAGE_BYTES),
    });
    const code = await attack(
      'sv-rollback',
      () => ({ check: (c) => ({ ...c, offers: c.offers.map((o) => ({ ...o, securityVersion: 9 })) }) }),
      { imageId: os.image?.imageId ?? '' },
    );
    expect(code).toBe('failed:TUF_SECURITY_VERSION_ROLLBACK');
    await expectAlerted('TUF_SECURITY_VERSION_ROLLBACK');
  });
});
