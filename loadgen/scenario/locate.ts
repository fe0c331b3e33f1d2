/**
 * Map scenario field paths back to lines in the YAML text, so every error points at the line
 * to fix. Locating re-parses the text with a {@link LineCounter}; it never fails: a path that
 * does not exist in the document (a missing required key) points at its deepest existing parent.
 */
import { LineCounter, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Node } from 'yaml';
import type { ScenarioIssue } from './errors.js';

/** Position of the node for `path` in `text` (1-based line and column), or `undefined`. */
export function locatePath(
  text: string,
  path: readonly (string | number)[],
): { line: number; column: number } | undefined {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, keepSourceTokens: false });
  return locateIn(doc.contents, path, lineCounter);
}

/** Add `line`/`column` to each issue whose path can be found in `text`. */
export function locateIssues(issues: readonly ScenarioIssue[], text: string): ScenarioIssue[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  return issues.map((issue) => {
    if (issue.line !== undefined) return issue;
    const pos = locateIn(doc.contents, issue.path, lineCounter);
    return pos === undefined ? issue : { ...issue, line: pos.line, column: pos.column };
  });
}

function locateIn(
  root: Node | null,
  path: readonly (string | number)[],
  lineCounter: LineCounter,
): { line: number; column: number } | undefined {
  let node: unknown = root;
  let offset = (root as { range?: [number, number, number] } | null)?.range?.[0];
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => keyText(item.key) === String(segment));
      if (pair === undefined) break;
      // Point at the key: for a nested mapping its line is where the field starts.
      offset = (pair.key as { range?: [number, number, number] } | null)?.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item: unknown = node.items[segment];
      const start = (item as { range?: [number, number, number] } | null)?.range?.[0];
      if (start === undefined) break;
      offset = start;
      node = item;
    } else {
      break;
    }
  }
  if (offset === undefined) return undefined;
  const { line, col } = lineCounter.linePos(offset);
  return { line, column: col };
}

function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}
