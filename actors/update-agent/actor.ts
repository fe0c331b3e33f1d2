import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import type { ActorContext, ActorDefinition, ActorRef, Transport } from '../runtime/index.js';
import { TransportError } from '../runtime/index.js';
import {
  decodeChunkReply,
  decodeUpdateCheckReply,
  decodeUpdateReportReply,
  deviceSubject,
  encodeChunkRequest,
  encodeUpdateCheckRequest,
  encodeUpdateReport,
  parseDeploymentId,
  partitionOf,
} from '../../proto/codec/index.js';
import type {
  ChunkMsg,
  DeviceId,
  InstalledComponentMsg,
  Rejection,
  TufMetadataMsg,
  UpdateCheckMsg,
  UpdateOfferMsg,
  UpdateReportMsg,
} from '../../proto/codec/index.js';
import { appImage, osImages } from '../security-core/index.js';
import type { CoreMessage, UpdateVerdict } from '../security-core/index.js';
import type { DeviceFirmware, DeviceLink, SessionSlot } from '../device/index.js';
import { backoffDelay } from '../device/index.js';
import type { DeviceMessage } from '../device/index.js';
import { DEFAULT_UPDATE_BEHAVIOUR, initialUpdateAgentState, updateTransition } from './logic.js';
import type { UpdateAgentBehaviour, UpdateAgentEffect, UpdateAgentState } from './logic.js';
import { UPDATE_CODES } from './messages.js';
import type { InstalledImage, UpdateAgentMessage, UpdateOffer, UpdateOutcome } from './messages.js';

/** Update faults a scenario can give a device (what goes wrong on its side). */
export const UPDATE_FAULTS = ['installFails', 'bootLoop', 'powerLossMidDownload', 'slowLink'] as const;
export type UpdateFault = (typeof UPDATE_FAULTS)[number];

/** Simulated durations of the device-side steps, and link knobs. */
export interface UpdateShellBehaviour extends UpdateAgentBehaviour {
  /** Largest chunk the device asks for (the service's offer may be smaller). */
  readonly chunkBytes: number;
  /** Simulated link speed of `slowLink` devices. */
  readonly slowLinkBytesPerSecond: number;
  readonly installMs: number;
  /** An application restart; an OS update reboots the device (`osRebootMs`). */
  readonly appRestartMs: number;
  readonly osRebootMs: number;
  readonly healthCheckMs: number;
  /**
   * An OS update is healthy once the device, rebooted into it, attests again (the service knows
   * the new build's measurements) and `healthCheckMs` passes; without an attestation this long
   * after the reboot the agent falls back to the previous OS.
   */
  readonly osHealthTimeoutMs: number;
  /** Retry of failed update checks and unacknowledged reports (exponential, jittered). */
  readonly retry: {
    readonly initialMs: number;
    readonly maxMs: number;
    readonly multiplier: number;
    readonly jitter: number;
  };
}

export const DEFAULT_UPDATE_SHELL_BEHAVIOUR: UpdateShellBehaviour = {
  ...DEFAULT_UPDATE_BEHAVIOUR,
  chunkBytes: 64 * 1024,
  slowLinkBytesPerSecond: 2 * 1024,
  installMs: 60_000,
  appRestartMs: 5_000,
  osRebootMs: 60_000,
  healthCheckMs: 60_000,
  osHealthTimeoutMs: 30 * 60_000,
  retry: { initialMs: 60_000, maxMs: 3_600_000, multiplier: 2, jitter: 0.2 },
};

/** What the run's recorder learns from an update agent. */
export type UpdateAgentEvent =
  | { readonly kind: 'check'; readonly ok: boolean; readonly offers: number; readonly code?: string }
  | { readonly kind: 'chunk'; readonly bytes: number }
  /** The device's application postponed the OS update of `offerId` by `forMs` (what the agent granted). */
  | { readonly kind: 'os-deferred'; readonly offerId: string; readonly forMs: number }
  | {
      readonly kind: 'report';
      readonly deploymentId: string;
      readonly reportId: string;
      readonly outcome: UpdateOutcome;
      readonly code: string;
      /** The report reached the service and was acknowledged (false: it will be repeated). */
      readonly acked: boolean;
    };

/** An install that did not take: what the device records as an `update-failed` error event. */
export interface UpdateFailure {
  readonly kind: 'os' | 'app';
  readonly name: string;
  /** The version that failed to install. */
  readonly version: string;
  readonly outcome: 'failed' | 'rolled-back';
  readonly code: string;
}

export interface UpdateAgentShellOptions {
  readonly name: string;
  readonly deviceId: DeviceId;
  /** What the device runs at manufacture (OS and apps). */
  readonly installed: readonly InstalledImage[];
  readonly fault: UpdateFault | null;
  /**
   * How long the device's application asks to postpone an offered OS update (once per offer;
   * the agent grants at most `maxDeferralMs`). 0 or absent: it never asks.
   */
  readonly deferOsMs?: number;
  /** Whether this device's health check fails with `offer` (the image's defect hits it). */
  readonly defective: (offer: UpdateOfferMsg) => boolean;
  readonly behaviour: UpdateShellBehaviour;
  readonly core: ActorRef<CoreMessage>;
  /**
   * The device actor (set once the device is spawned): it gets the firmware the agent writes and
   * is power-cycled to boot a new or fallback OS, and by `powerLossMidDownload`.
   */
  readonly device: () => ActorRef<DeviceMessage> | null;
  /** What the device measures at boot when it runs `images` (default: {@link firmwareFor}). */
  readonly firmware?: (images: readonly InstalledImage[]) => DeviceFirmware;
  readonly link: DeviceLink;
  /** The device's session (set by the device shell when it attests); requests are sealed with it. */
  readonly session: SessionSlot;
  readonly partitions: number;
  readonly requestTimeoutMs: number;
  readonly observe?: (event: UpdateAgentEvent) => void;
  /**
   * Told once per attempt at an offer that failed or fell back on this device (verification,
   * install, boot or health check); not for rollbacks the service ordered.
   */
  readonly installFailed?: (failure: UpdateFailure) => void;
}

/** Messages besides the logic's: device lifecycle and results of the shell's I/O. */
export type UpdateAgentShellMessage =
  | UpdateAgentMessage
  /** The device attested; the first attestation after a boot triggers an update check. */
  | { readonly type: 'agent.device-attested' }
  | { readonly type: 'agent.device-booted' }
  | { readonly type: 'agent.check-result'; readonly outcome: Reply<UpdateCheckMsg> }
  | {
      readonly type: 'agent.chunk-result';
      readonly offerId: string;
      readonly offset: number;
      readonly outcome: Reply<ChunkMsg>;
    }
  | { readonly type: 'agent.verdict'; readonly offerId: string; readonly verdict: UpdateVerdict }
  | { readonly type: 'agent.report-due'; readonly reportId: string }
  | {
      readonly type: 'agent.report-result';
      readonly reportId: string;
      /** The service stored it. */
      readonly acked: boolean;
      /** The service refused it for good (it is not repeated, and not stored). */
      readonly refused: boolean;
    }
  | { readonly type: 'agent.power-restored' }
  /** The reboot into a new OS is over: power the device on (`ok`: the new slot booted). */
  | { readonly type: 'agent.rebooted'; readonly offerId: string; readonly ok: boolean }
  /** No attestation came after the reboot into the OS of `offerId`: the health check fails. */
  | { readonly type: 'agent.health-timeout'; readonly offerId: string };

/** Refusals of an update report that a repeat can overcome. */
const RETRYABLE_REPORT_CODES: ReadonlySet<string> = new Set([
  'OVERLOADED',
  'INTERNAL',
  'SESSION_EXPIRED',
  'REPLAYED',
  'RATE_LIMITED',
  'BAD_MAC',
]);

type Reply<T> = { ok: true; value: T } | { ok: false; error: Rejection | { code: string; message: string } };

interface Download {
  readonly offerId: string;
  /** Bytes received so far, hashed as they arrive (the image is never held whole). */
  received: number;
  hash: Hash;
}

interface PendingReport {
  readonly report: UpdateReportMsg;
  attempts: number;
}

/** The shell's state: the pure agent's state plus what the I/O needs. Mutable, owned by the actor. */
export interface UpdateAgentShellState {
  logic: UpdateAgentState;
  /** TUF metadata from the last successful check (what the core verifies against). */
  metadata: TufMetadataMsg | null;
  /** Offers by offer ID (= deployment ID) from checks, for target names and chunk sizes. */
  readonly offers: Map<string, UpdateOfferMsg>;
  download: Download | null;
  readonly reports: Map<string, PendingReport>;
  /** Root version the core trusts (sent with checks so the service sends newer roots). */
  trustedRootVersion: number;
  checkedSinceBoot: boolean;
  checkFailures: number;
  /** Offers a `powerLossMidDownload` device already lost power on (once per offer). */
  readonly powerLost: Set<string>;
  /** The images last written to the device (its next boot measures them). */
  flashed: readonly InstalledImage[];
  /** The OS offer whose health check waits for the device's first attestation after the reboot. */
  awaitingAttestation: string | null;
  /** OS offers the application already asked to postpone. */
  readonly deferAsked: Set<string>;
}

/** The measured firmware of a device running `images`: the OS build's boot stages, then its apps. */
export function firmwareFor(images: readonly InstalledImage[]): DeviceFirmware {
  const os = images.find((i) => i.kind === 'os');
  if (os === undefined) throw new Error('a device runs an OS: no os image given');
  return {
    osVersion: os.version,
    securityVersion: os.securityVersion,
    images: [
      ...osImages(os.version),
      ...images.flatMap((i) => (i.kind === 'app' ? [appImage({ name: i.name, version: i.version })] : [])),
    ],
    apps: images.flatMap((i) => (i.kind === 'app' ? [{ name: i.name, version: i.version }] : [])),
  };
}

function imagesKey(images: readonly InstalledImage[]): string {
  return images.map((i) => `${i.kind}:${i.name}@${i.version}`).join(',');
}

function activeImages(s: UpdateAgentState): InstalledImage[] {
  return Object.values(s.components).map((c) => c.active);
}

const osVersionOf = (images: readonly InstalledImage[]): string | undefined =>
  images.find((i) => i.kind === 'os')?.version;

function failure(e: unknown): { ok: false; error: { code: string; message: string } } {
  return {
    ok: false,
    error: {
      code: e instanceof TransportError ? e.code : 'OTHER',
      message: e instanceof Error ? e.message : String(e),
    },
  };
}

/**
 * The device update agent's shell: runs the pure `updateTransition` and carries out its effects
 * over NATS (update checks, resumable chunked downloads hashed on the fly, acknowledged reports
 * repeated until the service has them), has the security core verify each image against the
 * tenant's TUF metadata, and simulates install, reboot and health check with the device's faults.
 */
export function updateAgentDefinition(
  opts: UpdateAgentShellOptions,
): ActorDefinition<UpdateAgentShellState, UpdateAgentShellMessage> {
  const b = opts.behaviour;
  const partition = partitionOf(opts.deviceId, opts.partitions);
  const timeout = { timeoutMs: opts.requestTimeoutMs };
  let transport: Promise<Transport> | null = null;
  const net = (): Promise<Transport> => (transport ??= opts.link.connect());
  const firmware = opts.firmware ?? firmwareFor;

  /** Writes `images` to the device's flash: its next boot measures and runs them. */
  function flash(s: UpdateAgentShellState, images: readonly InstalledImage[]): void {
    s.flashed = images;
    opts.device()?.tell({ type: 'device.firmware-installed', firmware: firmware(images) });
  }

  /**
   * Keeps the device's flash in step with the agent's active slots once no OS trial is running:
   * a committed app is measured from the next boot on; a fallback or ordered rollback of the OS
   * reboots the device into the last known good OS.
   */
  function syncFirmware(s: UpdateAgentShellState, ctx: ActorContext<UpdateAgentShellMessage>): void {
    const c = s.logic.current;
    if (c?.offer.kind === 'os' && (s.logic.phase === 'rebooting' || s.logic.phase === 'health-check')) return;
    const active = activeImages(s.logic);
    if (imagesKey(active) === imagesKey(s.flashed)) return;
    const osChanged = osVersionOf(active) !== osVersionOf(s.flashed);
    flash(s, active);
    if (!osChanged) return;
    opts.device()?.tell({ type: 'device.power-off' });
    ctx.schedule(b.osRebootMs, { type: 'agent.power-restored' });
  }

  const request = (
    op: 'update-check' | 'update-chunk' | 'update-report',
    data: Uint8Array,
  ): Promise<Uint8Array> => {
    const session = opts.session.current;
    if (session === null)
      return Promise.reject(new TransportError('CLOSED', 'no session: the device has not attested yet'));
    return net().then((t) => t.request(deviceSubject(op, partition), session.seal(op, data), timeout));
  };

  function installedNow(s: UpdateAgentState): InstalledComponentMsg[] {
    return Object.values(s.components).map((c) => ({
      kind: c.active.kind,
      name: c.active.name,
      version: c.active.version,
      securityVersion: c.active.securityVersion,
    }));
  }

  function sendReport(
    s: UpdateAgentShellState,
    reportId: string,
    ctx: ActorContext<UpdateAgentShellMessage>,
  ): void {
    const pending = s.reports.get(reportId);
    if (pending === undefined) return;
    pending.attempts++;
    request('update-report', encodeUpdateReport(pending.report)).then(
      (bytes) => {
        const decoded = decodeUpdateReportReply(bytes);
        // Stored only on an acknowledgement. A refusal that will not change on repeat (unknown
        // deployment) ends the report unstored; a busy service or a session refusal (the device
        // re-attested meanwhile, or must) is repeated, sealed with the current session.
        const acked = decoded.ok && decoded.value.ok;
        const refused =
          decoded.ok && !decoded.value.ok && !RETRYABLE_REPORT_CODES.has(decoded.value.error.code);
        ctx.self.tell({ type: 'agent.report-result', reportId, acked, refused });
      },
      () => ctx.self.tell({ type: 'agent.report-result', reportId, acked: false, refused: false }),
    );
  }

  function toLogicOffer(o: UpdateOfferMsg): UpdateOffer {
    return {
      offerId: o.deploymentId,
      kind: o.kind,
      name: o.name,
      version: o.version,
      securityVersion: o.securityVersion,
      length: o.length,
      chunkSize: Math.max(1, Math.min(o.chunkSize, b.chunkBytes)),
    };
  }

  function run(
    s: UpdateAgentShellState,
    e: UpdateAgentEffect,
    ctx: ActorContext<UpdateAgentShellMessage>,
  ): void {
    switch (e.kind) {
      case 'request-offers':
        request(
          'update-check',
          encodeUpdateCheckRequest({
            deviceId: opts.deviceId,
            trustedRootVersion: s.trustedRootVersion,
            installed: installedNow(s.logic),
            deviceTimeMs: ctx.clock.now(),
          }),
        ).then(
          (bytes) => {
            const decoded = decodeUpdateCheckReply(bytes);
            ctx.self.tell({
              type: 'agent.check-result',
              outcome: decoded.ok ? decoded.value : { ok: false, error: decoded.error },
            });
          },
          (err: unknown) => ctx.self.tell({ type: 'agent.check-result', outcome: failure(err) }),
        );
        return;
      case 'fetch-chunk': {
        const offer = s.offers.get(e.offerId);
        if (offer === undefined) {
          ctx.self.tell({
            type: 'update.download-interrupted',
            offerId: e.offerId,
            reason: 'offer forgotten',
          });
          return;
        }
        if (e.index === 0 || s.download?.offerId !== e.offerId) {
          s.download = { offerId: e.offerId, received: 0, hash: createHash('sha256') };
        }
        const offset = e.offset;
        request(
          'update-chunk',
          encodeChunkRequest({
            deviceId: opts.deviceId,
            deploymentId: offer.deploymentId,
            offset,
            length: e.length,
          }),
        ).then(
          (bytes) => {
            const decoded = decodeChunkReply(bytes);
            const outcome = decoded.ok ? decoded.value : { ok: false as const, error: decoded.error };
            const msg: UpdateAgentShellMessage = {
              type: 'agent.chunk-result',
              offerId: e.offerId,
              offset,
              outcome,
            };
            if (opts.fault === 'slowLink' && outcome.ok) {
              // The bytes trickle in at the slow link's speed (simulated time).
              ctx.schedule(Math.ceil((outcome.value.data.length * 1000) / b.slowLinkBytesPerSecond), msg);
            } else ctx.self.tell(msg);
          },
          (err: unknown) =>
            ctx.self.tell({ type: 'agent.chunk-result', offerId: e.offerId, offset, outcome: failure(err) }),
        );
        return;
      }
      case 'verify': {
        const d = s.download;
        const offer = s.offers.get(e.offer.offerId);
        const metadata = s.metadata;
        if (d === null || d.offerId !== e.offer.offerId || offer === undefined || metadata === null) {
          ctx.self.tell({
            type: 'update.verified',
            offerId: e.offer.offerId,
            ok: false,
            code: 'TUF_NOT_READY',
          });
          return;
        }
        const offerId = e.offer.offerId;
        opts.core.tell({
          type: 'core.verify-update',
          metadata: {
            roots: metadata.roots,
            timestamp: metadata.timestamp,
            snapshot: metadata.snapshot,
            targets: metadata.targets,
          },
          target: { name: offer.targetName, length: d.received, sha256: d.hash.copy().digest('hex') },
          securityVersion: offer.kind === 'os' ? s.logic.antiRollbackVersion : 0,
          nowMs: ctx.clock.now(),
          reply: (verdict) => ctx.self.tell({ type: 'agent.verdict', offerId, verdict }),
        });
        return;
      }
      case 'install':
        ctx.schedule(b.installMs, {
          type: 'update.installed',
          offerId: e.offer.offerId,
          ok: opts.fault !== 'installFails',
        });
        return;
      case 'reboot': {
        const ok = opts.fault !== 'bootLoop';
        if (e.offer.kind !== 'os') {
          ctx.schedule(b.appRestartMs, { type: 'update.booted', offerId: e.offer.offerId, ok });
          return;
        }
        // The device reboots into the new slot. A boot-looping build never comes up: the
        // bootloader falls back to the old slot, which is what the device then runs.
        const { offerId, kind, name, version, securityVersion } = e.offer;
        const image: InstalledImage = { kind, name, version, securityVersion };
        if (ok)
          flash(
            s,
            activeImages(s.logic).map((i) => (i.kind === 'os' ? image : i)),
          );
        opts.device()?.tell({ type: 'device.power-off' });
        ctx.schedule(b.osRebootMs, { type: 'agent.rebooted', offerId, ok });
        return;
      }
      case 'health-check': {
        if (e.offer.kind === 'os') {
          // Healthy once the device attests with the new OS (see `agent.device-attested`).
          s.awaitingAttestation = e.offer.offerId;
          ctx.schedule(b.osHealthTimeoutMs, { type: 'agent.health-timeout', offerId: e.offer.offerId });
          return;
        }
        ctx.schedule(b.healthCheckMs, {
          type: 'update.health',
          offerId: e.offer.offerId,
          ok: healthy(s, e.offer.offerId),
        });
        return;
      }
      case 'report': {
        // Offer IDs are deployment IDs (one offer per deployment and device).
        const deploymentId = parseDeploymentId(e.offerId);
        if (deploymentId === null) return;
        const report: UpdateReportMsg = {
          deviceId: opts.deviceId,
          deploymentId,
          reportId: e.reportId,
          outcome: e.outcome,
          code: e.code ?? '',
          deviceTimeMs: ctx.clock.now(),
        };
        if (s.reports.has(e.reportId)) return;
        s.reports.set(e.reportId, { report, attempts: 0 });
        const offer = s.offers.get(e.offerId);
        if (
          (e.outcome === 'failed' || e.outcome === 'rolled-back') &&
          e.code !== UPDATE_CODES.ROLLBACK_ORDERED &&
          offer !== undefined
        )
          opts.installFailed?.({
            kind: offer.kind,
            name: offer.name,
            version: offer.version,
            outcome: e.outcome,
            code: report.code,
          });
        sendReport(s, e.reportId, ctx);
        return;
      }
      case 'schedule':
        ctx.schedule(e.delayMs, e.msg);
        return;
      default:
        e satisfies never;
    }
  }

  function step(
    s: UpdateAgentShellState,
    msg: UpdateAgentMessage,
    ctx: ActorContext<UpdateAgentShellMessage>,
  ): UpdateAgentShellState {
    const [logic, effects] = updateTransition(s.logic, msg, ctx.clock.now(), b);
    s.logic = logic;
    for (const e of effects) run(s, e, ctx);
    syncFirmware(s, ctx);
    return s;
  }

  /** Whether the image of `offerId` works on this device (its defect does not hit it). */
  function healthy(s: UpdateAgentShellState, offerId: string): boolean {
    const offer = s.offers.get(offerId);
    return offer === undefined || !opts.defective(offer);
  }

  return {
    name: opts.name,
    init: () => ({
      logic: initialUpdateAgentState(opts.installed),
      metadata: null,
      offers: new Map(),
      download: null,
      reports: new Map(),
      trustedRootVersion: 1,
      checkedSinceBoot: false,
      checkFailures: 0,
      powerLost: new Set(),
      flashed: opts.installed,
      awaitingAttestation: null,
      deferAsked: new Set(),
    }),
    receive(s, msg, ctx) {
      switch (msg.type) {
        case 'agent.device-booted':
          s.checkedSinceBoot = false;
          return s;
        case 'agent.device-attested': {
          const trial = s.awaitingAttestation;
          if (trial !== null) {
            // The new OS booted and the service accepted its measurements: now the app checks.
            s.awaitingAttestation = null;
            ctx.schedule(b.healthCheckMs, { type: 'update.health', offerId: trial, ok: healthy(s, trial) });
          }
          if (s.checkedSinceBoot) return s;
          s.checkedSinceBoot = true;
          return step(s, { type: 'update.check-due' }, ctx);
        }
        case 'agent.rebooted':
          opts.device()?.tell({ type: 'device.power-on' });
          return step(s, { type: 'update.booted', offerId: msg.offerId, ok: msg.ok }, ctx);
        case 'agent.health-timeout':
          if (s.awaitingAttestation !== msg.offerId) return s;
          s.awaitingAttestation = null;
          return step(s, { type: 'update.health', offerId: msg.offerId, ok: false }, ctx);
        case 'agent.check-result': {
          const o = msg.outcome;
          opts.observe?.({
            kind: 'check',
            ok: o.ok,
            offers: o.ok ? o.value.offers.length : 0,
            ...(o.ok ? {} : { code: o.error.code }),
          });
          if (!o.ok) {
            // Back to idle now, and check again sooner than the regular interval.
            s.checkFailures++;
            const retryInMs = backoffDelay(s.checkFailures, b.retry, () => ctx.rng.next());
            return step(s, { type: 'update.check-failed', retryInMs }, ctx);
          }
          s.checkFailures = 0;
          // Copies: decoded bytes are views of the NATS read buffer (tens of KiB, shared with
          // image chunks), and every agent keeps its metadata until the next check.
          const md = o.value.metadata;
          s.metadata = {
            roots: md.roots.map((r) => Uint8Array.from(r)),
            timestamp: Uint8Array.from(md.timestamp),
            snapshot: Uint8Array.from(md.snapshot),
            targets: Uint8Array.from(md.targets),
          };
          for (const offer of o.value.offers) s.offers.set(offer.deploymentId, offer);
          let next = s;
          const os = o.value.offers.find((x) => x.kind === 'os');
          const deferMs = opts.deferOsMs ?? 0;
          const running = s.logic.components['os']?.active.version;
          if (
            os !== undefined &&
            os.version !== running &&
            deferMs > 0 &&
            !s.deferAsked.has(os.deploymentId)
          ) {
            // The application learns of the pending OS update and asks to postpone it.
            s.deferAsked.add(os.deploymentId);
            const now = ctx.clock.now();
            next = step(next, { type: 'update.defer-requested', untilMs: now + deferMs }, ctx);
            const until = next.logic.deferredUntilMs;
            if (until !== null)
              opts.observe?.({ kind: 'os-deferred', offerId: os.deploymentId, forMs: until - now });
          }
          for (const id of o.value.rollbacks)
            next = step(next, { type: 'update.rollback-ordered', offerId: id }, ctx);
          return step(next, { type: 'update.offers', offers: o.value.offers.map(toLogicOffer) }, ctx);
        }
        case 'agent.chunk-result': {
          const d = s.download;
          const o = msg.outcome;
          if (!o.ok) {
            return step(
              s,
              { type: 'update.download-interrupted', offerId: msg.offerId, reason: o.error.code },
              ctx,
            );
          }
          // Only the chunk the download is waiting for counts: late duplicates, and replies that
          // land while the download is interrupted, are dropped (it is asked for again).
          const c = s.logic.current;
          if (
            d === null ||
            c === null ||
            s.logic.phase !== 'downloading' ||
            d.offerId !== msg.offerId ||
            c.offer.offerId !== msg.offerId ||
            c.nextChunk * c.offer.chunkSize !== msg.offset ||
            msg.offset !== d.received ||
            o.value.offset !== msg.offset
          )
            return s;
          d.hash.update(o.value.data);
          d.received += o.value.data.length;
          opts.observe?.({ kind: 'chunk', bytes: o.value.data.length });
          const next = step(
            s,
            {
              type: 'update.chunk-received',
              offerId: msg.offerId,
              index: c.nextChunk,
              bytes: o.value.data.length,
            },
            ctx,
          );
          const offer = s.offers.get(msg.offerId);
          if (
            opts.fault === 'powerLossMidDownload' &&
            offer !== undefined &&
            !s.powerLost.has(msg.offerId) &&
            s.logic.phase === 'downloading' &&
            d.received * 2 >= offer.length
          ) {
            // Power fails half-way: the device goes dark, the download resumes after the reboot
            // from the last chunk written to flash.
            s.powerLost.add(msg.offerId);
            opts.device()?.tell({ type: 'device.power-off' });
            ctx.schedule(b.resumeAfterMs / 2, { type: 'agent.power-restored' });
            return step(
              next,
              { type: 'update.download-interrupted', offerId: msg.offerId, reason: 'power-loss' },
              ctx,
            );
          }
          return next;
        }
        case 'agent.power-restored':
          opts.device()?.tell({ type: 'device.power-on' });
          return s;
        case 'agent.verdict': {
          if (msg.verdict.ok) s.trustedRootVersion = msg.verdict.rootVersion;
          return step(
            s,
            msg.verdict.ok
              ? { type: 'update.verified', offerId: msg.offerId, ok: true }
              : { type: 'update.verified', offerId: msg.offerId, ok: false, code: msg.verdict.code },
            ctx,
          );
        }
        case 'agent.report-result': {
          const pending = s.reports.get(msg.reportId);
          if (pending === undefined) return s;
          opts.observe?.({
            kind: 'report',
            deploymentId: pending.report.deploymentId,
            reportId: msg.reportId,
            outcome: pending.report.outcome,
            code: pending.report.code,
            acked: msg.acked,
          });
          if (msg.acked || msg.refused) s.reports.delete(msg.reportId);
          else
            ctx.schedule(
              backoffDelay(pending.attempts, b.retry, () => ctx.rng.next()),
              {
                type: 'agent.report-due',
                reportId: msg.reportId,
              },
            );
          return s;
        }
        case 'agent.report-due':
          sendReport(s, msg.reportId, ctx);
          return s;
        default:
          return step(s, msg, ctx);
      }
    },
  };
}
