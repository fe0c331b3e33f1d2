/**
 * The seeded PRNG fleet planning uses: the actor runtime's sfc32 `createRng` (SHA-256 keyed,
 * `fork(label)` for independent streams), so a scenario seed means the same thing everywhere.
 */
export { createRng } from '../../actors/runtime/index.js';
export type { Rng } from '../../actors/runtime/index.js';
