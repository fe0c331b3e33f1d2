import type { ActorRef } from '../runtime/index.js';
import type { AttestRequestMsg, DeviceId } from '../../proto/codec/index.js';
import type { ImageMeasurement } from './firmware.js';

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
    };
