/**
 * Read scenario YAML: syntax errors are reported like validation errors (with line and column),
 * then the document is compiled with its text so every problem carries a line number.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { ScenarioError } from './errors.js';
import type { ScenarioIssue } from './errors.js';
import { compileScenario } from './schema.js';
import type { Scenario } from './schema.js';

/**
 * Parse and compile scenario YAML text.
 * @param file shown in error messages (not read)
 * @throws {ScenarioError} for YAML syntax errors (all of them, with line and column) or any
 *   validation problem (see {@link compileScenario})
 */
export function parseScenarioYaml(text: string, file?: string): Scenario {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((error): ScenarioIssue => {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      const message = error.message.split('\n')[0] ?? error.message;
      return { path: [], message: `YAML syntax error: ${message}`, line, column: col };
    });
    throw new ScenarioError(issues, { file, cause: doc.errors[0] });
  }
  return compileScenario(doc.toJS({ maxAliasCount: 100 }) as unknown, { file, text });
}

/**
 * Read a scenario file (YAML, which includes JSON), parse it and compile it.
 * @throws {ScenarioError} when the file cannot be read (with the I/O error as `cause`), has
 *   YAML syntax errors, or does not validate
 */
export async function loadScenarioFile(path: string): Promise<Scenario> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ScenarioError([{ path: [], message: `cannot read the file (${reason})` }], {
      file: path,
      cause: error,
    });
  }
  return parseScenarioYaml(text, path);
}
