import { DEFAULT_DEVICE_ERROR_BEHAVIOUR, deviceDefinition, SessionSlot } from '../../actors/device/index.js';
import type { DeviceBehaviour, DeviceLink, DeviceMessage, DeviceProfile } from '../../actors/device/index.js';
import { connectNatsTransport } from '../../actors/runtime/index.js';
import type { ActorRef, ActorSystem, Meter, Transport } from '../../actors/runtime/index.js';
import {
  manufactureIdentity,
  securityCoreDefinition,
  sessionOpener,
  tamperedKernelDigest,
} from '../../actors/security-core/index.js';
import type { ManufacturedIdentity } from '../../actors/security-core/index.js';
import {
  DEFAULT_UPDATE_SHELL_BEHAVIOUR,
  firmwareFor,
  updateAgentDefinition,
} from '../../actors/update-agent/index.js';
import type { InstalledImage, UpdateShellBehaviour } from '../../actors/update-agent/index.js';
import { imageDefective } from '../scenario/index.js';
import type { ConnectionConfig, DevicePlan, Scenario } from '../scenario/index.js';
import type { DeviceTrack, RunRecorder } from './recorder.js';

/** Name of the OS component in update offers and checks (Azure Sphere OS images). */
export const OS_IMAGE_NAME = 'azure-sphere-os';

/** Identities by seed: a cloned twin gets the very same identity object as its original. */
export function manufactureFleet(plans: readonly DevicePlan[]): ManufacturedIdentity[] {
  const bySeed = new Map<string, ManufacturedIdentity>();
  return plans.map((p) => {
    let id = bySeed.get(p.seed);
    if (id === undefined) bySeed.set(p.seed, (id = manufactureIdentity(p.seed)));
    return id;
  });
}

/** The boot images a planned device loads (a tampered kernel where its fault says so). */
export function deviceProfile(plan: DevicePlan, identity: ManufacturedIdentity): DeviceProfile {
  const firmware = firmwareFor(installedImages(plan));
  return {
    deviceId: identity.deviceId,
    ...firmware,
    images: firmware.images.map((m) =>
      m.stage === 'kernel' && plan.fault === 'tamperedKernel'
        ? { stage: m.stage, digest: tamperedKernelDigest(plan.osVersion) }
        : m,
    ),
    fault: plan.fault,
    clockOffsetMs: plan.clockOffsetMs,
  };
}

/**
 * How devices reach NATS. Shared: a fixed pool of connections opened up front, device i uses
 * connection i mod pool. Per-device: each device opens its own connection when it first connects.
 * Only valid until `close`.
 */
export class FleetLinks {
  readonly #shared: Promise<Transport>[] = [];
  readonly #own: Promise<Transport>[] = [];
  readonly #nats: string;
  readonly #mode: ConnectionConfig;
  readonly #meter: Meter;

  constructor(nats: string, mode: ConnectionConfig, meter: Meter) {
    this.#nats = nats;
    this.#mode = mode;
    this.#meter = meter;
    if (mode.mode === 'shared') {
      for (let i = 0; i < mode.pool; i++) this.#shared.push(this.#open(`loadgen-shared-${i}`));
    }
  }

  #open(name: string): Promise<Transport> {
    return connectNatsTransport({ servers: this.#nats, name, meter: this.#meter });
  }

  /** Waits until the shared pool is connected (per-device mode connects lazily). */
  async ready(): Promise<void> {
    await Promise.all(this.#shared);
  }

  /** Device `index`'s link; its actors (device, update agent) share the connection it opens. */
  linkFor(index: number): DeviceLink {
    if (this.#mode.mode === 'shared') {
      const t = this.#shared[index % this.#shared.length];
      if (t === undefined) throw new Error('shared connection pool is empty');
      return { connect: () => t };
    }
    let own: Promise<Transport> | null = null;
    return {
      connect: () => {
        if (own === null) {
          const t = this.#open(`device-${index}`);
          // A failed connect is retried with a fresh connection next time.
          t.catch(() => (own = null));
          this.#own.push(t);
          own = t;
        }
        return own;
      },
    };
  }

  get connections(): number {
    return this.#shared.length + this.#own.length;
  }

  async close(): Promise<void> {
    const all = await Promise.allSettled([...this.#shared, ...this.#own]);
    await Promise.allSettled(all.flatMap((r) => (r.status === 'fulfilled' ? [r.value.close()] : [])));
  }
}

/** What a planned device runs at manufacture, as its update agent sees it. */
export function installedImages(plan: DevicePlan): InstalledImage[] {
  return [
    { kind: 'os', name: OS_IMAGE_NAME, version: plan.osVersion, securityVersion: plan.securityVersion },
    ...plan.apps.map((a) => ({ kind: 'app' as const, name: a.name, version: a.version, securityVersion: 1 })),
  ];
}

/** The update agent's knobs from the scenario (simulated ms). */
export function updateBehaviour(scenario: Scenario): UpdateShellBehaviour {
  const u = scenario.updates;
  return {
    ...DEFAULT_UPDATE_SHELL_BEHAVIOUR,
    checkEveryMs: u.checkEveryMs,
    chunkBytes: u.chunkBytes,
    slowLinkBytesPerSecond: u.slowLinkBytesPerSecond,
    retry: scenario.device.retry,
  };
}

/** The device actor's knobs from the scenario: its behaviour plus crashes and error uploads. */
export function deviceBehaviour(scenario: Scenario): DeviceBehaviour {
  return { ...scenario.device, errors: { ...DEFAULT_DEVICE_ERROR_BEHAVIOUR, ...scenario.errors } };
}

/**
 * Spawns a security core and a device actor per plan, and an update agent per device when the
 * scenario rolls out updates (`updateRoot`: the tenant's TUF root, provisioned into every core);
 * returns the device refs in plan order.
 */
export function spawnFleet(opts: {
  system: ActorSystem;
  scenario: Scenario;
  plans: readonly DevicePlan[];
  identities: readonly ManufacturedIdentity[];
  links: FleetLinks;
  recorder: RunRecorder;
  partitions: number;
  updateRoot: Uint8Array | null;
}): ActorRef<DeviceMessage>[] {
  const { scenario, recorder, updateRoot } = opts;
  const d = scenario.device;
  const behaviour = deviceBehaviour(scenario);
  const wallNow = () => performance.now();
  const updates = updateRoot === null ? null : updateBehaviour(scenario);
  return opts.plans.map((plan, i) => {
    const identity = opts.identities[i];
    if (identity === undefined) throw new Error(`no identity for device ${i}`);
    const track: DeviceTrack = recorder.track(i);
    const link = opts.links.linkFor(i);
    const core = opts.system.spawn(
      securityCoreDefinition(`core:${i}`, identity, updateRoot === null ? {} : { updateRoot }),
    );
    let device: ActorRef<DeviceMessage> | null = null;
    const session = new SessionSlot();
    const agent =
      updates === null
        ? null
        : opts.system.spawn(
            updateAgentDefinition({
              name: `agent:${i}`,
              deviceId: identity.deviceId,
              installed: installedImages(plan),
              fault: plan.updateFault,
              deferOsMs: plan.deferOsMs,
              defective: (offer) => {
                const image = scenario.images.find(
                  (m) => m.kind === offer.kind && m.name === offer.name && m.version === offer.version,
                );
                return (
                  image !== undefined &&
                  imageDefective(scenario.seed, identity.deviceId, image.id, image.defectRate)
                );
              },
              behaviour: updates,
              core,
              device: () => device,
              link,
              session,
              partitions: opts.partitions,
              requestTimeoutMs: d.requestTimeoutMs,
              observe: (event) => recorder.observeUpdate(track, event),
              // The device records it in its error log (uploaded with its next report).
              installFailed: (f) =>
                device?.tell({
                  type: 'device.update-failed',
                  component: f.kind,
                  name: f.name,
                  version: f.version,
                  code: `${f.outcome}: ${f.code}`,
                }),
            }),
          );
    device = opts.system.spawn(
      deviceDefinition({
        name: `device:${i}`,
        profile: deviceProfile(plan, identity),
        behaviour,
        core,
        link,
        session,
        openSession: sessionOpener(identity),
        partitions: opts.partitions,
        requestTimeoutMs: d.requestTimeoutMs,
        observe: (profile, event) => {
          recorder.observe(track, profile, event);
          if (agent === null) return;
          // The agent checks for updates after the first attestation of every boot.
          if (event.kind === 'attested') agent.tell({ type: 'agent.device-attested' });
          else if (event.kind === 'phase' && event.to === 'booting')
            agent.tell({ type: 'agent.device-booted' });
        },
        wallNow,
      }),
    );
    return device;
  });
}
