import type { ActorRef, InboundMessage, Subscription, Transport } from '../../actors/runtime/index.js';
import {
  REJECT_CODES,
  decodeAttestRequest,
  decodeChallengeRequest,
  decodeHeartbeat,
  decodeChunkRequest,
  decodeUpdateCheckRequest,
  decodeUpdateReport,
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
): DeviceGateway {
  const { metrics } = ctx;
  const counters = {
    challenge: metrics.challenges,
    attest: metrics.attestations,
    heartbeat: metrics.heartbeats,
    'update-check': metrics.updateChecks,
    'update-chunk': metrics.updateChunks,
    'update-report': metrics.updateReports,
  } as const satisfies Record<DeviceOp, unknown>;

  function refuse(
    op: DeviceOp,
    deviceId: string,
    r: Rejection,
    m: InboundMessage,
    encode: (r: Rejection) => Uint8Array,
  ): void {
    counters[op].inc({ result: 'rejected', reason: r.code });
    if (r.code !== REJECT_CODES.OVERLOADED) {
      const a = ctx.alerts.raise({
        tenantId: null,
        type: r.code,
        deviceId,
        atMs: ctx.clock.now(),
        message: r.message,
        evidence: { step: op, subject: m.subject, bytes: String(m.data.length), shard: ctx.shardId },
      });
      metrics.alerts.inc({ type: a.type, severity: a.severity });
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

  const heartbeat = (m: InboundMessage): void => {
    const decoded = decodeHeartbeat(m.data);
    if (!decoded.ok) return refuse('heartbeat', '', decoded.error, m, () => new Uint8Array());
    const ref = route(m, decoded.value.deviceId);
    if (!('tell' in ref)) return refuse('heartbeat', decoded.value.deviceId, ref, m, () => new Uint8Array());
    ref.tell({ type: 'partition.heartbeat', heartbeat: decoded.value });
  };

  /**
   * Serves one update-protocol request: decode, check the subject fits the device, run `handle`,
   * answer. Rejections by the update service are counted and answered but not alerted (a device
   * asking for an image it was not offered is usually just late); undecodable input is.
   */
  function serveUpdate<Req extends { deviceId: DeviceId }, Res>(
    op: 'update-check' | 'update-chunk' | 'update-report',
    decode: (b: Uint8Array) => { ok: true; value: Req } | { ok: false; error: Rejection },
    handle: (req: Req) => Promise<Reply<Res>>,
    encode: (r: Reply<Res>) => Uint8Array,
  ): (m: InboundMessage) => void {
    const encodeError = (error: Rejection) => encode({ ok: false, error });
    return (m) => {
      const t0 = ctx.wallNow();
      const decoded = decode(m.data);
      if (!decoded.ok) return refuse(op, '', decoded.error, m, encodeError);
      const req = decoded.value;
      const ref = route(m, req.deviceId);
      if (!('tell' in ref)) return refuse(op, req.deviceId, ref, m, encodeError);
      handle(req).then(
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

  // Update reports feed the deployment's rollout engine, which ignores (and counts) reports from
  // devices outside its population; binding reports to the attested identity is issue 5's.
  const handlers: Record<DeviceOp, (m: InboundMessage) => void> = {
    challenge,
    attest,
    heartbeat,
    'update-check': serveUpdate(
      'update-check',
      decodeUpdateCheckRequest,
      (r) => updates.check(r),
      encodeUpdateCheckReply,
    ),
    'update-chunk': serveUpdate(
      'update-chunk',
      decodeChunkRequest,
      (r) => updates.chunk(r),
      encodeChunkReply,
    ),
    'update-report': serveUpdate(
      'update-report',
      decodeUpdateReport,
      (r) => updates.report(r),
      encodeUpdateReportReply,
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
