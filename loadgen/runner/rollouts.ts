/**
 * The operator side of a scenario's rollouts. Before the fleet powers on, {@link prepareRollouts}
 * creates a product, the scenario's custom device groups, assigns every planned device to its
 * group, uploads every image and reads the tenant's TUF root (which the devices' security cores
 * are provisioned with). Once the run's clock starts, {@link RolloutRun.start} creates each
 * deployment at its simulated `startAt` and polls the deployments about once a wall second;
 * {@link RolloutRun.finish} reads them one last time and summarizes them for the report.
 */
import type { Clock, TimerHandle } from '../../actors/runtime/index.js';
import type { CreateDeploymentRequest, Rollout } from '../../proto/gen/sphere/operator/v1/operator.js';
import type { OperatorClient } from '../../services/operator-api/index.js';
import { ROLLOUT_NOT_STARTED, rolloutExpectationMet } from '../report/index.js';
import type { ProgressRollout, RolloutSummary } from '../report/index.js';
import { formatDuration, imageContent } from '../scenario/index.js';
import type { DevicePlan, ImageSpec, RolloutSpec, Scenario } from '../scenario/index.js';

/** Devices per AssignDevices call. */
const ASSIGN_BATCH = 5000;

/** Wall ms between GetDeployment polls. */
const POLL_INTERVAL_MS = 1000;

/** Rollout states after which the deployment never changes again. */
const ABSORBING = new Set(['halted', 'cancelled']);

/** The CreateDeployment request for `spec` (ids are the service's). */
export function deploymentRequest(
  spec: RolloutSpec,
  deviceGroupId: string,
  imageId: string,
): CreateDeploymentRequest {
  const { config } = spec;
  return {
    deviceGroupId,
    imageId,
    waves: config.waves.map((wave) => ({
      size: 'count' in wave ? { $case: 'count', value: wave.count } : { $case: 'share', value: wave.share },
    })),
    successThreshold: config.successThreshold,
    errorCount: config.errorThreshold.count ?? 0,
    errorShare: config.errorThreshold.share ?? 0,
    autoRollback: config.autoRollback,
    pauseBetweenWavesMs: config.pauseBetweenWavesMs ?? 0,
  };
}

/** Summarize one rollout from the service's last view of its deployment (`null`: never created). */
export function rolloutSummary(
  spec: RolloutSpec,
  image: ImageSpec | undefined,
  deploymentId: string | null,
  view: Rollout | null,
  error: string | null,
): RolloutSummary {
  const state = view?.state ?? ROLLOUT_NOT_STARTED;
  return {
    name: spec.name,
    deploymentId,
    image: {
      id: spec.imageId,
      kind: image?.kind ?? 'app',
      name: image?.name ?? spec.imageId,
      version: image?.version ?? '',
    },
    group: spec.group,
    devices: spec.devices,
    startAtMs: spec.startAtMs,
    state,
    currentWave: view?.currentWave ?? 0,
    totalWaves: spec.config.waves.length,
    waves: [...(view?.waves ?? [])]
      .sort((a, b) => a.wave - b.wave)
      .map((w) => ({ wave: w.wave, devicesByState: { ...w.devicesByState } })),
    failures: view?.failures ?? 0,
    attempted: view?.attempted ?? 0,
    haltReason: view === null || view.haltReason === '' ? null : view.haltReason,
    expect: spec.expect,
    expectationMet: rolloutExpectationMet(spec.expect, state),
    error,
  };
}

/** What {@link prepareRollouts} needs. */
export interface RolloutRunOptions {
  /** Bound to the tenant's API token. */
  readonly client: OperatorClient;
  readonly scenario: Scenario;
  readonly plans: readonly DevicePlan[];
  /** Device ID of each plan, by plan index. */
  readonly deviceIds: readonly string[];
  readonly log: (line: string) => void;
  /**
   * Where the tenant's TUF repository is served (`GetServiceInfo.tuf_base_url`) and the tenant:
   * the run then reads the repository's root (`1.root.json`) for the devices' security cores.
   */
  readonly tuf?: { readonly baseUrl: string; readonly tenantId: string };
}

interface Entry {
  readonly spec: RolloutSpec;
  readonly image: ImageSpec | undefined;
  readonly groupId: string;
  readonly imageId: string;
  deploymentId: string | null;
  view: Rollout | null;
  error: string | null;
  timer: TimerHandle | null;
  creating: Promise<void> | null;
}

/**
 * Sets up everything the scenario's rollouts need (no-op returning `null` without rollouts):
 * a product named after the scenario with its default groups, the scenario's custom groups, every
 * device with a `rolloutGroup` assigned to it (batches of {@link ASSIGN_BATCH}) and every image
 * uploaded (content from `imageContent`). Call before the devices power on.
 *
 * @throws when a call fails or a device cannot be assigned
 */
export async function prepareRollouts(opts: RolloutRunOptions): Promise<RolloutRun | null> {
  const { client, scenario, log } = opts;
  if (scenario.rollouts.length === 0) return null;
  const created = await client.createProduct(scenario.name.slice(0, 128), scenario.description);
  const productId = created.product?.productId;
  if (productId === undefined) throw new Error('CreateProduct returned no product');
  const groupIds = new Map(created.deviceGroups.map((g) => [g.name, g.deviceGroupId]));
  for (const group of scenario.groups) {
    const made = await client.createDeviceGroup({
      productId,
      name: group.name,
      osFeed: group.osFeed,
      updatePolicy: group.updatePolicy,
    });
    if (made.deviceGroup === undefined)
      throw new Error(`CreateDeviceGroup returned no group for "${group.name}"`);
    groupIds.set(group.name, made.deviceGroup.deviceGroupId);
  }
  const groupIdOf = (name: string): string => {
    const id = groupIds.get(name);
    if (id === undefined) throw new Error(`the product has no device group "${name}"`);
    return id;
  };

  const members = new Map<string, string[]>();
  opts.plans.forEach((plan, i) => {
    const deviceId = opts.deviceIds[i];
    if (plan.rolloutGroup === null || deviceId === undefined) return;
    const list = members.get(plan.rolloutGroup) ?? [];
    list.push(deviceId);
    members.set(plan.rolloutGroup, list);
  });
  for (const [group, ids] of members) {
    const groupId = groupIdOf(group);
    for (let i = 0; i < ids.length; i += ASSIGN_BATCH) {
      const result = await client.assignDevices(groupId, ids.slice(i, i + ASSIGN_BATCH));
      if (result.rejected.length > 0) {
        throw new Error(
          `assigning devices to "${group}" failed for ${result.rejected.length} devices: ${result.rejected[0]?.message}`,
        );
      }
    }
  }

  const imageIds = new Map<string, string>();
  for (const image of scenario.images) {
    const uploaded = await client.uploadImage({
      kind: image.kind,
      name: image.name,
      version: image.version,
      securityVersion: image.securityVersion,
      content: imageContent(scenario.seed, image),
    });
    if (uploaded.image === undefined) throw new Error(`UploadImage returned no image for "${image.id}"`);
    imageIds.set(image.id, uploaded.image.imageId);
  }
  let updateRoot: Uint8Array | null = null;
  if (opts.tuf !== undefined && opts.tuf.baseUrl !== '') {
    const url = `${opts.tuf.baseUrl}/${opts.tuf.tenantId}/metadata/1.root.json`;
    const res = await fetch(url);
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
    updateRoot = new Uint8Array(await res.arrayBuffer());
  }
  const assigned = [...members.values()].reduce((sum, ids) => sum + ids.length, 0);
  log(
    `product ${productId}: ${assigned.toLocaleString('en-US')} devices in ${members.size} group(s), ` +
      `${imageIds.size} image(s) uploaded, ${scenario.rollouts.length} rollout(s) scheduled`,
  );

  const entries = scenario.rollouts.map((spec): Entry => {
    const imageId = imageIds.get(spec.imageId);
    if (imageId === undefined)
      throw new Error(`rollout "${spec.name}": image "${spec.imageId}" was not uploaded`);
    return {
      spec,
      image: scenario.images.find((image) => image.id === spec.imageId),
      groupId: groupIdOf(spec.group),
      imageId,
      deploymentId: null,
      view: null,
      error: null,
      timer: null,
      creating: null,
    };
  });
  return new RolloutRun(client, entries, log, updateRoot);
}

/** The scenario's deployments during a run; see {@link prepareRollouts}. */
export class RolloutRun {
  /** Failed calls, by message (the run's error list). */
  readonly errors = new Map<string, number>();
  /** The tenant's TUF root metadata (`1.root.json`), when `tuf` was given to {@link prepareRollouts}. */
  readonly updateRoot: Uint8Array | null;
  readonly #client: OperatorClient;
  readonly #entries: readonly Entry[];
  readonly #log: (line: string) => void;
  #clock: Clock | null = null;
  #runStartMs = 0;
  #poller: ReturnType<typeof setInterval> | null = null;
  #polling: Promise<void> | null = null;

  constructor(
    client: OperatorClient,
    entries: readonly Entry[],
    log: (line: string) => void,
    updateRoot: Uint8Array | null = null,
  ) {
    this.updateRoot = updateRoot;
    this.#client = client;
    this.#entries = entries;
    this.#log = log;
  }

  /**
   * Schedules each deployment at its `startAtMs` after `runStartMs` on `clock` (simulated) and
   * starts polling them every {@link POLL_INTERVAL_MS} wall ms.
   */
  start(clock: Clock, runStartMs: number): void {
    this.#clock = clock;
    this.#runStartMs = runStartMs;
    const elapsed = clock.now() - runStartMs;
    for (const entry of this.#entries) {
      entry.timer = clock.setTimeout(
        () => {
          entry.timer = null;
          entry.creating = this.#create(entry);
        },
        Math.max(0, entry.spec.startAtMs - elapsed),
      );
    }
    this.#poller = setInterval(() => {
      this.#polling ??= this.#pollAll().finally(() => (this.#polling = null));
    }, POLL_INTERVAL_MS);
  }

  /** The latest known state of every rollout, for the progress line. */
  progress(): ProgressRollout[] {
    return this.#entries.map((entry) => ({
      name: entry.spec.name,
      state: entry.view?.state ?? (entry.error === null ? ROLLOUT_NOT_STARTED : 'error'),
      currentWave: entry.view?.currentWave ?? 0,
      totalWaves: entry.spec.config.waves.length,
    }));
  }

  /** Stops scheduling and polling, reads every deployment once more and summarizes them all. */
  async finish(): Promise<RolloutSummary[]> {
    this.stop();
    await Promise.all(this.#entries.flatMap((entry) => (entry.creating === null ? [] : [entry.creating])));
    await this.#polling;
    await Promise.all(
      this.#entries.map(async (entry) => {
        if (entry.deploymentId === null) return;
        const error = await this.#refresh(entry);
        if (error !== null && entry.view === null) entry.error = error;
      }),
    );
    return this.#entries.map((entry) =>
      rolloutSummary(entry.spec, entry.image, entry.deploymentId, entry.view, entry.error),
    );
  }

  /** Cancels pending deployments and polling (idempotent; `finish` calls it). */
  stop(): void {
    for (const entry of this.#entries) {
      if (entry.timer !== null) this.#clock?.clearTimeout(entry.timer);
      entry.timer = null;
    }
    if (this.#poller !== null) clearInterval(this.#poller);
    this.#poller = null;
  }

  async #create(entry: Entry): Promise<void> {
    try {
      const { rollout } = await this.#client.createDeployment(
        deploymentRequest(entry.spec, entry.groupId, entry.imageId),
      );
      if (rollout === undefined) throw new Error('CreateDeployment returned no rollout');
      entry.deploymentId = rollout.deploymentId;
      entry.view = rollout;
      this.#log(
        `rollout ${entry.spec.name}: deployment ${rollout.deploymentId} of ${entry.spec.imageId} to ` +
          `"${entry.spec.group}" (${entry.spec.devices.toLocaleString('en-US')} devices) ${rollout.state}`,
      );
    } catch (error) {
      entry.error = `CreateDeployment failed: ${messageOf(error)}`;
      this.#count(`rollout ${entry.spec.name}: ${entry.error}`);
    }
  }

  async #pollAll(): Promise<void> {
    await Promise.all(
      this.#entries
        .filter((entry) => entry.deploymentId !== null && !ABSORBING.has(entry.view?.state ?? ''))
        .map(async (entry) => {
          const error = await this.#refresh(entry);
          if (error !== null) this.#count(`rollout ${entry.spec.name}: ${error}`);
        }),
    );
  }

  /** Reads the deployment; returns the error message if the call failed (the last view stays). */
  async #refresh(entry: Entry): Promise<string | null> {
    if (entry.deploymentId === null) return null;
    try {
      const { rollout } = await this.#client.getDeployment(entry.deploymentId);
      if (rollout !== undefined) {
        const before = entry.view;
        entry.view = rollout;
        this.#logChange(entry, before, rollout);
      }
      return null;
    } catch (error) {
      return `GetDeployment failed: ${messageOf(error)}`;
    }
  }

  /** Logs a newly opened wave and the end of a rollout (halted, completed, cancelled). */
  #logChange(entry: Entry, before: Rollout | null, after: Rollout): void {
    const at = this.#clock === null ? '' : ` at ${formatDuration(this.#clock.now() - this.#runStartMs)}`;
    const wave = `wave ${after.currentWave}/${entry.spec.config.waves.length}`;
    const ended = ['halted', 'completed', 'cancelled'].includes(after.state);
    if (ended && before?.state !== after.state) {
      const reason = after.haltReason === '' ? '' : ` (${after.haltReason})`;
      this.#log(
        `rollout ${entry.spec.name}: ${after.state} in ${wave}${reason}${at}, ` +
          `${after.failures.toLocaleString('en-US')} failed of ${after.attempted.toLocaleString('en-US')} attempted`,
      );
    } else if (!ended && after.currentWave > (before?.currentWave ?? 0)) {
      this.#log(`rollout ${entry.spec.name}: ${wave} open${at}`);
    }
  }

  #count(message: string): void {
    this.errors.set(message, (this.errors.get(message) ?? 0) + 1);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
