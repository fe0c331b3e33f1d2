/**
 * Threat detection: pure rules over the service's security events (attestations, rejections,
 * requests, update results, error reports) that raise deterministic, suppressed alerts.
 * No I/O and no clock: the shell feeds events and stores what comes back.
 */
export { ThreatDetector, detectionAlertId } from './detector.js';
export type { DetectorStats } from './detector.js';
export {
  DEFAULT_DETECTION_CONFIG,
  DetectionConfigError,
  MAX_MIN_DEVICES,
  compileDetectionConfig,
  longestWindowMs,
} from './config.js';
export type { DetectionConfig } from './config.js';
export { DETECTION_ALERT_TYPES, DETECTION_SEVERITY, SIGNED_EVIDENCE_CODES } from './events.js';
export type {
  AttestationEvent,
  DetectedAlert,
  DetectionAlertType,
  ErrorReportEntry,
  ErrorReportEvent,
  RejectionEvent,
  RequestEvent,
  SecurityEvent,
  UpdateResultEvent,
} from './events.js';
