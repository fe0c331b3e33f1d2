import type { ErrorInfo, Result } from '../../actors/runtime/index.js';

/**
 * One wave's cumulative target: a share (0, 1] of the group's population, or an absolute device
 * count. Wave k includes every device of waves 1..k-1 plus its own.
 */
export type WaveSpec = { readonly share: number } | { readonly count: number };

/** What an operator (or a scenario file) asks for; validated once by {@link compileRolloutConfig}. */
export interface RolloutConfigInput {
  readonly waves: readonly WaveSpec[];
  /** Share [0, 1] of a wave's devices that must succeed before the next wave opens. */
  readonly successThreshold: number;
  /** Halt when failures reach `count` OR `failures / attempted` reaches `share`; at least one is required. */
  readonly errorThreshold: { readonly count?: number; readonly share?: number };
  /** On halt, order every device that succeeded with the image back to its previous version. */
  readonly autoRollback: boolean;
  /** Simulated ms to wait after a wave meets its success threshold before opening the next one. */
  readonly pauseBetweenWavesMs?: number;
}

/**
 * A validated configuration. Plain JSON (no `undefined`): it is persisted inside the rollout state.
 * Invariants: 1..{@link MAX_WAVES} waves; consecutive share waves strictly increase, consecutive
 * count waves strictly increase; the last wave is `{ share: 1 }`; at least one error threshold.
 */
export interface RolloutConfig {
  readonly waves: readonly WaveSpec[];
  readonly successThreshold: number;
  readonly errorThreshold: { readonly count: number | null; readonly share: number | null };
  readonly autoRollback: boolean;
  readonly pauseBetweenWavesMs: number;
}

/** A refused configuration: `field` names the offending input path, e.g. `waves[2].share`. */
export interface RolloutConfigError extends ErrorInfo {
  readonly code: 'ROLLOUT_INVALID_CONFIG';
  readonly field: string;
}

export const MAX_WAVES = 100;

function invalid(field: string, message: string): { readonly ok: false; readonly error: RolloutConfigError } {
  return { ok: false, error: { code: 'ROLLOUT_INVALID_CONFIG', field, message: `${field}: ${message}` } };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isShare(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= 1;
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
}

/**
 * Validates and normalises a rollout configuration. Accepts untrusted input (e.g. parsed JSON):
 * every field is checked at run time. Never throws.
 */
export function compileRolloutConfig(input: unknown): Result<RolloutConfig, RolloutConfigError> {
  if (!isRecord(input)) return invalid('config', 'must be an object');
  const { waves, successThreshold, errorThreshold, autoRollback, pauseBetweenWavesMs } = input;
  if (!Array.isArray(waves) || waves.length === 0) return invalid('waves', 'must be a non-empty array');
  if (waves.length > MAX_WAVES) return invalid('waves', `at most ${MAX_WAVES} waves`);
  const compiled: WaveSpec[] = [];
  let lastShare = 0;
  let lastCount = 0;
  for (const [i, w] of (waves as unknown[]).entries()) {
    const field = `waves[${i}]`;
    if (!isRecord(w)) return invalid(field, 'must be { share } or { count }');
    const hasShare = w['share'] !== undefined;
    const hasCount = w['count'] !== undefined;
    if (hasShare === hasCount) return invalid(field, 'must have exactly one of share or count');
    if (hasShare) {
      const share = w['share'];
      if (!isShare(share)) return invalid(`${field}.share`, 'must be a number in (0, 1]');
      if (share <= lastShare) return invalid(`${field}.share`, 'must exceed the previous share wave');
      lastShare = share;
      compiled.push({ share });
    } else {
      const count = w['count'];
      if (!isPositiveInt(count)) return invalid(`${field}.count`, 'must be an integer >= 1');
      if (count <= lastCount) return invalid(`${field}.count`, 'must exceed the previous count wave');
      lastCount = count;
      compiled.push({ count });
    }
  }
  const last = compiled[compiled.length - 1];
  if (last === undefined || !('share' in last) || last.share !== 1)
    return invalid(`waves[${compiled.length - 1}]`, 'the last wave must be { share: 1 } (reach 100%)');
  if (typeof successThreshold !== 'number' || !(successThreshold >= 0 && successThreshold <= 1))
    return invalid('successThreshold', 'must be a number in [0, 1]');
  if (!isRecord(errorThreshold)) return invalid('errorThreshold', 'must be an object');
  const { count, share } = errorThreshold;
  if (count !== undefined && !isPositiveInt(count))
    return invalid('errorThreshold.count', 'must be an integer >= 1');
  if (share !== undefined && !isShare(share))
    return invalid('errorThreshold.share', 'must be a number in (0, 1]');
  if (count === undefined && share === undefined)
    return invalid('errorThreshold', 'needs count, share or both (an unbounded error budget is refused)');
  if (typeof autoRollback !== 'boolean') return invalid('autoRollback', 'must be a boolean');
  if (
    pauseBetweenWavesMs !== undefined &&
    !(
      typeof pauseBetweenWavesMs === 'number' &&
      Number.isSafeInteger(pauseBetweenWavesMs) &&
      pauseBetweenWavesMs >= 0
    )
  )
    return invalid('pauseBetweenWavesMs', 'must be an integer >= 0');
  return {
    ok: true,
    value: {
      waves: compiled,
      successThreshold,
      errorThreshold: { count: count ?? null, share: share ?? null },
      autoRollback,
      pauseBetweenWavesMs: pauseBetweenWavesMs ?? 0,
    },
  };
}
