import type { CertificatesMsg, ChallengeMsg, ErrorReportAckMsg, Rejection } from '../../proto/codec/index.js';
import type { CoreReply } from '../security-core/index.js';
import type { DeviceFirmware } from './logic.js';

/** Why a network step failed: the service refused it, or the network did not deliver. */
export type StepFailure =
  | { readonly kind: 'rejected'; readonly rejection: Rejection }
  | { readonly kind: 'transport'; readonly code: string; readonly message: string };

/** Outcome of one request: the value, or why it failed. Wall times are for latency only. */
export type StepOutcome<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly failure: StepFailure };

/**
 * What came of one error report upload (the shell's answer to `upload-errors`): nothing to send,
 * no session or connection to send it with yet, or the report sent and what came back.
 */
export type ErrorUploadOutcome =
  | { readonly kind: 'nothing' }
  | { readonly kind: 'no-session' }
  | {
      readonly kind: 'sent';
      readonly reportId: string;
      readonly events: number;
      readonly reply: StepOutcome<ErrorReportAckMsg>;
    };

/** Everything the device actor receives. */
export type DeviceMessage =
  | { readonly type: 'device.power-on' }
  | { readonly type: 'device.power-off' }
  /** The update agent wrote new firmware (an OS update, its fallback, or a new app): used at the next power-on. */
  | { readonly type: 'device.firmware-installed'; readonly firmware: DeviceFirmware }
  | CoreReply
  | { readonly type: 'device.connected' }
  | { readonly type: 'device.connect-failed'; readonly message: string }
  /** Timers carry the power cycle that set them; a timer from before a power-off is ignored. */
  | { readonly type: 'device.attest-due'; readonly power: number }
  | { readonly type: 'device.heartbeat-due'; readonly power: number }
  /** The update agent's install of `version` failed or was rolled back (`code` says why). */
  | {
      readonly type: 'device.update-failed';
      readonly component: 'os' | 'app';
      readonly name: string;
      readonly version: string;
      readonly code: string;
    }
  /** The next simulated crash is due; only the crash timer last set (`timer`) counts. */
  | { readonly type: 'device.crash-due'; readonly timer: number }
  /** The daily error report upload is due. */
  | { readonly type: 'device.errors-due'; readonly power: number }
  /** Retry of upload `attempt` after a failure. */
  | { readonly type: 'device.errors-retry'; readonly attempt: number }
  | { readonly type: 'device.errors-result'; readonly attempt: number; readonly outcome: ErrorUploadOutcome }
  | {
      readonly type: 'device.challenge-result';
      readonly epoch: number;
      readonly outcome: StepOutcome<ChallengeMsg>;
      readonly sentAtWall: number;
      readonly receivedAtWall: number;
    }
  | {
      readonly type: 'device.attest-result';
      readonly epoch: number;
      readonly outcome: StepOutcome<CertificatesMsg>;
      readonly sentAtWall: number;
      readonly receivedAtWall: number;
    };

export type DeviceMessageType = DeviceMessage['type'];
