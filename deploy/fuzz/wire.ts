/**
 * Fuzzing over the wire, against a running shard ({@link FuzzTarget}): device requests on every
 * `sphere.dev.v1.<op>.<partition>` subject through a real nats-server, operator requests as raw
 * bytes through a real gRPC socket, and records written straight into the shard's JetStream
 * journal. Each returns the property's pieces: an arbitrary, a check per input, and `settle`
 * (run once after all inputs) that checks the shard's counters and that it still serves.
 */
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { TransportError } from '../../actors/runtime/index.js';
import {
  DEVICE_LIMITS,
  REJECT_CODES,
  deviceSubject,
  encodeChallengeRequest,
  partitionOf,
} from '../../proto/codec/index.js';
import type { DeviceId, Rejection } from '../../proto/codec/index.js';
import { OPERATOR_ERRORS, grpcStatusOf } from '../../services/operator-api/index.js';
import type { OperatorError, OperatorErrorCode } from '../../services/operator-api/index.js';
import { SESSION_FRAMING, deviceIdOf, isFramed, validEncodings } from './device-codec.js';
import type { AnyDecodeResult, DeviceDecoder, DeviceOpMessages } from './device-codec.js';
import { applyTreeMutations, oddValue, treeMutation } from './json.js';
import { canonicalRequest } from './operator-api.js';
import type { OperatorMethod } from './operator-api.js';
import { fail } from './property.js';
import type { WireFuzz } from './property.js';
import { applyMutations, dictionaryBytes, fuzzBytes, shapedMessage, wireMutation } from './protobuf.js';
import type { FuzzBytes, WireMutation } from './protobuf.js';
import {
  HANG_BOUND_MS,
  OP_COUNTERS,
  checkStillServes,
  genuineRequests,
  openSession,
  sampleSum,
} from './target.js';
import type { FuzzTarget } from './target.js';

const REJECT_SET = new Set<string>(Object.values(REJECT_CODES));
const OPERATOR_SET = new Set<string>(Object.values(OPERATOR_ERRORS));

/** A request that must be answered: the reply, or an error saying why there is none. */
async function answered(t: FuzzTarget, subject: string, bytes: Uint8Array): Promise<Uint8Array> {
  try {
    return await t.devices.request(subject, bytes, { timeoutMs: HANG_BOUND_MS });
  } catch (e) {
    if (e instanceof TransportError) {
      const why =
        e.code === 'TIMEOUT'
          ? `no reply within ${HANG_BOUND_MS} ms (a handler that never answers, or a dead shard)`
          : e.code === 'OTHER'
            ? `the handler failed without answering (${e.message})`
            : `${e.code}: ${e.message}`;
      fail(`${subject}: ${why}`);
    }
    throw e;
  }
}

/** Largest body sent over NATS: its default max_payload (1 MiB) less room for the frame. */
const NATS_MAX_BODY = 1_000_000;
/** Largest message sent (edits of a frame can grow it): a little under max_payload. */
const NATS_MAX_MESSAGE = 1_040_000;

/** A device ID in `partition` (its first 32 bits pick the partition). */
function deviceIdIn(partition: number): DeviceId {
  return (partition.toString(16).padStart(8, '0') + '0'.repeat(120)) as DeviceId;
}

/** How a device request goes on the wire. */
export type DeviceWireInput =
  /** As fuzzed: a whole message (for a framed op, the frame and all). */
  | { readonly frame: 'none'; readonly payload: FuzzBytes; readonly partition: 'own' | number }
  /** A fuzzed body sealed with the genuine device's session (valid MAC, next counter), then the frame edited. */
  | {
      readonly frame: 'session';
      readonly body: FuzzBytes;
      readonly edits: readonly WireMutation[];
      readonly partition: 'own' | number;
    }
  /** A fuzzed body in a frame with a made-up session. */
  | {
      readonly frame: 'forged';
      readonly body: FuzzBytes;
      readonly sessionId: Uint8Array;
      readonly counter: number;
      readonly mac: Uint8Array;
      readonly partition: 'own' | number;
    };

/**
 * Property for one device op: every request gets a reply that decodes (with the op's reply
 * decoder) to a valid answer or a typed rejection (a known code other than INTERNAL, a message);
 * bytes the codec refuses (the session frame, then the body) get exactly the codec's rejection;
 * fire-and-forget ops (no reply decoder) answer a refusal with an empty reply. Settle: the op's
 * counter grew by exactly the requests sent, each refusal under its code; the shard serves.
 */
export async function deviceOpFuzz(
  msgs: DeviceOpMessages,
  t: FuzzTarget,
): Promise<WireFuzz<DeviceWireInput>> {
  const { op } = msgs;
  if (msgs.request === undefined || msgs.reply === undefined)
    throw new Error(`device op ${op}: no request or reply decoder found (see deploy/fuzz/device-codec.ts)`);
  const request: DeviceDecoder = msgs.request;
  const reply: DeviceDecoder | null = msgs.reply;
  const framing = isFramed(op) ? SESSION_FRAMING : undefined;
  const bodyLimit = request.limit ?? DEVICE_LIMITS.reply;
  const genuine = (await genuineRequests(t))[op];
  // Valid messages about any device, and about the genuine one (for an op without requests of
  // its own in genuineRequests, these are the ones that get past the session).
  const random = validEncodings(request)?.map((v) => v.bytes);
  const aboutGenuine = validEncodings(request, t.seeds.device.deviceId)?.map((v) => v.bytes);
  const bases = [
    ...(genuine === undefined ? [] : [{ weight: 3, arbitrary: genuine }]),
    ...(aboutGenuine === undefined
      ? []
      : [{ weight: genuine === undefined ? 3 : 1, arbitrary: aboutGenuine }]),
    ...(random === undefined ? [] : [{ weight: 1, arbitrary: random }]),
  ];
  const dictionary = dictionaryBytes(t.seeds.dictionary);
  const partition = fc.oneof(
    { weight: 4, arbitrary: fc.constant('own' as const) },
    { weight: 1, arbitrary: fc.nat({ max: t.partitions - 1 }) },
  );
  const body = fuzzBytes({
    ...(request.shape === undefined ? {} : { shape: request.shape }),
    ...(bases.length === 0 ? {} : { valid: fc.oneof(...bases) }),
    padTo: bodyLimit + 1,
    maxBytes: NATS_MAX_BODY,
    dictionary,
  });
  const session = framing === undefined ? null : await openSession(t, t.seeds.device);
  const options: fc.WeightedArbitrary<DeviceWireInput>[] = [
    {
      weight: framing === undefined ? 1 : 2,
      arbitrary: fc.record({ frame: fc.constant('none' as const), payload: body, partition }),
    },
  ];
  if (framing !== undefined) {
    options.push({
      weight: 2,
      arbitrary: fc.record({
        frame: fc.constant('forged' as const),
        body,
        sessionId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
        counter: fc.oneof(fc.nat({ max: 1000 }), fc.nat({ max: Number.MAX_SAFE_INTEGER })),
        mac: fc.uint8Array({ minLength: 16, maxLength: 16 }),
        partition,
      }),
    });
    if (session !== null)
      options.push({
        weight: 6,
        arbitrary: fc.record({
          frame: fc.constant('session' as const),
          body,
          edits: fc.oneof(
            { weight: 4, arbitrary: fc.constant([]) },
            { weight: 1, arbitrary: fc.array(wireMutation(), { minLength: 1, maxLength: 2 }) },
          ),
          partition,
        }),
      });
  }
  const arbitrary = fc.oneof(...options);
  const counter = OP_COUNTERS[op];
  const before = await t.metricsText();
  let sent = 0;
  const refused = new Map<string, number>();
  const published = new Set<number>();
  const notes: string[] = [];

  /** The bytes to send, and what the codec makes of them (the frame first, then the body). */
  function build(input: DeviceWireInput): { bytes: Uint8Array; local: AnyDecodeResult } {
    let bytes: Uint8Array;
    if (input.frame === 'none') bytes = input.payload.bytes;
    else if (input.frame === 'forged')
      bytes = (framing ?? fail('no framing')).encode({
        body: input.body.bytes,
        sessionId: input.sessionId,
        counter: input.counter,
        mac: input.mac,
      });
    else bytes = applyMutations((session ?? fail('no session')).seal(op, input.body.bytes), input.edits);
    // What NATS would refuse to carry is cut to what it carries (still fuzzed bytes).
    if (bytes.length > NATS_MAX_MESSAGE) bytes = bytes.subarray(0, NATS_MAX_MESSAGE);
    if (framing === undefined) return { bytes, local: request.decode(bytes) };
    const frame = framing.decode(bytes, bodyLimit);
    if (!frame.ok) return { bytes, local: frame };
    return { bytes, local: request.decode((frame.value as { body: Uint8Array }).body) };
  }

  async function check(input: DeviceWireInput): Promise<void> {
    const { bytes, local } = build(input);
    const id = local.ok ? deviceIdOf(local.value) : undefined;
    const p =
      input.partition === 'own' ? (id === undefined ? 0 : partitionOf(id, t.partitions)) : input.partition;
    const subject = deviceSubject(op, p);
    sent++;
    if (reply === null) {
      if (local.ok) {
        published.add(p);
        t.devices.publish(subject, bytes);
        return;
      }
      const raw = await answered(t, subject, bytes);
      if (raw.length !== 0)
        fail(`${subject}: a refused ${request.message} got a ${raw.length}-byte reply, not an empty one`);
      refused.set(local.error.code, (refused.get(local.error.code) ?? 0) + 1);
      return;
    }
    const raw = await answered(t, subject, bytes);
    const decoded = reply.decode(raw);
    if (!decoded.ok) fail(`${subject}: the reply is not a valid ${reply.message}: ${decoded.error.message}`);
    const answer = decoded.value as { ok: true } | { ok: false; error: Rejection };
    if (answer.ok) {
      if (!local.ok) fail(`${subject}: the shard accepted bytes the codec refuses (${local.error.message})`);
      return;
    }
    const { code, message } = answer.error;
    if (!REJECT_SET.has(code) || code === REJECT_CODES.INTERNAL)
      fail(`${subject}: rejected with ${code} (${message}): not a typed refusal of the request`);
    if (message.length === 0) fail(`${subject}: rejected with ${code} and no message`);
    if (!local.ok && (code !== local.error.code || message !== local.error.message))
      fail(
        `${subject}: refused with ${code} "${message}", the codec says ${local.error.code} "${local.error.message}"`,
      );
    refused.set(code, (refused.get(code) ?? 0) + 1);
  }

  async function settle(): Promise<void> {
    // Published requests are counted by partition actors; a challenge through each of those
    // actors is answered only after they have handled what was queued before it.
    for (const p of published)
      await answered(t, deviceSubject('challenge', p), encodeChallengeRequest({ deviceId: deviceIdIn(p) }));
    if (counter !== undefined) {
      const after = await t.metricsText();
      const delta = (match: Record<string, string>): number =>
        sampleSum(after, counter, match) - sampleSum(before, counter, match);
      const problems: string[] = [];
      if (delta({}) !== sent) problems.push(`${counter} grew by ${delta({})} for ${sent} requests`);
      // What became of published (fire-and-forget) requests is not seen here: at least, then.
      for (const [code, n] of refused) {
        const d = delta({ result: 'rejected', reason: code });
        if (published.size === 0 ? d !== n : d < n)
          problems.push(`${counter}{result="rejected",reason="${code}"} grew by ${d} for ${n} refusals`);
      }
      if (problems.length > 0) fail(problems.join('; '));
    }
    await checkStillServes(t);
  }
  return { arbitrary, check, settle, notes };
}

// ---- operator API over gRPC -----------------------------------------------------------------

const TOKENS = ['none', 'bad', 'tenant', 'admin'] as const;
export interface GrpcInput {
  readonly method: string;
  readonly payload: FuzzBytes;
  readonly token: (typeof TOKENS)[number];
}

interface CallStatus {
  readonly code: grpc.status;
  readonly details: string;
  readonly errorCode: string | undefined;
  readonly response: Buffer | null;
}

function errorCodeOf(md: grpc.Metadata | undefined): string | undefined {
  const v = md?.get('sphere-error-code')[0];
  return typeof v === 'string' ? v : undefined;
}

function rawCall(
  client: grpc.Client,
  m: OperatorMethod,
  body: Buffer,
  md: grpc.Metadata,
): Promise<CallStatus> {
  const identity = (b: Buffer): Buffer => b;
  return new Promise((resolve) => {
    const deadline = Date.now() + HANG_BOUND_MS;
    if (!m.responseStream) {
      client.makeUnaryRequest(m.path, identity, identity, body, md, { deadline }, (err, value) => {
        if (err === null)
          resolve({ code: grpc.status.OK, details: '', errorCode: undefined, response: value ?? null });
        else
          resolve({
            code: err.code,
            details: err.details,
            errorCode: errorCodeOf(err.metadata),
            response: null,
          });
      });
      return;
    }
    const call = client.makeServerStreamRequest(m.path, identity, identity, body, md, { deadline });
    let first: Buffer | null = null;
    let established = false;
    // A stream that serves is left after its first message, or its headers (a watch of alerts
    // may not have a message for a long time): the fuzzer only needs to see it works.
    call.on('metadata', () => {
      established = true;
      call.cancel();
    });
    call.on('data', (b: Buffer) => {
      first ??= b;
      call.cancel();
    });
    call.on('error', () => undefined);
    call.on('status', (s: grpc.StatusObject) =>
      resolve({
        code: (first !== null || established) && s.code === grpc.status.CANCELLED ? grpc.status.OK : s.code,
        details: s.details,
        errorCode: errorCodeOf(s.metadata),
        response: first,
      }),
    );
  });
}

function undecodable(x: unknown): OperatorError | undefined {
  if (typeof x !== 'object' || x === null || !('undecodable' in x)) return undefined;
  return x.undecodable as OperatorError;
}

/**
 * Property for the operator API over a real socket: every call with fuzzed request bytes (random,
 * shaped, mutated canonical requests; no token, a bad one, a tenant's or the admin's) ends with a
 * gRPC status; a refusal carries a `sphere-error-code` other than INTERNAL whose mapping is the
 * status, and a message; bytes the server's deserializer refuses get exactly that refusal; an OK
 * answer decodes. Settle: sphere_grpc_requests_total grew by the calls made; the shard serves.
 */
export async function grpcFuzz(
  methods: readonly OperatorMethod[],
  t: FuzzTarget,
): Promise<WireFuzz<GrpcInput>> {
  const dictionary = dictionaryBytes(t.seeds.dictionary);
  const byName = new Map(methods.map((m) => [m.name, m]));
  const oversize = new Uint8Array(4 * 1024 * 1024 + 1);
  const arbitrary = fc.oneof(
    ...methods.map((m) =>
      fc.record({
        method: fc.constant(m.name),
        payload: fc.oneof(
          {
            weight: 200,
            arbitrary: fuzzBytes({
              shape: m.shape,
              dictionary,
              valid: shapedMessage(m.shape, dictionary)
                .map((b) => canonicalRequest(m, b))
                .filter((b): b is Uint8Array => b !== null),
            }),
          },
          {
            weight: 1,
            arbitrary: fc.constant({
              how: 'random' as const,
              bytes: oversize,
              [fc.toStringMethod]: () => `{ how: 'random', bytes: <${oversize.length} zero bytes> }`,
            }),
          },
        ),
        token: fc.constantFrom(...TOKENS),
      }),
    ),
  );
  const client = new grpc.Client(t.grpcAddress, grpc.credentials.createInsecure());
  const before = await t.metricsText();
  let calls = 0;

  async function check(input: GrpcInput): Promise<void> {
    const m = byName.get(input.method) ?? fail(`no method ${input.method}`);
    const body = Buffer.from(input.payload.bytes);
    const local = undecodable(m.deserialize(body));
    // Creating tenants makes CAs and TUF keys; the admin token is fuzzed on every other method.
    const token = input.token === 'admin' && m.name === 'createTenant' ? 'tenant' : input.token;
    const md = new grpc.Metadata();
    if (token === 'bad') md.set('authorization', 'Bearer not-a-token');
    if (token === 'tenant') md.set('authorization', `Bearer ${t.seeds.tenantBToken}`);
    if (token === 'admin') md.set('authorization', `Bearer ${t.adminToken}`);
    calls++;
    const s = await rawCall(client, m, body, md);
    const where = `${m.name} (${body.length} bytes, token ${token})`;
    if (s.code === grpc.status.OK) {
      if (local !== undefined) fail(`${where}: OK for bytes the deserializer refuses (${local.message})`);
      if (s.response !== null) m.decodeResponse(s.response);
      return;
    }
    if (s.code === grpc.status.DEADLINE_EXCEEDED) fail(`${where}: no status within ${HANG_BOUND_MS} ms`);
    const code = s.errorCode ?? fail(`${where}: status ${s.code} (${s.details}) without sphere-error-code`);
    if (!OPERATOR_SET.has(code) || code === OPERATOR_ERRORS.INTERNAL)
      fail(`${where}: refused with ${code} (${s.details}): not a typed refusal of the request`);
    if (grpcStatusOf(code as OperatorErrorCode) !== s.code)
      fail(`${where}: ${code} came with status ${s.code}`);
    if (s.details.length === 0) fail(`${where}: ${code} without a message`);
    if (local !== undefined && (code !== local.code || s.details !== local.message))
      fail(
        `${where}: refused with ${code} "${s.details}", the deserializer says ${local.code} "${local.message}"`,
      );
  }

  async function settle(): Promise<void> {
    client.close();
    const after = await t.metricsText();
    const grew =
      sampleSum(after, 'sphere_grpc_requests_total') - sampleSum(before, 'sphere_grpc_requests_total');
    if (grew !== calls) fail(`sphere_grpc_requests_total grew by ${grew} for ${calls} calls`);
    await checkStillServes(t);
  }
  return { arbitrary, check, settle, notes: [] };
}

// ---- the journal ----------------------------------------------------------------------------

/** Records as the shard writes them, to mutate (values are placeholders; the shape is what counts). */
const RECORD_TEMPLATES: readonly unknown[] = [
  { t: 'boot', shardId: 'shard-0', atWallMs: 1 },
  { t: 'endorse', keys: ['BA=='] },
  { t: 'claim', tenantId: 't-0000000000000000', deviceIds: ['0'.repeat(128)] },
  { t: 'assign', tenantId: 't-0000000000000000', groupId: 'g-0000000000000000', deviceIds: [] },
  { t: 'tuf-refresh', tenantId: 't-0000000000000000', atMs: 1 },
  { t: 'rollout', id: 'd-0000000000000000', msg: '{"type":"rollout.tick"}', atMs: 1 },
  { o: 'shard-0/1', token: 1, devices: [] },
];

export interface JournalInput {
  readonly partitionLog: boolean;
  readonly suffix: string;
  readonly payload: Uint8Array;
}

/**
 * Property for the journal: a record written into the shard's JetStream journal by anyone who can
 * publish on NATS (bytes, JSON of any shape, mutated records) is refused or skipped, and the shard
 * keeps serving. After each record the check makes a change through the operator API, which
 * answers only once the shard has applied every record stored before it: it clears tenant A's
 * alert webhook (a journaled write that adds no state, so 100,000 inputs do not make the
 * barrier itself slower, as 100,000 device groups in one product did).
 */
export function journalFuzz(t: FuzzTarget): Promise<WireFuzz<JournalInput>> {
  const journal = t.journal ?? fail('the target has no JetStream journal');
  const json = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v) ?? 'undefined');
  const arbitrary = fc.record({
    partitionLog: fc.boolean(),
    suffix: fc.oneof(
      fc.constantFrom('tenant', 'claim', 'rollout', 'deployment', 'image', 'zzz'),
      fc.nat({ max: t.partitions }).map(String),
    ),
    payload: fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      oddValue.map(json),
      fc
        .tuple(fc.constantFrom(...RECORD_TEMPLATES), fc.array(treeMutation(), { minLength: 1, maxLength: 3 }))
        .map(([doc, ms]) => json(applyTreeMutations(doc, ms))),
    ),
  });
  async function check(input: JournalInput): Promise<void> {
    const subject = `${journal}.${input.partitionLog ? 'part' : 'journal'}.${input.suffix}`;
    t.devices.publish(subject, input.payload);
    await t.devices.flush();
    try {
      await t.seeds.tenantA.setAlertWebhook('');
    } catch (e) {
      fail(`after a record on ${subject} the shard no longer applies changes: ${String(e)}`);
    }
    if (!t.shardRunning()) fail(`a record on ${subject} stopped the shard`);
  }
  return Promise.resolve({ arbitrary, check, settle: () => checkStillServes(t), notes: [] });
}
