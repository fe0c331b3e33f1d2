import type { ActorRef } from '../runtime/index.js';
import type { AttestRequestMsg, DeviceId } from '../../proto/codec/index.js';
import type { ImageMeasurement } from './firmware.js';
import type { TufErrorCode, TufUpdateFiles } from '../tuf/index.js';

/** The core's verdict on an update: TUF metadata refreshed and the downloaded image checked. */
export type UpdateVerdict =
  | { readonly ok: true; readonly rootVersion: number }
  | {
      readonly ok: false;
      readonly code: TufErrorCode;
      readonly message: string;
      readonly rootVersion: number;
    };

/** What the security core answers; the device's message union includes these. */
export type CoreReply =
  | {
      readonly type: 'device.core-booted';
      readonly deviceId: DeviceId;
      readonly bootId: Uint8Array;
      readonly bootCount: number;
    }
  | { readonly type: 'device.evidence'; readonly epoch: number; readonly request: AttestRequestMsg };

/**
 * Messages the security core receives. None carries key material: the private keys exist only in
 * the core's state, set at manufacture.
 */
export type CoreMessage =
  | {
      readonly type: 'core.boot';
      /** Images in boot order as the device loaded them (the core measures what actually runs). */
      readonly images: readonly ImageMeasurement[];
      readonly osVersion: string;
      readonly securityVersion: number;
      readonly replyTo: ActorRef<CoreReply>;
    }
  | {
      readonly type: 'core.attest';
      readonly epoch: number;
      readonly nonce: Uint8Array;
      readonly deviceTimeMs: number;
      readonly replyTo: ActorRef<CoreReply>;
    }
  /**
   * Verify an update before it is installed (TUF 1.0 client workflow): refresh the trusted
   * metadata with `metadata` (kept only if it verifies), then check the downloaded image's
   * length and SHA-256 against the trusted targets and the anti-rollback floor.
   */
  | {
      readonly type: 'core.verify-update';
      readonly metadata: TufUpdateFiles;
      readonly target: { readonly name: string; readonly length: number; readonly sha256: string };
      /** The component's anti-rollback floor (e-fuses for the OS). */
      readonly securityVersion: number;
      readonly nowMs: number;
      readonly reply: (verdict: UpdateVerdict) => void;
    };
