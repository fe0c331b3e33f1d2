import type { KeyObject } from 'node:crypto';
import { deriveP256Key, deviceIdFromPublicKey, privateKeyFromScalar, sha256 } from '../crypto/index.js';
import { parseDeviceId } from '../../proto/codec/index.js';
import type { DeviceId } from '../../proto/codec/index.js';

/** What the silicon vendor publishes about a device (the endorsement); no secrets. */
export interface DevicePublicIdentity {
  readonly deviceId: DeviceId;
  readonly attestationPublicKey: Uint8Array;
  readonly clientPublicKey: Uint8Array;
}

/**
 * A device identity as fused at manufacture. The private keys are handed to exactly one
 * security-core actor at spawn and never appear in a message.
 */
export interface ManufacturedIdentity extends DevicePublicIdentity {
  readonly attestationKey: KeyObject;
  /** The client private scalar: it only ever takes part in native ECDH (session keys). */
  readonly clientScalar: Uint8Array;
}

/**
 * Manufactures a device from its seed: the unique device secret (UDS) is SHA-256 of the seed,
 * and DICE-style HKDF-SHA256 derivations of the UDS give the attestation key pair and the
 * general-use (client) key pair. The same seed always yields the same device; a cloned device
 * is simply a second device built from the same seed.
 */
export function manufactureIdentity(seed: string): ManufacturedIdentity {
  const uds = sha256(new TextEncoder().encode(`sphere-uds/${seed}`));
  const attestation = deriveP256Key(uds, 'sphere/dice/attestation-key');
  const client = deriveP256Key(uds, 'sphere/dice/client-key');
  const deviceId = parseDeviceId(deviceIdFromPublicKey(attestation.publicKey));
  if (deviceId === null) throw new Error('derived device ID is not 128 hex characters');
  return {
    deviceId,
    attestationPublicKey: attestation.publicKey,
    clientPublicKey: client.publicKey,
    attestationKey: privateKeyFromScalar(attestation.privateScalar, attestation.publicKey),
    clientScalar: client.privateScalar,
  };
}

/** The public half of an identity, as endorsed. */
export function publicIdentity(id: DevicePublicIdentity): DevicePublicIdentity {
  return {
    deviceId: id.deviceId,
    attestationPublicKey: id.attestationPublicKey,
    clientPublicKey: id.clientPublicKey,
  };
}
