import type { DeviceBehaviour } from './logic.js';

/** Delay before retry number `failures` (1-based): exponential, capped, with symmetric jitter. */
export function backoffDelay(
  failures: number,
  retry: DeviceBehaviour['retry'],
  random: () => number,
): number {
  const base = Math.min(retry.maxMs, retry.initialMs * retry.multiplier ** Math.max(0, failures - 1));
  return Math.max(0, Math.round(base * (1 + retry.jitter * (2 * random() - 1))));
}
