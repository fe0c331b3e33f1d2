import type { ActorDefinition } from '../runtime/index.js';
import { extendMeasurement, signP1363 } from '../crypto/index.js';
import { encodeEvidence, BOOT_ID_BYTES } from '../../proto/codec/index.js';
import type { CoreMessage } from './messages.js';
import { buildEvidence, recordBoot } from './logic.js';
import type { CoreBootState } from './logic.js';
import type { ManufacturedIdentity } from './identity.js';

/**
 * The security-core actor (a Pluton-style root of trust). Its state holds the device's private
 * keys; nothing it sends carries them. A core that has not booted ignores attest requests (the
 * device times out and retries), which is what real silicon does before measured boot completes.
 */
export function securityCoreDefinition(
  name: string,
  identity: ManufacturedIdentity,
): ActorDefinition<CoreBootState, CoreMessage> {
  const initial: CoreBootState = {
    deviceId: identity.deviceId,
    attestationPublicKey: identity.attestationPublicKey,
    clientPublicKey: identity.clientPublicKey,
    bootCount: 0,
  };
  // The boot counter is fuse-backed: a restart of the actor (a crashed core) keeps it.
  let persistedBootCount = 0;
  return {
    name,
    init: () => ({ ...initial, bootCount: persistedBootCount }),
    receive(state, msg, ctx) {
      switch (msg.type) {
        case 'core.boot': {
          const next = recordBoot(
            state,
            msg.images,
            msg.osVersion,
            msg.securityVersion,
            ctx.rng.bytes(BOOT_ID_BYTES),
            extendMeasurement,
          );
          persistedBootCount = next.bootCount;
          const boot = next.boot;
          if (boot !== undefined) {
            msg.replyTo.tell({
              type: 'device.core-booted',
              deviceId: next.deviceId,
              bootId: boot.bootId,
              bootCount: next.bootCount,
            });
          }
          return next;
        }
        case 'core.attest': {
          const evidence = buildEvidence(state, msg.nonce, msg.deviceTimeMs);
          if (evidence === null) return state;
          const bytes = encodeEvidence(evidence);
          msg.replyTo.tell({
            type: 'device.evidence',
            epoch: msg.epoch,
            request: { evidence: bytes, signature: signP1363(identity.attestationKey, bytes) },
          });
          return state;
        }
        default:
          return msg satisfies never;
      }
    },
  };
}
