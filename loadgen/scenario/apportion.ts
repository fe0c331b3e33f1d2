/**
 * Largest-remainder (Hamilton) apportionment: split `total` whole items in proportion to
 * `weights` so the parts sum to exactly `total` and each part is the floor or ceiling of its
 * exact quota. Ties in the remainder go to the earlier weight, so the result is deterministic.
 *
 * @param total a non-negative integer
 * @param weights non-negative weights; they need not sum to 1 (they are normalised)
 * @returns integer parts, same order as `weights`; all zero when the weights sum to zero
 */
export function apportion(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((acc, w) => acc + w, 0);
  if (sum <= 0 || total <= 0) return weights.map(() => 0);
  const quotas = weights.map((w) => (w / sum) * total);
  const parts = quotas.map((q) => Math.floor(q));
  let left = total - parts.reduce((acc, p) => acc + p, 0);
  const order = quotas
    .map((q, i) => ({ i, remainder: q - Math.floor(q) }))
    .sort((a, b) => b.remainder - a.remainder || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    parts[i] = (parts[i] ?? 0) + 1;
    left--;
  }
  return parts;
}
