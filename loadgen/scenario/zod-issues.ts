/**
 * Plain-language messages for zod issues, with "did you mean" suggestions for typos.
 * Used by the scenario compiler; messages never repeat the field path (the caller shows it).
 */
import type { z } from 'zod';
import { describeValue } from './duration.js';
import type { ScenarioIssue } from './errors.js';

const TYPE_NAMES: Readonly<Record<string, string>> = {
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
};

/**
 * Turn one zod issue into scenario issues with plain-language messages (`required`,
 * `expected a number, got "x"`, `unknown key "sizee" (did you mean "size"?)`). Unknown keys
 * become one issue per key whose path ends with the key. `schema` is used for suggestions.
 */
export function fromZodIssue(issue: z.core.$ZodIssue, schema: z.ZodType): ScenarioIssue[] {
  const path = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
  switch (issue.code) {
    case 'invalid_type': {
      const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
      if (issue.input === undefined) return [{ path, message: `required (expected ${expected})` }];
      const hint =
        issue.expected === 'string' && typeof issue.input === 'number' ? ' (quote it in YAML)' : '';
      if (issue.expected === 'int' && typeof issue.input === 'number') {
        return [{ path, message: `expected a whole number, got ${issue.input}` }];
      }
      return [{ path, message: `expected ${expected}, got ${describeValue(issue.input)}${hint}` }];
    }
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const suggestion = closest(key, knownKeysAt(schema, path));
        const hint = suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`;
        return { path: [...path, key], message: `unknown key "${key}"${hint}` };
      });
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const bound = small ? issue.minimum : issue.maximum;
      const got = describeValue(issue.input);
      if (issue.origin === 'array')
        return [{ path, message: `needs at least ${bound} entr${bound === 1 ? 'y' : 'ies'}` }];
      if (issue.origin === 'string') return [{ path, message: 'must not be empty' }];
      const op = small ? (issue.inclusive === true ? '>=' : '>') : issue.inclusive === true ? '<=' : '<';
      return [{ path, message: `must be ${op} ${bound}, got ${got}` }];
    }
    case 'invalid_value':
      return [
        {
          path,
          message: `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(issue.input)}`,
        },
      ];
    case 'invalid_union':
      return [{ path, message: `expected a string or a list of strings, got ${describeValue(issue.input)}` }];
    default:
      return [{ path, message: issue.message }];
  }
}

/** Keys `root` allows at `path`, for "did you mean" hints (empty if not an object there). */
function knownKeysAt(root: z.ZodType, path: readonly (string | number)[]): string[] {
  let schema: unknown = root;
  for (const segment of [...path, null]) {
    // Unwrap wrappers until an object, array or record is reached.
    for (let guard = 0; guard < 10; guard++) {
      const def = (schema as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
      if (def === undefined) return [];
      if (def.type === 'optional' || def.type === 'default' || def.type === 'nullable')
        schema = def.innerType;
      else if (def.type === 'pipe') schema = def.in;
      else break;
    }
    const def = (schema as { _zod: { def: Record<string, unknown> } })._zod.def;
    if (segment === null) return def.type === 'object' ? Object.keys(def.shape as object) : [];
    if (def.type === 'object') schema = (def.shape as Record<string, unknown>)[String(segment)];
    else if (def.type === 'array') schema = def.element;
    else if (def.type === 'record') schema = def.valueType;
    else return [];
    if (schema === undefined) return [];
  }
  return [];
}

/** The candidate closest to `word` by edit distance, if it is close enough to be a typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
