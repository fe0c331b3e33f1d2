import { unwrapSessionKey } from '../crypto/index.js';
import type { SessionMsg } from '../../proto/codec/index.js';
import { DeviceSession } from '../device/session.js';
import type { ManufacturedIdentity } from './identity.js';

/** Opens the session an attestation reply carries (unwraps its key); `nonce` is the attestation's. */
export type SessionOpener = (session: SessionMsg, nonce: Uint8Array) => DeviceSession;

/**
 * The security core's session capability: unwrapping needs the client private key, which never
 * leaves the core, so the core hands out this function instead of the key.
 * @throws InvalidPublicKeyError when the service's key is not a P-256 point.
 */
export function sessionOpener(identity: Pick<ManufacturedIdentity, 'clientScalar'>): SessionOpener {
  return (session, nonce) =>
    new DeviceSession(
      session.sessionId,
      unwrapSessionKey(identity.clientScalar, session, nonce, session.sessionId),
      session.expiresAtMs,
    );
}
