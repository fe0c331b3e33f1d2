import { createHmac } from 'node:crypto';
import {
  deriveSessionKey,
  macEqual,
  newSessionId,
  requestMac,
  sessionExpiry,
} from '../../actors/crypto/index.js';
import { REJECT_CODES } from '../../proto/codec/index.js';
import type { AuthenticatedRequestMsg, DeviceId, Rejection } from '../../proto/codec/index.js';

/** How far behind the highest counter a request may arrive (concurrent requests reorder). */
export const REPLAY_WINDOW = 64;

interface SessionEntry {
  /** '' for a quarantined identity: every session issued so far is void. */
  readonly sessionId: string;
  readonly expiresAtMs: number;
  /** Its key, derived once when it became current (every request checks a MAC under it). */
  readonly key: Uint8Array;
  /** Highest counter accepted, and a bitmap of the REPLAY_WINDOW counters below it (bit 0 = highest). */
  highest: number;
  seen: bigint;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');

/** Why a request was refused, for metrics and alerts: the code, a message, and who tried. */
export type SessionVerdict =
  { readonly ok: true } | { readonly ok: false; readonly error: Rejection; readonly actor?: DeviceId };

/**
 * The sessions of one shard's devices: which session is current for each device, and the replay
 * window of its request counters. Keys are never stored: each is derived from the service's
 * session secret (shared by every shard through the journal's genesis), so a shard that takes a
 * partition over verifies its devices' sessions at once; the partition log carries which session
 * is current. The replay window lives in memory: after a move the new owner accepts a counter
 * it has not seen, so a request captured before the move could be accepted once more. Every
 * authenticated operation is idempotent (reads, or writes keyed by a report ID), which is what
 * makes that safe.
 */
export class SessionBook {
  readonly #secret: Uint8Array;
  readonly #byDevice = new Map<DeviceId, SessionEntry>();
  /** Session ID (hex) → device, to recognise a session used for another device's request. */
  readonly #owner = new Map<string, DeviceId>();

  constructor(serviceSecret: Uint8Array) {
    this.#secret = new Uint8Array(
      createHmac('sha256', serviceSecret).update('sphere/session-secret').digest(),
    );
  }

  /** A new session for `deviceId` until `expiresAtMs`: its ID and key (the key goes to the device wrapped). */
  issue(
    deviceId: DeviceId,
    expiresAtMs: number,
    random8: Uint8Array,
  ): { sessionId: Uint8Array; key: Uint8Array } {
    const sessionId = newSessionId(expiresAtMs, random8);
    return { sessionId, key: deriveSessionKey(this.#secret, deviceId, sessionId) };
  }

  /** Makes `sessionIdHex` the device's current session (after its attestation is stored); `null` forgets it. */
  adopt(deviceId: DeviceId, sessionIdHex: string | null): void {
    const old = this.#byDevice.get(deviceId);
    if (old?.sessionId === sessionIdHex) return;
    if (old !== undefined) this.#owner.delete(old.sessionId);
    if (sessionIdHex === null || sessionIdHex === '') {
      this.#byDevice.delete(deviceId);
      return;
    }
    const sessionId = Buffer.from(sessionIdHex, 'hex');
    this.#byDevice.set(deviceId, {
      sessionId: sessionIdHex,
      expiresAtMs: sessionExpiry(sessionId),
      key: deriveSessionKey(this.#secret, deviceId, sessionId),
      highest: 0,
      seen: 0n,
    });
    this.#owner.set(sessionIdHex, deviceId);
  }

  /** Voids every session of a quarantined identity (two live instances of one key were seen). */
  revoke(deviceId: DeviceId): void {
    const old = this.#byDevice.get(deviceId);
    if (old !== undefined) this.#owner.delete(old.sessionId);
    this.#byDevice.set(deviceId, {
      sessionId: '',
      expiresAtMs: Number.MAX_SAFE_INTEGER,
      key: new Uint8Array(0),
      highest: 0,
      seen: 0n,
    });
  }

  /** The device's current session ID (hex), if any. */
  current(deviceId: DeviceId): string | null {
    return this.#byDevice.get(deviceId)?.sessionId ?? null;
  }

  get size(): number {
    return this.#byDevice.size;
  }

  /**
   * Checks that `auth` is a fresh request of `deviceId`'s current session for `op`, and records
   * its counter. Order: whose session it is, the MAC, expiry, then the counter.
   */
  verify(deviceId: DeviceId, op: string, auth: AuthenticatedRequestMsg, nowMs: number): SessionVerdict {
    const sid = hex(auth.sessionId);
    const owner = this.#owner.get(sid);
    if (owner !== undefined && owner !== deviceId) {
      // A real session of another device (its MAC checks under that device's key).
      if (this.#macValid(owner, op, auth)) {
        return {
          ok: false,
          actor: owner,
          error: {
            code: REJECT_CODES.IDENTITY_MISMATCH,
            message: `this session belongs to device ${owner.slice(0, 16)}…, not to the device named in the request; a device may act only as itself`,
          },
        };
      }
    }
    if (!this.#macValid(deviceId, op, auth)) {
      return {
        ok: false,
        error: {
          code: REJECT_CODES.BAD_MAC,
          message: `request MAC does not verify under this device's session ${sid.slice(0, 8)}…; sign each request with the session key from your last attestation`,
        },
      };
    }
    const expiresAtMs = sessionExpiry(auth.sessionId);
    if (expiresAtMs <= nowMs) {
      return {
        ok: false,
        error: {
          code: REJECT_CODES.SESSION_EXPIRED,
          message: 'session has expired with its certificates; attest again',
          serviceTimeMs: nowMs,
        },
      };
    }
    let entry = this.#byDevice.get(deviceId);
    if (entry?.sessionId === '') {
      return {
        ok: false,
        error: {
          code: REJECT_CODES.SESSION_EXPIRED,
          message: 'this identity is quarantined (two live devices share its key); its sessions are void',
        },
      };
    }
    if (entry !== undefined && entry.sessionId !== sid) {
      // The service issued it (the MAC checks) but a later attestation replaced it.
      if (expiresAtMs <= entry.expiresAtMs) {
        return {
          ok: false,
          error: {
            code: REJECT_CODES.SESSION_EXPIRED,
            message: 'a newer attestation replaced this session; use the session from your last attestation',
          },
        };
      }
      // Newer than the one this shard knew (issued by another shard before a move): adopt it.
      entry = undefined;
    }
    if (entry === undefined) {
      this.adopt(deviceId, sid);
      entry = this.#byDevice.get(deviceId);
      if (entry === undefined) throw new Error('unreachable: adopted session missing');
    }
    if (!acceptCounter(entry, auth.counter)) {
      return {
        ok: false,
        error: {
          code: REJECT_CODES.REPLAYED,
          message: `request counter ${auth.counter} was already used in this session (highest ${entry.highest}); a device never repeats a counter, so this is a replay`,
        },
      };
    }
    return { ok: true };
  }

  #macValid(deviceId: DeviceId, op: string, auth: AuthenticatedRequestMsg): boolean {
    const entry = this.#byDevice.get(deviceId);
    const key =
      entry !== undefined && entry.sessionId === hex(auth.sessionId)
        ? entry.key
        : deriveSessionKey(this.#secret, deviceId, auth.sessionId);
    return macEqual(requestMac(key, op, auth.counter, auth.body), auth.mac);
  }
}

/** Sliding-window replay check (as in IPsec): accepts each counter once, up to REPLAY_WINDOW behind. */
function acceptCounter(e: SessionEntry, counter: number): boolean {
  if (counter > e.highest) {
    const shift = counter - e.highest;
    e.seen =
      shift >= REPLAY_WINDOW ? 1n : ((e.seen << BigInt(shift)) | 1n) & ((1n << BigInt(REPLAY_WINDOW)) - 1n);
    e.highest = counter;
    return true;
  }
  const behind = e.highest - counter;
  if (behind >= REPLAY_WINDOW) return false;
  const bit = 1n << BigInt(behind);
  if ((e.seen & bit) !== 0n) return false;
  e.seen |= bit;
  return true;
}
