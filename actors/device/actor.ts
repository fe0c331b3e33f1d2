import type { ActorContext, ActorDefinition, ActorRef, Transport } from '../runtime/index.js';
import { TransportError } from '../runtime/index.js';
import {
  decodeAttestReply,
  decodeChallengeReply,
  decodeErrorReportReply,
  deviceSubject,
  encodeAttestRequest,
  encodeChallengeRequest,
  encodeErrorReportUpload,
  encodeHeartbeat,
  partitionOf,
} from '../../proto/codec/index.js';
import { ErrorRecorder } from '../../services/error-reports/index.js';
import type { DecodeResult, Reply, SessionMsg } from '../../proto/codec/index.js';
import type { CoreMessage } from '../security-core/index.js';
import type { SessionOpener } from '../security-core/session.js';
import type { SessionSlot } from './session.js';
import type { DeviceMessage, ErrorUploadOutcome, StepOutcome } from './messages.js';
import { DEFAULT_DEVICE_ERROR_BEHAVIOUR } from './error-reporter.js';
import { initialDeviceState, transition } from './logic.js';
import type { DeviceBehaviour, DeviceEffect, DeviceEvent, DeviceProfile, DeviceState } from './logic.js';

/** How a device reaches the network: its own connection, or a share of a pooled one. */
export interface DeviceLink {
  connect(): Promise<Transport>;
}

export interface DeviceShellOptions {
  readonly name: string;
  readonly profile: DeviceProfile;
  readonly behaviour: DeviceBehaviour;
  readonly core: ActorRef<CoreMessage>;
  readonly link: DeviceLink;
  /** Where the session of the last attestation goes (shared with the device's update agent). */
  readonly session: SessionSlot;
  /** The security core's unwrapping of a session key (see actors/security-core/session.ts). */
  readonly openSession: SessionOpener;
  readonly partitions: number;
  /** Wall-clock request timeout (network time, not simulated). */
  readonly requestTimeoutMs: number;
  readonly observe: (profile: DeviceProfile, event: DeviceEvent) => void;
  /** Wall clock for latency measurement (performance.now in production, injected in tests). */
  readonly wallNow: () => number;
}

function toOutcome<T>(decoded: DecodeResult<Reply<T>>): StepOutcome<T> {
  if (!decoded.ok) {
    return { ok: false, failure: { kind: 'transport', code: 'BAD_REPLY', message: decoded.error.message } };
  }
  const reply = decoded.value;
  return reply.ok ? reply : { ok: false, failure: { kind: 'rejected', rejection: reply.error } };
}

function transportFailure<T>(e: unknown): StepOutcome<T> {
  const code = e instanceof TransportError ? e.code : 'OTHER';
  const message = e instanceof Error ? e.message : String(e);
  return { ok: false, failure: { kind: 'transport', code, message } };
}

/**
 * The device actor's shell: runs `transition` and carries out its effects (talks to the security
 * core, the network and timers). Network replies come back as messages, so the actor never blocks.
 */
export function deviceDefinition(opts: DeviceShellOptions): ActorDefinition<DeviceState, DeviceMessage> {
  const { profile, behaviour, link, core, wallNow } = opts;
  const partition = partitionOf(profile.deviceId, opts.partitions);
  const timeout = { timeoutMs: opts.requestTimeoutMs };
  let transport: Transport | null = null;
  /** The nonce each attestation attempt signed (by epoch): it salts the session key's wrapping. */
  let signedNonce: { epoch: number; nonce: Uint8Array } | null = null;
  /**
   * The device's error log (created with its first event). It outlives power cycles, as flash
   * would; report IDs carry the time it was created, so they stay unique across runs.
   */
  let errorLog: ErrorRecorder | null = null;
  const uploadEveryMs = (behaviour.errors ?? DEFAULT_DEVICE_ERROR_BEHAVIOUR).uploadEveryMs;

  /** Sends the error log's next report (the same one until it is released); answers `attempt`. */
  function uploadErrors(attempt: number, deviceTimeMs: number, ctx: ActorContext<DeviceMessage>): void {
    const answer = (outcome: ErrorUploadOutcome): void => {
      ctx.self.tell({ type: 'device.errors-result', attempt, outcome });
    };
    // No report is cut before it can be sent: it takes every event up to the actual upload.
    const session = opts.session.current;
    const t = transport;
    if (session === null || t === null) return answer({ kind: 'no-session' });
    const report = errorLog?.next(deviceTimeMs) ?? null;
    if (report === null) return answer({ kind: 'nothing' });
    const sent = { kind: 'sent', reportId: report.reportId, events: report.events.length } as const;
    let data: Uint8Array;
    try {
      data = session.seal('error-report', encodeErrorReportUpload({ ...report, deviceTimeMs }));
    } catch (e) {
      return answer({ ...sent, reply: transportFailure(e) });
    }
    t.request(deviceSubject('error-report', partition), data, timeout).then(
      (bytes) => answer({ ...sent, reply: toOutcome(decodeErrorReportReply(bytes)) }),
      (e: unknown) => answer({ ...sent, reply: transportFailure(e) }),
    );
  }

  function run(effect: DeviceEffect, ctx: ActorContext<DeviceMessage>): void {
    switch (effect.kind) {
      case 'boot-core':
        core.tell({
          type: 'core.boot',
          images: effect.images,
          osVersion: effect.osVersion,
          securityVersion: effect.securityVersion,
          replyTo: ctx.self,
        });
        return;
      case 'connect':
        link.connect().then(
          (t) => {
            transport = t;
            ctx.self.tell({ type: 'device.connected' });
          },
          (e: unknown) =>
            ctx.self.tell({
              type: 'device.connect-failed',
              message: e instanceof Error ? e.message : String(e),
            }),
        );
        return;
      case 'request-challenge': {
        const sentAtWall = wallNow();
        const epoch = effect.epoch;
        const t = transport;
        if (t === null) {
          ctx.self.tell({
            type: 'device.challenge-result',
            epoch,
            outcome: transportFailure(new TransportError('CLOSED', 'not connected')),
            sentAtWall,
            receivedAtWall: sentAtWall,
          });
          return;
        }
        t.request(
          deviceSubject('challenge', partition),
          encodeChallengeRequest({ deviceId: profile.deviceId }),
          timeout,
        ).then(
          (bytes) =>
            ctx.self.tell({
              type: 'device.challenge-result',
              epoch,
              outcome: toOutcome(decodeChallengeReply(bytes)),
              sentAtWall,
              receivedAtWall: wallNow(),
            }),
          (e: unknown) =>
            ctx.self.tell({
              type: 'device.challenge-result',
              epoch,
              outcome: transportFailure(e),
              sentAtWall,
              receivedAtWall: wallNow(),
            }),
        );
        return;
      }
      case 'sign':
        signedNonce = { epoch: effect.epoch, nonce: effect.nonce };
        core.tell({
          type: 'core.attest',
          epoch: effect.epoch,
          nonce: effect.nonce,
          deviceTimeMs: effect.deviceTimeMs,
          replyTo: ctx.self,
        });
        return;
      case 'submit': {
        const sentAtWall = wallNow();
        const epoch = effect.epoch;
        const t = transport;
        if (t === null) {
          ctx.self.tell({
            type: 'device.attest-result',
            epoch,
            outcome: transportFailure(new TransportError('CLOSED', 'not connected')),
            sentAtWall,
            receivedAtWall: sentAtWall,
          });
          return;
        }
        t.request(deviceSubject('attest', partition), encodeAttestRequest(effect.request), timeout).then(
          (bytes) =>
            ctx.self.tell({
              type: 'device.attest-result',
              epoch,
              outcome: toOutcome(decodeAttestReply(bytes)),
              sentAtWall,
              receivedAtWall: wallNow(),
            }),
          (e: unknown) =>
            ctx.self.tell({
              type: 'device.attest-result',
              epoch,
              outcome: transportFailure(e),
              sentAtWall,
              receivedAtWall: wallNow(),
            }),
        );
        return;
      }
      case 'heartbeat':
        try {
          const session = opts.session.current;
          if (session === null) return;
          transport?.publish(
            deviceSubject('heartbeat', partition),
            session.seal(
              'heartbeat',
              encodeHeartbeat({
                deviceId: profile.deviceId,
                bootId: effect.bootId,
                deviceTimeMs: effect.deviceTimeMs,
              }),
            ),
          );
        } catch (e) {
          opts.observe(profile, {
            kind: 'transport-error',
            step: 'connect',
            code: 'PUBLISH_FAILED',
            message: String(e),
          });
        }
        return;
      case 'record-error':
        errorLog ??= new ErrorRecorder({
          deviceId: profile.deviceId,
          idPrefix: `er-${Math.max(0, Math.floor(ctx.clock.now())).toString(36)}-`,
          // Half the upload period: every periodic upload seals what came before it, even when
          // the previous one started late (it waited for a session).
          periodMs: Math.max(1, Math.floor(uploadEveryMs / 2)),
        });
        errorLog.record(effect.event);
        return;
      case 'upload-errors':
        uploadErrors(effect.attempt, effect.deviceTimeMs, ctx);
        return;
      case 'release-error-report':
        errorLog?.acknowledged(effect.reportId);
        return;
      case 'schedule':
        ctx.schedule(effect.delayMs, effect.msg);
        return;
      case 'observe':
        opts.observe(profile, effect.event);
        return;
      default:
        effect satisfies never;
    }
  }

  /** Opens the session an accepted attestation carries, before anything learns of the attestation. */
  function openSession(epoch: number, session: SessionMsg): void {
    if (signedNonce?.epoch !== epoch) return;
    try {
      opts.session.current = opts.openSession(session, signedNonce.nonce);
    } catch (e) {
      opts.session.current = null;
      opts.observe(profile, {
        kind: 'transport-error',
        step: 'attest',
        code: 'BAD_SESSION',
        message: `the attestation reply's session could not be opened: ${String(e)}`,
      });
    }
  }

  return {
    name: opts.name,
    init: () => initialDeviceState(profile),
    receive(state, msg, ctx) {
      if (msg.type === 'device.attest-result' && msg.outcome.ok)
        openSession(msg.epoch, msg.outcome.value.session);
      const [next, effects] = transition(state, msg, {
        now: ctx.clock.now(),
        wallNow: wallNow(),
        random: () => ctx.rng.next(),
        behaviour,
        profile,
      });
      for (const effect of effects) run(effect, ctx);
      return next;
    },
  };
}
