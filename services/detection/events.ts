import type { RejectCode } from '../../proto/codec/index.js';
import type { Severity } from '../registry/index.js';

/** What the detector can conclude. Each value is stable: dashboards and alert rules match on it. */
export const DETECTION_ALERT_TYPES = [
  'CLONED_IDENTITY',
  'REPLAYED_REQUEST',
  'MEASUREMENT_DRIFT',
  'CRASH_BURST_AFTER_UPDATE',
  'DEVICE_FLOODING',
] as const;
export type DetectionAlertType = (typeof DETECTION_ALERT_TYPES)[number];

/** How serious each detection is. */
export const DETECTION_SEVERITY: Readonly<Record<DetectionAlertType, Severity>> = {
  CLONED_IDENTITY: 'critical',
  REPLAYED_REQUEST: 'high',
  MEASUREMENT_DRIFT: 'high',
  CRASH_BURST_AFTER_UPDATE: 'high',
  DEVICE_FLOODING: 'medium',
};

/** An attestation the service decided: accepted, or rejected with `code`. */
export interface AttestationEvent {
  readonly kind: 'attestation';
  readonly atMs: number;
  readonly deviceId: string;
  readonly tenantId: string | null;
  readonly productId: string | null;
  readonly ok: boolean;
  /** `null` when `ok`. */
  readonly code: RejectCode | null;
  readonly bootIdHex: string;
  readonly bootCount: number;
  readonly osVersion: string;
  /** Stages whose digest matched no reference value (empty when all matched), digest as hex. */
  readonly unknownMeasurements: ReadonlyArray<{ readonly stage: string; readonly digestHex: string }>;
}

/**
 * A device request refused for a security reason (`NONCE_REUSED`, `REPLAYED`, `BAD_MAC`,
 * `DUPLICATE_IDENTITY`, ...). `code` is a plain string so codes of other protocols fit too.
 */
export interface RejectionEvent {
  readonly kind: 'rejection';
  readonly atMs: number;
  readonly deviceId: string;
  readonly tenantId: string | null;
  readonly op: string;
  readonly code: string;
  /** Facts worth keeping in an alert's evidence (a few short entries; longer ones are clipped). */
  readonly detail: Readonly<Record<string, string>>;
}

/** Any device request that reached the service, accepted or not (for flood detection). */
export interface RequestEvent {
  readonly kind: 'request';
  readonly atMs: number;
  readonly deviceId: string;
  readonly tenantId: string | null;
  readonly op: string;
}

/** A device's final report for one deployment; `atMs` of `succeeded` is taken as the install time. */
export interface UpdateResultEvent {
  readonly kind: 'update-result';
  readonly atMs: number;
  readonly deviceId: string;
  readonly tenantId: string;
  readonly deploymentId: string;
  /** `'os'` for the operating system, otherwise the application's name. */
  readonly component: string;
  readonly version: string;
  readonly outcome: 'succeeded' | 'failed' | 'rolled-back';
}

/** One event of a stored error report (kinds as in `services/error-reports`). */
export interface ErrorReportEntry {
  /** `'app-crash' | 'app-exit' | 'os-crash' | 'update-failed' | 'attestation-failed'`; others are ignored. */
  readonly kind: string;
  readonly component: string;
  /** Empty when the device did not know it. */
  readonly version: string;
  readonly exitCode: number;
  /** When it happened on the device (reports arrive up to a day or more later). */
  readonly atMs: number;
}

/** A stored error report: `atMs` is when the service stored it, each event has its own time. */
export interface ErrorReportEvent {
  readonly kind: 'error-report';
  readonly atMs: number;
  readonly deviceId: string;
  readonly tenantId: string;
  readonly productId: string | null;
  readonly groupId: string | null;
  readonly events: ReadonlyArray<ErrorReportEntry>;
}

/** What the service tells the detector; every time is simulated ms. */
export type SecurityEvent =
  AttestationEvent | RejectionEvent | RequestEvent | UpdateResultEvent | ErrorReportEvent;

/** A conclusion of the detector, ready to store and show to a tenant. */
export interface DetectedAlert {
  /**
   * `ta-` and 32 hex digits of SHA-256 over (type, key, suppression window start): two detectors
   * that see the same thing in the same window give the same id, so storage can keep it once.
   */
  readonly id: string;
  readonly type: DetectionAlertType;
  readonly severity: Severity;
  readonly tenantId: string | null;
  /** `''` for fleet-level alerts (measurement drift, crash bursts). */
  readonly deviceId: string;
  /** Time of the event that tripped the rule. */
  readonly atMs: number;
  /** A sentence a person can act on. */
  readonly message: string;
  /** The facts: counts, ids, digests, windows (keys in snake_case). */
  readonly evidence: Readonly<Record<string, string>>;
}

/**
 * Attestation rejections this service gives only to evidence whose signature verified (every
 * other code may come with forged evidence): the measurements of such evidence are the device's.
 */
export const SIGNED_EVIDENCE_CODES: ReadonlySet<string> = new Set<RejectCode>([
  'NONCE_UNKNOWN',
  'NONCE_STALE',
  'NONCE_REUSED',
  'CLOCK_SKEW',
  'MEASUREMENT_MISMATCH',
  'BELOW_MIN_VERSION',
  'DUPLICATE_IDENTITY',
]);
