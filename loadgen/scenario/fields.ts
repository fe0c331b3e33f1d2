/**
 * Building blocks of the scenario schema: fields whose written value a parser converts
 * (durations, sizes, shares), with errors that name the offending sub-path.
 */
import { z } from 'zod';
import { describeValue, parseDuration } from './duration.js';

/** Thrown by field parsers; `path` is relative to the field. */
export class FieldError extends Error {
  constructor(
    message: string,
    readonly path: readonly (string | number)[] = [],
  ) {
    super(message);
  }
}

/**
 * A field whose value `parse` converts (durations, rates, shares...). `undefined` (absent) is
 * passed through unless the field is required. Parse failures become zod issues at the field.
 */
export function field<T>(parse: (value: unknown) => T, options: { required?: boolean } = {}) {
  return z.unknown().transform((value, ctx): T | undefined => {
    if (value === undefined || value === null) {
      if (options.required === true) ctx.addIssue({ code: 'custom', message: 'required' });
      return undefined;
    }
    try {
      return parse(value);
    } catch (error) {
      const path = error instanceof FieldError ? [...error.path] : [];
      ctx.addIssue({ code: 'custom', message: (error as Error).message, path });
      return z.NEVER;
    }
  });
}

export function durationField(options: { required?: boolean; positive?: boolean } = {}) {
  return field((value) => {
    const ms = parseDuration(value);
    if (options.positive === true && ms <= 0)
      throw new FieldError(`must be longer than 0, got ${describeValue(value)}`);
    return ms;
  }, options);
}
