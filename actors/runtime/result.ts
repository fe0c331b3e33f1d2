/** Machine-readable error carried across process/actor boundaries. */
export interface ErrorInfo {
  /** Stable, SCREAMING_SNAKE or dotted code; callers branch on this, never on `message`. */
  readonly code: string;
  /** Human-readable detail; not part of the contract. */
  readonly message: string;
}

/** Outcome of an operation that can fail across a boundary; never thrown. */
export type Result<T, E = ErrorInfo> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

/** Successful `Result`. */
export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

/** Failed `Result`. */
export function err<E>(error: E): { readonly ok: false; readonly error: E } {
  return { ok: false, error };
}
