import type { ActorRef, InboundMessage, Subscription, Transport } from '../../actors/runtime/index.js';
import {
  REJECT_CODES,
  decodeAttestRequest,
  decodeChallengeRequest,
  decodeHeartbeat,
  decodeChunkRequest,
  decodeUpdateCheckRequest,
  decodeUpdateReport,
  decodeAuthenticatedRequest,
  decodeErrorReportUpload,
  encodeErrorReportReply,
  DEVICE_LIMITS,
  DEVICE_OPS,
  deviceSubject,
  encodeAttestReply,
  encodeChallengeReply,
  encodeChunkReply,
  encodeUpdateCheckReply,
  encodeUpdateReportReply,
  partitionOf,
  partitionOfSubject,
} from '../../proto/codec/index.js';
import type { DeviceId, DeviceOp, Rejection, Reply } from '../../proto/codec/index.js';
import type { ShardContext } from './context.js';
import type { PartitionMessage } from './partition-actor.js';
import type { UpdateService } from './updates.js';
import type { ErrorReportService } from './error-reports.js';
import { DeviceRateLimiter } from './rate-limit.js';

/** Queue group shared by all shards, so each device request reaches exactly one of them. */
export const SHARD_QUEUE = 'sphere-shards';

/** The device-facing subscriptions of a shard, opened per partition it owns. */
export interface DeviceGateway {
  /** Starts serving `partition`'s subjects (idempotent). */
  open(partition: number): void;
  /** Stops serving `partition`'s subjects (idempotent); requests already received still finish. */
  close(partition: number): void;
  closeAll(): void;
}

/**
 * The device-facing NATS entry points. Each decodes defensively (size limit, strict protobuf,
 * field validation), routes to the partition actor that owns the device, and answers every
 * failure with a typed rejection; undecodable input is counted and alerted (to no tenant, as
 * the sender cannot be identified) and never stops the subscription. A shard subscribes to the
 * subjects of the partitions it holds a lease on, and only those.
 */
export function serveDevices(
  transport: Transport,
  ctx: ShardContext,
  partitionRef: (partition: number) => ActorRef<PartitionMessage> | undefined,
  updates: UpdateService,
  errorReports: ErrorReportService,
): DeviceGateway {
  const { metrics } = ctx;
  const limiter = new DeviceRateLimiter(ctx.policy.deviceRateLimit);
  const counters = {
    challenge: metrics.challenges,
    attest: metrics.attestations,
    heartbeat: metrics.heartbeats,
    'update-check': metrics.updateChecks,
    'update-chunk': metrics.updateChunks,
    'update-report': metrics.updateReports,
    'error-report': metrics.errorReportUploads,
  } as const satisfies Record<DeviceOp, unknown>;

  function refuse(
    op: DeviceOp,
    deviceId: string,
    r: Rejection,
    m: InboundMessage,
    encode: (r: Rejection) => Uint8Array,
    /**
     * The device that provably sent it (its session's MAC verified): the alert goes to that
     * device's tenant. Without one the sender is unauthenticated, and the alert goes to no tenant
     * (the service admin's view): garbage is never pinned on the tenant whose device ID it names.
     */
    sender?: DeviceId,
  ): void {
    counters[op].inc({ result: 'rejected', reason: r.code });
    if (r.code !== REJECT_CODES.OVERLOADED) {
      const tenantId = sender === undefined ? null : (ctx.deviceTenants.get(sender) ?? null);
      // An impersonation names the device it claimed to be only to the same tenant (a tenant is
      // never told about another's devices).
      const claimed =
        sender !== undefined &&
        sender !== deviceId &&
        ctx.deviceTenants.get(deviceId as DeviceId) === tenantId
          ? { claimedDevice: deviceId }
          : undefined;
      const evidence = {
        step: op,
        subject: m.subject,
        bytes: String(m.data.length),
        shard: ctx.shardId,
        ...(claimed ?? {}),
      };
      const atMs = ctx.clock.now();
      const about = sender ?? deviceId;
      ctx.alerts.refusal({ tenantId, type: r.code, deviceId: about, atMs, message: r.message, evidence });
      ctx.alerts.observe({
        kind: 'rejection',
        atMs,
        deviceId: about,
        tenantId,
        op,
        code: r.code,
        detail: evidence,
      });
    }
    if (m.reply !== undefined) m.respond(encode(r));
  }

  /** Finds the owning partition actor, or explains why the subject and device do not fit. */
  function route(m: InboundMessage, deviceId: DeviceId): ActorRef<PartitionMessage> | Rejection {
    const partition = partitionOf(deviceId, ctx.partitions);
    if (partitionOfSubject(m.subject) !== partition) {
      return {
        code: REJECT_CODES.MALFORMED_INPUT,
        message: `device belongs to partition ${partition} but was sent on ${m.subject}; use sphere.dev.v1.<op>.${partition}`,
      };
    }
    const ref = partitionRef(partition);
    return (
      ref ?? { code: REJECT_CODES.OVERLOADED, message: `partition ${partition} is not served here; retry` }
    );
  }

  const overloaded: Rejection = {
    code: REJECT_CODES.OVERLOADED,
    message: 'shard is at capacity (partition mailbox full); back off and retry',
  };
  const challengeError = (r: Rejection) => encodeChallengeReply({ ok: false, error: r });
  const attestError = (r: Rejection) => encodeAttestReply({ ok: false, error: r });

  const challenge = (m: InboundMessage): void => {
    const t0 = ctx.wallNow();
    const decoded = decodeChallengeRequest(m.data);
    if (!decoded.ok) return refuse('challenge', '', decoded.error, m, challengeError);
    const deviceId = decoded.value.deviceId;
    const ref = route(m, deviceId);
    if (!('tell' in ref)) return refuse('challenge', deviceId, ref, m, challengeError);
    const accepted = ref.tell({
      type: 'partition.challenge',
      deviceId,
      respond: (reply) => {
        m.respond(encodeChallengeReply(reply));
        metrics.requestLatency.observe({ transport: 'nats', op: 'challenge' }, (ctx.wallNow() - t0) / 1000);
      },
    });
    if (!accepted) refuse('challenge', deviceId, overloaded, m, challengeError);
  };

  const attest = (m: InboundMessage): void => {
    const t0 = ctx.wallNow();
    const decoded = decodeAttestRequest(m.data);
    if (!decoded.ok) return refuse('attest', '', decoded.error, m, attestError);
    const { request, evidence } = decoded.value;
    const ref = route(m, evidence.deviceId);
    if (!('tell' in ref)) return refuse('attest', evidence.deviceId, ref, m, attestError);
    const accepted = ref.tell({
      type: 'partition.attest',
      request,
      evidence,
      receivedAtWall: t0,
      respond: (reply) => {
        m.respond(encodeAttestReply(reply));
        metrics.requestLatency.observe({ transport: 'nats', op: 'attest' }, (ctx.wallNow() - t0) / 1000);
      },
    });
    if (!accepted) refuse('attest', evidence.deviceId, overloaded, m, attestError);
  };

  type AuthenticatedOp = Exclude<DeviceOp, 'challenge' | 'attest'>;

  /**
   * Opens an authenticated request: the session framing, then the body, then the subject against
   * the device, then the session (MAC, expiry, counter), then the device's rate. Refuses (counted,
   * alerted, answered) and returns null at the first failure.
   */
  function openRequest<Req extends { deviceId: DeviceId }>(
    op: AuthenticatedOp,
    m: InboundMessage,
    maxBody: number,
    decode: (b: Uint8Array) => { ok: true; value: Req } | { ok: false; error: Rejection },
    encodeError: (r: Rejection) => Uint8Array,
  ): { req: Req; ref: ActorRef<PartitionMessage> } | null {
    const auth = decodeAuthenticatedRequest(m.data, maxBody);
    if (!auth.ok) {
      refuse(op, '', auth.error, m, encodeError);
      return null;
    }
    const decoded = decode(auth.value.body);
    if (!decoded.ok) {
      refuse(op, '', decoded.error, m, encodeError);
      return null;
    }
    const req = decoded.value;
    const ref = route(m, req.deviceId);
    if (!('tell' in ref)) {
      refuse(op, req.deviceId, ref, m, encodeError);
      return null;
    }
    const now = ctx.clock.now();
    const verdict = ctx.sessions.verify(req.deviceId, op, auth.value, now);
    if (!verdict.ok) {
      // Past the MAC (every refusal but BAD_MAC) the sender is proven: its session's owner.
      const sender =
        verdict.error.code === REJECT_CODES.BAD_MAC ? undefined : (verdict.actor ?? req.deviceId);
      refuse(op, req.deviceId, verdict.error, m, encodeError, sender);
      return null;
    }
    // Only requests whose MAC verified count towards flooding: anyone can name a device.
    ctx.alerts.observe({
      kind: 'request',
      atMs: now,
      deviceId: req.deviceId,
      tenantId: ctx.deviceTenants.get(req.deviceId) ?? null,
      op,
    });
    const wait = limiter.take(req.deviceId, now);
    if (wait > 0) {
      refuse(
        op,
        req.deviceId,
        {
          code: REJECT_CODES.RATE_LIMITED,
          message: `device sent more than ${ctx.policy.deviceRateLimit.burst} requests in a burst (${ctx.policy.deviceRateLimit.perHour} per simulated hour sustained); retry after retry_after_ms`,
          retryAfterMs: Math.ceil(now + wait),
          serviceTimeMs: Math.floor(now),
        },
        m,
        encodeError,
        req.deviceId,
      );
      return null;
    }
    return { req, ref };
  }

  const heartbeat = (m: InboundMessage): void => {
    const opened = openRequest(
      'heartbeat',
      m,
      DEVICE_LIMITS.heartbeat,
      decodeHeartbeat,
      () => new Uint8Array(),
    );
    if (opened === null) return;
    opened.ref.tell({ type: 'partition.heartbeat', heartbeat: opened.req });
  };

  /**
   * Serves one authenticated request/reply: open it (above), run `handle`, answer. Refusals by
   * the handler are counted and answered but not alerted (a device asking for an image it was not
   * offered is usually just late); refusals while opening are.
   */
  function serveAuthenticated<Req extends { deviceId: DeviceId }, Res>(
    op: Exclude<AuthenticatedOp, 'heartbeat'>,
    maxBody: number,
    decode: (b: Uint8Array) => { ok: true; value: Req } | { ok: false; error: Rejection },
    handle: (req: Req) => Promise<Reply<Res>>,
    encode: (r: Reply<Res>) => Uint8Array,
  ): (m: InboundMessage) => void {
    const encodeError = (error: Rejection) => encode({ ok: false, error });
    return (m) => {
      const t0 = ctx.wallNow();
      const opened = openRequest(op, m, maxBody, decode, encodeError);
      if (opened === null) return;
      handle(opened.req).then(
        (reply) => {
          if (!reply.ok) counters[op].inc({ result: 'rejected', reason: reply.error.code });
          m.respond(encode(reply));
          metrics.requestLatency.observe({ transport: 'nats', op }, (ctx.wallNow() - t0) / 1000);
        },
        (e: unknown) => {
          const message = e instanceof Error ? e.message : String(e);
          counters[op].inc({ result: 'rejected', reason: REJECT_CODES.INTERNAL });
          m.respond(encodeError({ code: REJECT_CODES.INTERNAL, message: `${op} failed: ${message}; retry` }));
        },
      );
    };
  }

  // Every request after attestation is bound to the attested identity by its session: a client
  // that can publish on any subject still cannot act as another device.
  const handlers: Record<DeviceOp, (m: InboundMessage) => void> = {
    challenge,
    attest,
    heartbeat,
    'update-check': serveAuthenticated(
      'update-check',
      DEVICE_LIMITS.updateCheckRequest,
      decodeUpdateCheckRequest,
      (r) => updates.check(r),
      encodeUpdateCheckReply,
    ),
    'update-chunk': serveAuthenticated(
      'update-chunk',
      DEVICE_LIMITS.chunkRequest,
      decodeChunkRequest,
      (r) => updates.chunk(r),
      encodeChunkReply,
    ),
    'update-report': serveAuthenticated(
      'update-report',
      DEVICE_LIMITS.updateReport,
      decodeUpdateReport,
      (r) => updates.report(r),
      encodeUpdateReportReply,
    ),
    'error-report': serveAuthenticated(
      'error-report',
      DEVICE_LIMITS.errorReport,
      decodeErrorReportUpload,
      (r) => errorReports.store(r),
      encodeErrorReportReply,
    ),
  };
  const open = new Map<number, Subscription[]>();
  return {
    open(partition) {
      if (open.has(partition)) return;
      open.set(
        partition,
        DEVICE_OPS.map((op) =>
          transport.serve(deviceSubject(op, partition), handlers[op], { queue: SHARD_QUEUE }),
        ),
      );
    },
    close(partition) {
      for (const sub of open.get(partition) ?? []) sub.unsubscribe();
      open.delete(partition);
    },
    closeAll() {
      for (const p of [...open.keys()]) this.close(p);
    },
  };
}
