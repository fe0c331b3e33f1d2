import { requestMac } from '../crypto/index.js';
import { encodeAuthenticatedRequest } from '../../proto/codec/index.js';
import type { DeviceOp } from '../../proto/codec/index.js';

/**
 * The device's side of a session (see actors/crypto/session.ts): the ID and key its last
 * attestation opened, and the request counter. Every request after attestation is sealed with
 * it; the counter never repeats within a session.
 */
export class DeviceSession {
  #counter = 0;

  constructor(
    readonly sessionId: Uint8Array,
    readonly key: Uint8Array,
    readonly expiresAtMs: number,
  ) {}

  /** Wraps an encoded request body for `op`: session ID, the next counter, and the MAC. */
  seal(op: DeviceOp, body: Uint8Array): Uint8Array {
    const counter = ++this.#counter;
    return encodeAuthenticatedRequest({
      body,
      sessionId: this.sessionId,
      counter,
      mac: requestMac(this.key, op, counter, body),
    });
  }

  /** Requests sealed so far. */
  get counter(): number {
    return this.#counter;
  }
}

/**
 * Where a device's current session lives, shared by the parts of one device that talk to the
 * service (the device shell sets it on attestation; the update agent and the error reporter read
 * it). `null` before the first attestation.
 */
export class SessionSlot {
  current: DeviceSession | null = null;
}
