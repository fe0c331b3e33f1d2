import type { ActorDefinition } from '../runtime/index.js';
import { extendMeasurement, signP1363 } from '../crypto/index.js';
import { encodeEvidence, BOOT_ID_BYTES } from '../../proto/codec/index.js';
import { TUF_ERROR_CODES, createTufClientState, updateMetadata, verifyTargetDigest } from '../tuf/index.js';
import type { TufClientState, TufJson } from '../tuf/index.js';
import type { CoreMessage, UpdateVerdict } from './messages.js';
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
  opts: {
    /** The tenant's TUF root (`1.root.json`) provisioned at claim; without it updates are refused. */
    readonly updateRoot?: TufJson;
  } = {},
): ActorDefinition<CoreBootState, CoreMessage> {
  const initial: CoreBootState = {
    deviceId: identity.deviceId,
    attestationPublicKey: identity.attestationPublicKey,
    clientPublicKey: identity.clientPublicKey,
    bootCount: 0,
  };
  // The boot counter is fuse-backed: a restart of the actor (a crashed core) keeps it.
  let persistedBootCount = 0;
  // Trusted TUF metadata lives in the core's flash: it survives reboots and actor restarts.
  const provisioned = opts.updateRoot === undefined ? null : createTufClientState(opts.updateRoot);
  let trusted: TufClientState | null = provisioned?.ok === true ? provisioned.value : null;
  function verifyUpdate(msg: Extract<CoreMessage, { type: 'core.verify-update' }>): UpdateVerdict {
    if (trusted === null) {
      return {
        ok: false,
        code: TUF_ERROR_CODES.NOT_READY,
        message:
          provisioned === null
            ? 'no update root provisioned'
            : `provisioned update root is invalid: ${provisioned.ok ? '' : provisioned.error.message}`,
        rootVersion: 0,
      };
    }
    const refreshed = updateMetadata(trusted, msg.metadata, msg.nowMs);
    if (!refreshed.ok) return { ...refreshed.error, ok: false, rootVersion: trusted.root.signed.version };
    trusted = refreshed.value;
    const checked = verifyTargetDigest(trusted, msg.target.name, msg.target, msg.securityVersion);
    const rootVersion = trusted.root.signed.version;
    return checked.ok ? { ok: true, rootVersion } : { ...checked.error, ok: false, rootVersion };
  }

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
        case 'core.verify-update': {
          msg.reply(verifyUpdate(msg));
          return state;
        }
        default:
          return msg satisfies never;
      }
    },
  };
}
