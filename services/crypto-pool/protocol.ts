import type { KeyObject } from 'node:crypto';
import type { WrappedSessionKey } from '../../actors/crypto/index.js';
/**
 * Pool <-> worker messages: structured-clone safe; failures travel as typed results.
 */

/** Result type used across the worker-thread boundary. */
export type WorkerResult<T> = { ok: true; value: T } | { ok: false; error: WorkerError };

/** What the worker entry point returns: a typed result plus the time the task ran (for utilisation). */
export type TimedWorkerResult<T> = WorkerResult<T> & { readonly busyMs: number };

/** Serializable error: stable `code` plus a human-readable message. */
export interface WorkerError {
  readonly code: CryptoPoolErrorCode;
  readonly message: string;
}

/** Error codes produced by the pool and its workers. */
export const CryptoPoolErrorCode = {
  /** An item asked for signatures with a CA key the worker was not given. */
  unknownCaKey: 'unknown-ca-key',
  /** A CA key's PKCS#8 bytes could not be parsed. */
  badCaKey: 'bad-ca-key',
  /** The task itself was malformed (unknown kind, wrong shapes). */
  badTask: 'bad-task',
  /** Unexpected failure inside the worker. */
  internal: 'internal',
  /** The pool was closed before the item completed. */
  closed: 'closed',
  /** The worker thread failed (crash, missing worker file). */
  workerFailed: 'worker-failed',
} as const;
/** Union of {@link CryptoPoolErrorCode} values. */
export type CryptoPoolErrorCode = (typeof CryptoPoolErrorCode)[keyof typeof CryptoPoolErrorCode];

/** One attestation's crypto work: verify the device signature, then sign certificate TBSs. */
export interface VerifyIssueItem {
  /**
   * Raw 65-byte point (parsed and cached per worker), or a parsed KeyObject, which crosses to
   * the worker by reference (~4 µs) instead of being re-imported there (~80 µs).
   */
  readonly publicKey: Uint8Array | KeyObject;
  /** Signed evidence bytes. */
  readonly data: Uint8Array;
  /** 64-byte IEEE P1363 (r || s) signature over SHA-256(data). */
  readonly signature: Uint8Array;
  /** TBSCertificates to sign, only if the signature is valid; may be empty. */
  readonly tbs: readonly Uint8Array[];
  /** CA key to sign `tbs` with; required when `tbs` is non-empty. */
  readonly caKeyId?: string;
  /** A session key to wrap for the device, only if the signature is valid (see actors/crypto/session.ts). */
  readonly session?: SessionWrapItem;
}

/** The inputs of `wrapSessionKey`. */
export interface SessionWrapItem {
  readonly key: Uint8Array;
  readonly clientPublicKey: Uint8Array;
  readonly ephemeralSecret: Uint8Array;
  readonly salt: Uint8Array;
  readonly sessionId: Uint8Array;
}

/** Per-item outcome. */
export interface VerifyIssueResult {
  readonly signatureValid: boolean;
  /** DER ECDSA-Sig-Value for each TBS, in order; empty if the signature was invalid. */
  readonly signatures: Uint8Array[];
  /** The wrapped session key, when one was asked for and the signature was valid. */
  readonly session?: WrappedSessionKey;
}

/** Per-item outcome on the wire: a result or an item-level error. */
export type VerifyIssueWireResult = VerifyIssueResult | { readonly error: WorkerError };

/** Batch task: verify and issue for many items. */
export interface VerifyIssueTask {
  readonly kind: 'verify-issue';
  /** PKCS#8 DER of every CA key referenced by `items` (key IDs must identify keys uniquely). */
  readonly caKeys: Readonly<Record<string, Uint8Array>>;
  readonly items: readonly VerifyIssueItem[];
}

/** Crypto-only benchmark task: `n` attestations' worth of primitive operations. */
export interface BenchTask {
  readonly kind: 'bench';
  readonly n: number;
  /** Evidence message size (default 300). */
  readonly messageBytes?: number;
  /** TBS size (default 400). */
  readonly tbsBytes?: number;
}

/** Outcome of a {@link BenchTask}. */
export interface BenchResult {
  readonly attestations: number;
  readonly signs: number;
  readonly verifies: number;
  /** Session keys wrapped (service) and unwrapped (device). */
  readonly sessions: number;
  /** Time spent in the loop inside the worker. */
  readonly elapsedMs: number;
}

/** Any task understood by the worker. */
export type CryptoTask = VerifyIssueTask | BenchTask;
