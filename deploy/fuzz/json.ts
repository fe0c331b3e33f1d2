/**
 * Structure-aware mutations of JSON-like documents (TUF metadata, scenarios, chaos faults) and of
 * text, as data so that a shrunk counterexample names what was changed where.
 */
import fc from 'fast-check';

export type JsonPath = readonly (string | number)[];

/** One edit of a document; `node` picks a node (wrapping around the document's node count). */
export type TreeMutation =
  | { readonly kind: 'replace'; readonly node: number; readonly value: unknown }
  | { readonly kind: 'delete'; readonly node: number }
  | { readonly kind: 'add-key'; readonly node: number; readonly key: string; readonly value: unknown }
  | { readonly kind: 'duplicate'; readonly node: number }
  | { readonly kind: 'wrap'; readonly node: number };

/** Paths of every node of `doc`, the root first, in document order. */
export function nodePaths(doc: unknown, path: JsonPath = [], out: JsonPath[] = []): JsonPath[] {
  out.push(path);
  if (Array.isArray(doc)) doc.forEach((v, i) => nodePaths(v, [...path, i], out));
  else if (doc !== null && typeof doc === 'object')
    for (const [k, v] of Object.entries(doc)) nodePaths(v, [...path, k], out);
  return out;
}

function clone<T>(doc: T): T {
  return structuredClone(doc);
}

function parentOf(doc: unknown, path: JsonPath): { parent: unknown; key: string | number } | null {
  if (path.length === 0) return null;
  let parent: unknown = doc;
  for (const k of path.slice(0, -1)) parent = (parent as Record<string | number, unknown>)[k];
  return { parent, key: path[path.length - 1] ?? 0 };
}

function setOwn(target: Record<string | number, unknown>, key: string | number, value: unknown): void {
  // defineProperty: a key like "__proto__" becomes data, as JSON.parse would make it.
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Applies `m` to a copy of `doc`. */
export function mutateTree(doc: unknown, m: TreeMutation): unknown {
  const root = clone(doc);
  const paths = nodePaths(root);
  const path = paths[m.node % paths.length] ?? [];
  const at = parentOf(root, path);
  const get = (): unknown => (at === null ? root : (at.parent as Record<string | number, unknown>)[at.key]);
  const put = (value: unknown): unknown => {
    if (at === null) return value;
    setOwn(at.parent as Record<string | number, unknown>, at.key, value);
    return root;
  };
  switch (m.kind) {
    case 'replace':
      return put(clone(m.value));
    case 'delete': {
      if (at === null) return undefined;
      const p = at.parent;
      if (Array.isArray(p)) p.splice(Number(at.key), 1);
      else delete (p as Record<string, unknown>)[String(at.key)];
      return root;
    }
    case 'add-key': {
      const node = get();
      if (node === null || typeof node !== 'object') return put({ [m.key]: clone(m.value) });
      if (Array.isArray(node)) node.push(clone(m.value));
      else setOwn(node as Record<string, unknown>, m.key, clone(m.value));
      return root;
    }
    case 'duplicate': {
      if (at === null) return root;
      const p = at.parent;
      if (Array.isArray(p)) p.splice(Number(at.key), 0, clone(get()));
      else setOwn(p as Record<string, unknown>, `${String(at.key)}_`, clone(get()));
      return root;
    }
    case 'wrap':
      return put([get()]);
  }
}

/** Values that break assumptions: wrong types, edges of number ranges, odd keys and strings. */
export const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    -0,
    0.5,
    1e308,
    -1e308,
    2 ** 53,
    2 ** 53 + 2,
    2 ** 31,
    2 ** 32,
    '',
    ' ',
    '0',
    '-1',
    '1e400',
    'NaN',
    'Infinity',
    '__proto__',
    '2030-01-01T00:00:00Z',
    '99999-01-01T00:00:00Z',
    '1970-01-01T00:00:00Z',
    'sha256',
    'ed25519',
    'root',
    'targets',
    [],
    {},
    [null],
    [[]],
    [{}],
    { __proto__: null },
  ),
  fc.jsonValue({ maxDepth: 2 }),
  fc.string({ maxLength: 30 }),
  fc.integer(),
  fc.double(),
);

/** Keys worth adding: prototype names, and names the documents use elsewhere. */
export const oddKey: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'length', 'x', ''),
  fc.string({ maxLength: 12 }),
);

export function treeMutation(value: fc.Arbitrary<unknown> = oddValue): fc.Arbitrary<TreeMutation> {
  const node = fc.nat();
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('replace' as const), node, value }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), node }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('add-key' as const), node, key: oddKey, value }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), node }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('wrap' as const), node }) },
  );
}

export function applyTreeMutations(doc: unknown, mutations: readonly TreeMutation[]): unknown {
  return mutations.reduce(mutateTree, doc);
}

/** One edit of a text. */
export type TextMutation =
  | { readonly kind: 'insert'; readonly at: number; readonly text: string }
  | { readonly kind: 'delete'; readonly at: number; readonly count: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'repeat'; readonly at: number; readonly count: number; readonly times: number };

/** Text fragments that parsers treat specially (YAML and JSON syntax, anchors, escapes). */
const SYNTAX = [
  '\n',
  ': ',
  '- ',
  '{',
  '}',
  '[',
  ']',
  ',',
  '"',
  "'",
  '\\',
  '#',
  '&a ',
  '*a',
  '!!binary ',
  '!!js/function ',
  '<<: ',
  '---\n',
  '...\n',
  '\t',
  '  ',
  '|\n',
  '>-\n',
  '? ',
  '%YAML 1.2\n',
  '\u0000',
  '\ufeff',
  '\ud800',
  '~',
  '.inf',
  '.nan',
  '0x10',
  '1e999',
];

export function textMutation(): fc.Arbitrary<TextMutation> {
  const at = fc.nat();
  return fc.oneof(
    fc.record({
      kind: fc.constant('insert' as const),
      at,
      text: fc.oneof(fc.constantFrom(...SYNTAX), fc.string({ maxLength: 8 })),
    }),
    fc.record({ kind: fc.constant('delete' as const), at, count: fc.integer({ min: 1, max: 20 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at }),
    fc.record({
      kind: fc.constant('repeat' as const),
      at,
      count: fc.integer({ min: 1, max: 40 }),
      times: fc.integer({ min: 2, max: 50 }),
    }),
  );
}

export function mutateText(s: string, m: TextMutation): string {
  const i = s.length === 0 ? 0 : m.at % (s.length + 1);
  switch (m.kind) {
    case 'insert':
      return s.slice(0, i) + m.text + s.slice(i);
    case 'delete':
      return s.slice(0, i) + s.slice(i + m.count);
    case 'truncate':
      return s.slice(0, i);
    case 'repeat':
      return s.slice(0, i) + s.slice(i, i + m.count).repeat(m.times) + s.slice(i);
  }
}

export function applyTextMutations(s: string, mutations: readonly TextMutation[]): string {
  return mutations.reduce(mutateText, s);
}
