import type { ActorRef, Clock } from '../../actors/runtime/index.js';
import { REJECT_CODES } from '../../proto/codec/index.js';
import type {
  ChunkMsg,
  ChunkRequestMsg,
  DeploymentId,
  DeviceGroupId,
  InstalledComponentMsg,
  Reply,
  Rejection,
  TenantId,
  UpdateCheckMsg,
  UpdateCheckRequestMsg,
  UpdateOfferMsg,
  UpdateReportMsg,
} from '../../proto/codec/index.js';
import { isFinalDeviceState } from '../rollouts/index.js';
import type { Rollout, RolloutError, RolloutMessage } from '../rollouts/index.js';
import type { ImageRecord } from '../registry/index.js';
import type { AlertPort } from './alerts.js';
import type { ServiceMetrics } from '../metrics/index.js';
import type { TufRepository } from '../updates/tuf/index.js';
import type { DeploymentMessage } from './deployment-actor.js';

/** Chunk size the service offers; a device may ask for less (NATS' default max payload is 1 MiB). */
export const OFFER_CHUNK_BYTES = 64 * 1024;

/** Rollout states in which offered devices may download and install. */
const SERVING: ReadonlySet<Rollout['state']> = new Set(['running', 'waiting', 'paused', 'completed']);

/** A deployment as the update service sees it. */
export interface DeploymentEntry {
  readonly id: DeploymentId;
  readonly tenantId: TenantId;
  readonly groupId: string;
  readonly ref: ActorRef<DeploymentMessage>;
  /** What the deployment updates: `'os'`, or the application's name. */
  readonly component: string;
  /** The image's version. */
  readonly version: string;
}

/** What the update service reads from the rest of the shard. */
export interface UpdateServiceDeps {
  readonly clock: Clock;
  readonly metrics: ServiceMetrics;
  readonly alerts: AlertPort;
  readonly shardId: string;
  /**
   * The claimed device's tenant and group (recording what it runs, in its partition's turn), or
   * why it gets no updates.
   */
  device(
    check: UpdateCheckRequestMsg,
  ): Promise<{ tenantId: TenantId; groupId: DeviceGroupId | null } | Rejection>;
  deployment(id: DeploymentId): DeploymentEntry | undefined;
  deploymentsOf(tenantId: TenantId, groupId: string): readonly DeploymentEntry[];
  readRollout(ref: ActorRef<DeploymentMessage>): Promise<Rollout>;
  /**
   * Journals a message for a deployment's rollout; resolves once it is stored and applied (with
   * the engine's refusal, if any: a refused report is still stored, and answered as received).
   */
  commitRollout(id: DeploymentId, msg: RolloutMessage): Promise<RolloutError | null>;
  repo(tenantId: TenantId): TufRepository | undefined;
  /**
   * Re-signs the tenant's TUF timestamp (or republishes) when it is due, journaling it first:
   * metadata a device has seen must never be forgotten, or it would read as a rollback.
   */
  keepFresh(tenantId: TenantId): Promise<void>;
  image(tenantId: TenantId, imageId: string): ImageRecord | undefined;
}

/** The device-facing update protocol (update-check, update-chunk, update-report), transport-free. */
export interface UpdateService {
  check(req: UpdateCheckRequestMsg): Promise<Reply<UpdateCheckMsg>>;
  chunk(req: ChunkRequestMsg): Promise<Reply<ChunkMsg>>;
  /** Resolves once the report is applied to its rollout (acknowledge only then). */
  report(r: UpdateReportMsg): Promise<Reply<{ reportId: string }>>;
}

const reject = (code: Rejection['code'], message: string): { ok: false; error: Rejection } => ({
  ok: false,
  error: { code, message },
});

/** Whether the rollout lets `deviceId` download its image now. */
function offeredTo(r: Rollout, deviceId: string): boolean {
  const i = r.index[deviceId];
  const d = i === undefined ? undefined : r.devices[i];
  return d !== undefined && d.offered && !isFinalDeviceState(d.state) && SERVING.has(r.state);
}

/** Whether the rollout orders `deviceId` back to its previous image. */
function rollbackFor(r: Rollout, deviceId: string): boolean {
  const i = r.index[deviceId];
  const d = i === undefined ? undefined : r.devices[i];
  return d !== undefined && d.rollbackOrdered && d.state === 'succeeded';
}

/**
 * Answers devices' update checks from their group's deployments and their tenant's TUF
 * repository, serves image chunks to devices a deployment offered them to, and feeds update
 * reports to the deployment's rollout. Refusals a device reports about the update channel
 * (TUF_* codes: rollback, freeze, mix-and-match, bad signatures, hashes, lengths, security
 * version) are counted and alerted to the tenant: they mean someone tampered with the updates.
 */
export function createUpdateService(deps: UpdateServiceDeps): UpdateService {
  const { metrics } = deps;

  async function check(req: UpdateCheckRequestMsg): Promise<Reply<UpdateCheckMsg>> {
    const found = await deps.device(req);
    if ('code' in found) return { ok: false, error: found };
    const repo = deps.repo(found.tenantId);
    if (repo === undefined)
      return reject(REJECT_CODES.INTERNAL, 'tenant has no update repository; retry later');
    await deps.keepFresh(found.tenantId);
    const offers: UpdateOfferMsg[] = [];
    const rollbacks: DeploymentId[] = [];
    if (found.groupId !== null) {
      const entries = deps.deploymentsOf(found.tenantId, found.groupId);
      const rollouts = await Promise.all(entries.map((e) => deps.readRollout(e.ref)));
      entries.forEach((e, i) => {
        const r = rollouts[i];
        if (r === undefined) return;
        if (rollbackFor(r, req.deviceId)) rollbacks.push(e.id);
        if (!offeredTo(r, req.deviceId)) return;
        const image = deps.image(found.tenantId, r.image.imageId);
        if (image === undefined) return;
        offers.push({
          deploymentId: e.id,
          kind: image.kind,
          name: image.name,
          version: image.version,
          securityVersion: image.securityVersion,
          targetName: image.targetName,
          length: image.length,
          chunkSize: OFFER_CHUNK_BYTES,
        });
      });
    }
    metrics.updateChecks.inc({ result: offers.length > 0 ? 'offered' : 'none', reason: 'OK' });
    return { ok: true, value: { offers, rollbacks, metadata: repo.latest(req.trustedRootVersion) } };
  }

  async function chunk(req: ChunkRequestMsg): Promise<Reply<ChunkMsg>> {
    const entry = deps.deployment(req.deploymentId);
    if (entry === undefined) {
      return reject(
        REJECT_CODES.UNKNOWN_DEPLOYMENT,
        `no deployment ${req.deploymentId}; check for updates again`,
      );
    }
    const rollout = await deps.readRollout(entry.ref);
    if (!offeredTo(rollout, req.deviceId)) {
      return reject(
        REJECT_CODES.NOT_OFFERED,
        `deployment ${req.deploymentId} does not offer its image to this device now (not in an open wave, already final, or the rollout stopped); check for updates again`,
      );
    }
    const image = deps.image(entry.tenantId, rollout.image.imageId);
    const content =
      image === undefined ? undefined : deps.repo(entry.tenantId)?.targetContent(image.targetName);
    if (content === undefined)
      return reject(REJECT_CODES.INTERNAL, 'image content is unavailable; retry later');
    if (req.offset >= content.length) {
      return reject(
        REJECT_CODES.OUT_OF_RANGE,
        `offset ${req.offset} is past the image's ${content.length} bytes`,
      );
    }
    const data = content.subarray(req.offset, Math.min(content.length, req.offset + req.length));
    metrics.updateBytesServed.inc(data.length);
    metrics.updateChunks.inc({ result: 'ok', reason: 'OK' });
    return { ok: true, value: { offset: req.offset, data } };
  }

  function report(r: UpdateReportMsg): Promise<Reply<{ reportId: string }>> {
    const entry = deps.deployment(r.deploymentId);
    // Refusals are counted by the gateway, like every op's.
    if (entry === undefined) {
      return Promise.resolve(
        reject(REJECT_CODES.UNKNOWN_DEPLOYMENT, `no deployment ${r.deploymentId}; drop this report`),
      );
    }
    if (r.code.startsWith('TUF_')) {
      metrics.updateRefusals.inc({ code: r.code });
      deps.alerts.refusal({
        tenantId: entry.tenantId,
        type: REJECT_CODES.UPDATE_VERIFICATION_FAILED,
        deviceId: r.deviceId,
        atMs: deps.clock.now(),
        message: `device refused deployment ${r.deploymentId}'s update: ${r.code}; the update channel may be under attack`,
        evidence: { code: r.code, deployment: r.deploymentId, report: r.reportId, shard: deps.shardId },
      });
    }
    // Acknowledged only once stored: a device repeats an unacknowledged report. One already
    // applied (its acknowledgement was lost) is acknowledged again without storing it twice.
    return deps
      .readRollout(entry.ref)
      .then((rollout) => {
        const i = rollout.index[r.deviceId];
        return i !== undefined && rollout.devices[i]?.reportIds.includes(r.reportId) === true;
      })
      .catch(() => false)
      .then((known) =>
        known
          ? null
          : deps.commitRollout(entry.id, {
              type: 'rollout.device-report',
              deviceId: r.deviceId,
              reportId: r.reportId,
              outcome: r.outcome,
              atMs: r.deviceTimeMs,
            }),
      )
      .then(
        () => {
          metrics.updateReports.inc({ result: 'ok', reason: r.code === '' ? 'OK' : r.code });
          return { ok: true, value: { reportId: r.reportId } };
        },
        () => {
          return reject(REJECT_CODES.INTERNAL, 'the report could not be stored; repeat it');
        },
      );
  }

  return { check, chunk, report };
}

/** What a device runs, as recorded from its update checks (for version-mix gauges). */
export function appVersions(installed: readonly InstalledComponentMsg[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of installed) if (c.kind === 'app') out[c.name] = c.version;
  return out;
}
