/** An image a device component runs: the OS, or one application. */
export interface InstalledImage {
  readonly kind: 'os' | 'app';
  readonly name: string;
  readonly version: string;
  /** Anti-rollback security version (meaningful for the OS). */
  readonly securityVersion: number;
}

/** An update the service offers this device (one target of a deployment). */
export interface UpdateOffer extends InstalledImage {
  /** Identifies the offer across reports (deployment and target). */
  readonly offerId: string;
  readonly length: number;
  readonly chunkSize: number;
}

/** What a device reports about an offer; the rollout engine consumes these. */
export type UpdateOutcome = 'downloading' | 'installing' | 'succeeded' | 'failed' | 'rolled-back';

/** Machine-readable reasons attached to failed and rolled-back outcomes. */
export const UPDATE_CODES = {
  SECURITY_VERSION_ROLLBACK: 'SECURITY_VERSION_ROLLBACK',
  VERIFY_FAILED: 'VERIFY_FAILED',
  INSTALL_FAILED: 'INSTALL_FAILED',
  BOOT_FAILED: 'BOOT_FAILED',
  HEALTH_CHECK_FAILED: 'HEALTH_CHECK_FAILED',
  DOWNLOAD_FAILED: 'DOWNLOAD_FAILED',
  ROLLBACK_ORDERED: 'ROLLBACK_ORDERED',
  /** The device already runs the offered version (reported as succeeded). */
  ALREADY_INSTALLED: 'ALREADY_INSTALLED',
} as const;
export type UpdateCode = (typeof UPDATE_CODES)[keyof typeof UPDATE_CODES];

/** Everything the update agent receives. Results of effects carry the offer they belong to. */
export type UpdateAgentMessage =
  /** Time to check; `timer` is set on scheduled checks (see `UpdateAgentState.checkTimer`). */
  | { readonly type: 'update.check-due'; readonly timer?: number }
  /** The check got no answer or a refusal: idle, and check again in `retryInMs`. */
  | { readonly type: 'update.check-failed'; readonly retryInMs: number }
  | { readonly type: 'update.offers'; readonly offers: readonly UpdateOffer[] }
  | {
      readonly type: 'update.chunk-received';
      readonly offerId: string;
      readonly index: number;
      readonly bytes: number;
    }
  | { readonly type: 'update.download-interrupted'; readonly offerId: string; readonly reason: string }
  | { readonly type: 'update.resume-due'; readonly offerId: string }
  /** `code` explains a failed verification (TUF and signature checks run in the shell). */
  | {
      readonly type: 'update.verified';
      readonly offerId: string;
      readonly ok: boolean;
      readonly code?: string;
    }
  | { readonly type: 'update.installed'; readonly offerId: string; readonly ok: boolean }
  | { readonly type: 'update.booted'; readonly offerId: string; readonly ok: boolean }
  | { readonly type: 'update.health'; readonly offerId: string; readonly ok: boolean }
  /** An application asks to postpone OS updates until `untilMs` (capped at 24 h from its first ask). */
  | { readonly type: 'update.defer-requested'; readonly untilMs: number }
  | { readonly type: 'update.defer-elapsed' }
  /** The service orders the device back to the image it ran before `offerId` (auto-rollback on halt). */
  | { readonly type: 'update.rollback-ordered'; readonly offerId: string };
