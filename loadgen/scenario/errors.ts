/** One problem found in a scenario, located by field path and (when the YAML text is known) line. */
export interface ScenarioIssue {
  /** Field path, e.g. `['stages', 1, 'ramp', 'rate']`; empty for file-level problems. */
  readonly path: readonly (string | number)[];
  /** What is wrong, without the path: `expected a rate like "20/s", got "fast"`. */
  readonly message: string;
  /** 1-based line in the YAML text, when known. */
  readonly line?: number;
  /** 1-based column in the YAML text, when known. */
  readonly column?: number;
}

/**
 * Thrown when a scenario cannot be read or compiled. `message` lists EVERY problem, one per line,
 * each as `<field path>: <problem>` followed by `(line L, column C)` when the YAML text was given.
 * `issues` holds the same problems as data.
 */
export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
  readonly issues: readonly ScenarioIssue[];
  /** The scenario file, when known. */
  readonly file: string | undefined;

  constructor(
    issues: readonly ScenarioIssue[],
    options: { file?: string | undefined; cause?: unknown } = {},
  ) {
    super(
      formatScenarioIssues(issues, options.file),
      options.cause === undefined ? {} : { cause: options.cause },
    );
    this.issues = issues;
    this.file = options.file;
  }
}

/** `stages[1].ramp.rate` from `['stages', 1, 'ramp', 'rate']`; keys that are not identifiers are quoted. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** The text of a {@link ScenarioError}: a header line, then one `  - ` line per issue. */
export function formatScenarioIssues(issues: readonly ScenarioIssue[], file?: string): string {
  const what = file === undefined ? 'scenario' : `scenario ${file}`;
  const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
  const lines = issues.map((issue) => {
    const where =
      issue.line === undefined
        ? ''
        : ` (line ${issue.line}${issue.column === undefined ? '' : `, column ${issue.column}`})`;
    const path = formatPath(issue.path);
    return `  - ${path === '' ? '' : `${path}: `}${issue.message}${where}`;
  });
  return `invalid ${what} (${count}):\n${lines.join('\n')}`;
}
