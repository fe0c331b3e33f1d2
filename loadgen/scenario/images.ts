/**
 * Update images of a scenario as pure functions of the seed: the bytes the run uploads and which
 * devices a defective image breaks. The operator side (uploading) and the device side (deciding
 * whether an install boots) compute the same answers without talking to each other.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import { createRng } from './rng.js';
import type { ImageSpec } from './schema.js';

/**
 * The content of `image`: `image.sizeBytes` bytes from a seeded sfc32 stream keyed by the scenario
 * seed and the image id (fork `image/<id>`). Same seed and id, same bytes; different ids give
 * unrelated content. Cheap: about a millisecond per MiB.
 */
export function imageContent(seed: string, image: Pick<ImageSpec, 'id' | 'sizeBytes'>): Uint8Array {
  return createRng(seed).fork(`image/${image.id}`).bytes(image.sizeBytes);
}

const TWO_POW_32 = 2 ** 32;

/**
 * Whether `imageId` is defective on `deviceId`: the first 32 bits of
 * SHA-256(`<seed>|<deviceId>|<imageId>`), as a fraction of 2^32, are below `defectRate`.
 * Deterministic per (seed, device, image), independent across devices and images, so over many
 * devices the defective share approaches `defectRate`. A rate of 0 never and 1 always is defective.
 */
export function imageDefective(seed: string, deviceId: string, imageId: string, defectRate: number): boolean {
  if (!(defectRate > 0)) return false;
  if (defectRate >= 1) return true;
  const digest = sha256(utf8ToBytes(`${seed}|${deviceId}|${imageId}`));
  const first = new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0, false);
  return first / TWO_POW_32 < defectRate;
}
