import { status } from '@grpc/grpc-js';

/** Operator API error codes: what metrics count and what clients read from `sphere-error-code`. */
export const OPERATOR_ERRORS = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  MALFORMED_INPUT: 'MALFORMED_INPUT',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  NOT_FOUND: 'NOT_FOUND',
  ALREADY_EXISTS: 'ALREADY_EXISTS',
  /** The object is not in a state that allows the call (e.g. resume a rollout that is running). */
  CONFLICT: 'CONFLICT',
  /** The shard is shutting down; a stream it ends with this can be opened again (elsewhere). */
  UNAVAILABLE: 'UNAVAILABLE',
  INTERNAL: 'INTERNAL',
} as const;
export type OperatorErrorCode = (typeof OPERATOR_ERRORS)[keyof typeof OPERATOR_ERRORS];

/** A refusal raised by an operator handler; `message` tells the caller what to fix. */
export class OperatorError extends Error {
  override readonly name = 'OperatorError';
  constructor(
    readonly code: OperatorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The one mapping from operator error codes to gRPC status codes. */
export function grpcStatusOf(code: OperatorErrorCode): status {
  switch (code) {
    case 'UNAUTHENTICATED':
      return status.UNAUTHENTICATED;
    case 'FORBIDDEN':
      return status.PERMISSION_DENIED;
    case 'MALFORMED_INPUT':
      return status.INVALID_ARGUMENT;
    case 'PAYLOAD_TOO_LARGE':
      return status.RESOURCE_EXHAUSTED;
    case 'NOT_FOUND':
      return status.NOT_FOUND;
    case 'ALREADY_EXISTS':
      return status.ALREADY_EXISTS;
    case 'CONFLICT':
      return status.FAILED_PRECONDITION;
    case 'UNAVAILABLE':
      return status.UNAVAILABLE;
    case 'INTERNAL':
      return status.INTERNAL;
    default:
      return code satisfies never;
  }
}

/** Metadata key carrying the machine-readable error code on a failed call. */
export const ERROR_CODE_METADATA = 'sphere-error-code';
