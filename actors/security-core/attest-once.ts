import type { Transport } from '../runtime/index.js';
import { extendMeasurement, signP1363 } from '../crypto/index.js';
import {
  BOOT_ID_BYTES,
  decodeAttestReply,
  decodeChallengeReply,
  deviceSubject,
  encodeAttestRequest,
  encodeChallengeRequest,
  encodeEvidence,
  partitionOf,
} from '../../proto/codec/index.js';
import type { DeviceSession } from '../device/session.js';
import type { ImageMeasurement } from './firmware.js';
import type { ManufacturedIdentity } from './identity.js';
import { buildEvidence, recordBoot } from './logic.js';
import { sessionOpener } from './session.js';

/**
 * One measured boot and one attestation, outside the actor system: for benchmarks and tests
 * that drive update agents without device actors (every request after attestation needs the
 * session this returns). Throws with the service's code when it refuses.
 */
export async function attestOnce(opts: {
  readonly transport: Transport;
  readonly identity: ManufacturedIdentity;
  readonly images: readonly ImageMeasurement[];
  readonly osVersion: string;
  readonly securityVersion: number;
  readonly partitions: number;
  /** The device's clock (simulated ms); the service refuses one too far from its own. */
  readonly deviceTimeMs: number;
  readonly timeoutMs: number;
  /** 16 bytes for the boot ID (from the caller's seeded RNG). */
  readonly bootId: Uint8Array;
}): Promise<DeviceSession> {
  const { identity, transport } = opts;
  if (opts.bootId.length !== BOOT_ID_BYTES) throw new RangeError(`boot ID must be ${BOOT_ID_BYTES} bytes`);
  const booted = recordBoot(
    {
      deviceId: identity.deviceId,
      attestationPublicKey: identity.attestationPublicKey,
      clientPublicKey: identity.clientPublicKey,
      bootCount: 0,
    },
    opts.images,
    opts.osVersion,
    opts.securityVersion,
    opts.bootId,
    extendMeasurement,
  );
  const partition = partitionOf(identity.deviceId, opts.partitions);
  const timeout = { timeoutMs: opts.timeoutMs };
  const challenge = decodeChallengeReply(
    await transport.request(
      deviceSubject('challenge', partition),
      encodeChallengeRequest({ deviceId: identity.deviceId }),
      timeout,
    ),
  );
  if (!challenge.ok) throw new Error(`challenge: ${challenge.error.message}`);
  if (!challenge.value.ok)
    throw new Error(`challenge: ${challenge.value.error.code}: ${challenge.value.error.message}`);
  const nonce = challenge.value.value.nonce;
  const evidence = buildEvidence(booted, nonce, opts.deviceTimeMs);
  if (evidence === null) throw new Error('the security core has not booted');
  const bytes = encodeEvidence(evidence);
  const reply = decodeAttestReply(
    await transport.request(
      deviceSubject('attest', partition),
      encodeAttestRequest({ evidence: bytes, signature: signP1363(identity.attestationKey, bytes) }),
      timeout,
    ),
  );
  if (!reply.ok) throw new Error(`attest: ${reply.error.message}`);
  if (!reply.value.ok) throw new Error(`attest: ${reply.value.error.code}: ${reply.value.error.message}`);
  return sessionOpener(identity)(reply.value.value.session, nonce);
}
