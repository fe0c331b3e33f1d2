/**
 * Read scenario YAML: syntax errors are reported like validation errors (with line and column),
 * then the document is compiled with its text so every problem carries a line number.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, isAlias, parseDocument, visit } from 'yaml';
import type { Document } from 'yaml';
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
  const unresolved = unresolvedAliases(doc).map((alias): ScenarioIssue => {
    const { line, col } = lineCounter.linePos(alias.offset);
    const message = `YAML error: alias *${alias.source} refers to no anchor &${alias.source} before it`;
    return { path: [], message, line, column: col };
  });
  if (unresolved.length > 0) throw new ScenarioError(unresolved, { file });
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // yaml throws a ReferenceError for aliases that expand too far (a "billion laughs" file).
    const message = `YAML error: ${(error as Error).message}`;
    throw new ScenarioError([{ path: [], message }], { file, cause: error });
  }
  return compileScenario(value, { file, text });
}

/**
 * Aliases (`*a`) with no anchor (`&a`) before them, with their offsets in the text. yaml reports
 * them only when the document is converted (a bare ReferenceError from `toJS`), without a position.
 */
function unresolvedAliases(doc: Document): { source: string; offset: number }[] {
  // One pass in document order, as Alias.resolve looks for an anchor set before the alias.
  const anchors = new Set<string>();
  const found: { source: string; offset: number }[] = [];
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) {
        if (!anchors.has(node.source)) found.push({ source: node.source, offset: node.range?.[0] ?? 0 });
      } else if (node.anchor !== undefined) anchors.add(node.anchor);
    },
  });
  return found;
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
