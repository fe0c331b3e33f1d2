/**
 * The operator gRPC API as the fuzzer sees it: every method of the generated service
 * (proto/gen), with the server's wrapped deserializer (`defensiveDefinition`, the one the shard
 * registers) and the generated encode/decode used to build canonical requests. Derived from the
 * service definition, so a new method is fuzzed without a line here.
 */
import type { MethodDefinition } from '@grpc/grpc-js';
import fc from 'fast-check';
import { OperatorServiceService } from '../../proto/gen/sphere/operator/v1/operator.js';
import {
  MAX_REQUEST_BYTES,
  OPERATOR_ERRORS,
  OperatorError,
  defensiveDefinition,
} from '../../services/operator-api/index.js';
import { fail, sameValue } from './property.js';
import type { PureFuzz } from './property.js';
import { discoverShape, fuzzBytes, hasUnknownField, shapedMessage, stripUnknownFields } from './protobuf.js';
import type { FuzzBytes, MessageShape } from './protobuf.js';

export interface OperatorMethod {
  /** `createTenant` */
  readonly name: string;
  /** `/sphere.operator.v1.OperatorService/CreateTenant` */
  readonly path: string;
  readonly responseStream: boolean;
  /** The server's deserializer: a request object, or `{ undecodable: OperatorError }`. Must not throw. */
  readonly deserialize: (bytes: Buffer) => unknown;
  /** The generated (lenient, throwing) request decoder and its encoder. */
  readonly decode: (bytes: Uint8Array) => object;
  readonly encode: (value: object) => Uint8Array;
  readonly decodeResponse: (bytes: Buffer) => unknown;
  readonly shape: MessageShape;
}

type AnyMethod = MethodDefinition<object, object>;

export function operatorMethods(): OperatorMethod[] {
  const strict = defensiveDefinition() as unknown as Record<string, AnyMethod>;
  return Object.entries(OperatorServiceService as unknown as Record<string, AnyMethod>).map(([name, d]) => {
    const wrapped = strict[name];
    if (wrapped === undefined) throw new Error(`defensiveDefinition() has no ${name}`);
    const decode = (bytes: Uint8Array): object =>
      d.requestDeserialize(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
    return {
      name,
      path: d.path,
      responseStream: d.responseStream,
      deserialize: (bytes) => wrapped.requestDeserialize(bytes),
      decode,
      encode: (value) => new Uint8Array(d.requestSerialize(value)),
      decodeResponse: (bytes) => d.responseDeserialize(bytes),
      shape: discoverShape(decode),
    };
  });
}

/**
 * The canonical encoding of what `bytes` decode to leniently (unknown fields dropped): bytes the
 * strict deserializer must accept and give back as the same value. `null` when the generated
 * decoder throws.
 */
export function canonicalRequest(m: OperatorMethod, bytes: Uint8Array): Uint8Array | null {
  let value: object;
  try {
    value = stripUnknownFields(m.decode(bytes));
  } catch {
    return null;
  }
  return m.encode(value);
}

const OPERATOR_SET = new Set<string>(Object.values(OPERATOR_ERRORS));

/**
 * Pure property of one method's wrapped deserializer (what grpc-js calls on the request bytes):
 * never throws; returns a request, or `{ undecodable }` holding an OperatorError with a code from
 * OPERATOR_ERRORS and a message (PAYLOAD_TOO_LARGE exactly over MAX_REQUEST_BYTES); a request it
 * returns is canonical (its encoding is the input) and has no unknown field; a canonical
 * encoding of a request is accepted as the same value.
 */
export function operatorDeserializerFuzz(m: OperatorMethod): PureFuzz<FuzzBytes> {
  const canonical = shapedMessage(m.shape)
    .map((b) => canonicalRequest(m, b))
    .filter((b): b is Uint8Array => b !== null);
  const oversize = new Uint8Array(MAX_REQUEST_BYTES + 1);
  return {
    arbitrary: fc.oneof(
      { weight: 500, arbitrary: fuzzBytes({ shape: m.shape, valid: canonical }) },
      {
        weight: 1,
        arbitrary: fc.constant({
          how: 'random' as const,
          bytes: oversize,
          [fc.toStringMethod]: () => `{ how: 'random', bytes: <${oversize.length} zero bytes> }`,
        }),
      },
    ),
    check(input) {
      const bytes = Buffer.from(input.bytes.buffer, input.bytes.byteOffset, input.bytes.length);
      const out = m.deserialize(bytes);
      if (typeof out !== 'object' || out === null) fail(`${m.name}: deserializer returned ${String(out)}`);
      if ('undecodable' in out) {
        const e = out.undecodable;
        if (!(e instanceof OperatorError))
          fail(`${m.name}: undecodable holds ${String(e)}, not an OperatorError`);
        if (!OPERATOR_SET.has(e.code)) fail(`${m.name}: refused with ${e.code}`);
        if (e.message.length === 0) fail(`${m.name}: ${e.code} without a message`);
        if ((e.code === OPERATOR_ERRORS.PAYLOAD_TOO_LARGE) !== bytes.length > MAX_REQUEST_BYTES)
          fail(`${m.name}: ${e.code} for ${bytes.length} bytes`);
        if (input.how === 'valid') fail(`${m.name}: refused a canonical request: ${e.message}`);
        return;
      }
      if (hasUnknownField(out)) fail(`${m.name}: accepted a request with an unknown field`);
      if (!Buffer.from(m.encode(out)).equals(bytes)) fail(`${m.name}: accepted bytes that are not canonical`);
      if (input.how === 'valid' && !sameValue(out, m.decode(bytes)))
        fail(`${m.name}: a canonical request came back as another value`);
    },
  };
}
