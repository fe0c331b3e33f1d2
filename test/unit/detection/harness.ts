import type {
  AttestationEvent,
  ErrorReportEntry,
  ErrorReportEvent,
  RejectionEvent,
  RequestEvent,
  UpdateResultEvent,
} from '../../../services/detection/index.js';

/** A device id as the service spells it: 128 hex digits. */
export const dev = (n: number): string => n.toString(16).padStart(128, '0');
export const TENANT = 't-000000000000000a';
export const OTHER_TENANT = 't-000000000000000b';
export const MIN = 60_000;
export const HOUR = 3_600_000;

export function attestation(over: Partial<AttestationEvent> = {}): AttestationEvent {
  return {
    kind: 'attestation',
    atMs: 0,
    deviceId: dev(1),
    tenantId: TENANT,
    productId: 'p-1',
    ok: true,
    code: null,
    bootIdHex: 'b0'.repeat(16),
    bootCount: 1,
    osVersion: '25.04',
    unknownMeasurements: [],
    ...over,
  };
}

export function rejection(over: Partial<RejectionEvent> = {}): RejectionEvent {
  return {
    kind: 'rejection',
    atMs: 0,
    deviceId: dev(1),
    tenantId: TENANT,
    op: 'heartbeat',
    code: 'NONCE_REUSED',
    detail: {},
    ...over,
  };
}

export function request(over: Partial<RequestEvent> = {}): RequestEvent {
  return { kind: 'request', atMs: 0, deviceId: dev(1), tenantId: TENANT, op: 'heartbeat', ...over };
}

export function updateResult(over: Partial<UpdateResultEvent> = {}): UpdateResultEvent {
  return {
    kind: 'update-result',
    atMs: 0,
    deviceId: dev(1),
    tenantId: TENANT,
    deploymentId: 'd-0000000000000001',
    component: 'blinky',
    version: '1.1.0',
    outcome: 'succeeded',
    ...over,
  };
}

export function crash(over: Partial<ErrorReportEntry> = {}): ErrorReportEntry {
  return { kind: 'app-crash', component: 'blinky', version: '1.1.0', exitCode: 139, atMs: 0, ...over };
}

export function errorReport(
  events: readonly ErrorReportEntry[],
  over: Partial<ErrorReportEvent> = {},
): ErrorReportEvent {
  return {
    kind: 'error-report',
    atMs: 0,
    deviceId: dev(1),
    tenantId: TENANT,
    productId: 'p-1',
    groupId: 'g-1',
    events,
    ...over,
  };
}
