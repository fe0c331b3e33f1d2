/**
 * Pure fuzz properties for parsers of documents that cross a trust boundary: the TUF metadata a
 * device's security core verifies (it arrives in an update-check reply), scenario YAML and its
 * fields, chaos faults (the chaos control API's POST body), rollout configurations (operator
 * requests) and serialized rollouts (journal content). Each gives an arbitrary and a check that
 * throws what is wrong.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import {
  TUF_ERROR_CODES,
  createTufClientState,
  updateMetadata,
  verifyTarget,
} from '../../actors/tuf/index.js';
import type { TufClientState, TufUpdateFiles } from '../../actors/tuf/index.js';
import {
  DurationError,
  ScenarioError,
  SizeError,
  THRESHOLD_METRICS,
  ThresholdError,
  compileChaosFault,
  compileScenario,
  compileThresholds,
  parseDuration,
  parseRate,
  parseScenarioYaml,
  parseSize,
  parseThreshold,
} from '../../loadgen/scenario/index.js';
import { compileRolloutConfig, deserializeRollout, initialRollout } from '../../services/rollouts/index.js';
import { createTufRepository } from '../../services/updates/tuf/index.js';
import type { TufRepository } from '../../services/updates/tuf/index.js';
import { applyTextMutations, applyTreeMutations, oddValue, textMutation, treeMutation } from './json.js';
import type { TextMutation, TreeMutation } from './json.js';
import { fail, sameValue } from './property.js';
import type { PureFuzz } from './property.js';
import { applyMutations, wireMutation } from './protobuf.js';
import type { WireMutation } from './protobuf.js';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** The repository root (where package.json is), from src or from dist/. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('no package.json above deploy/fuzz');
    dir = up;
  }
  return dir;
}

// ---- TUF --------------------------------------------------------------------------------------

const TUF_CODES = new Set<string>(Object.values(TUF_ERROR_CODES));
const T0 = Date.parse('2030-01-01T00:00:00Z');
const TARGET = 'os/fuzz.bin';
const CONTENT = utf8.encode('firmware image for the fuzzer');
const SECURITY_VERSION = 3;

/** A deterministic repository: root v2 (rotated), one published target. */
function fuzzRepository(): TufRepository {
  let i = 1;
  const repo = createTufRepository({ nowMs: T0, randomBytes: (n) => new Uint8Array(n).fill(i++ & 0xff) });
  repo.addTarget(TARGET, CONTENT, { securityVersion: SECURITY_VERSION, kind: 'os', version: '1.2.3' });
  repo.publish(T0 + 1000);
  repo.rotateRoot(T0 + 1500, ['timestamp']);
  return repo;
}

function typedTufResult(r: unknown, what: string): r is { ok: true; value: unknown } {
  const x = r as { ok?: unknown; error?: { code?: unknown; message?: unknown } };
  if (x.ok === true) return true;
  if (x.ok !== false) fail(`${what}: not a result: ${String(r)}`);
  if (typeof x.error?.code !== 'string' || !TUF_CODES.has(x.error.code))
    fail(`${what}: unknown code ${String(x.error?.code)}`);
  if (typeof x.error.message !== 'string' || x.error.message === '')
    fail(`${what}: ${x.error.code} without a message`);
  return false;
}

/** Bytes of a JSON document: kept, rewritten as a tree, or edited as bytes. */
export type DocumentBytes =
  | { readonly how: 'valid'; readonly bytes: Uint8Array }
  | { readonly how: 'tree'; readonly bytes: Uint8Array; readonly mutations: readonly TreeMutation[] }
  | { readonly how: 'bytes'; readonly bytes: Uint8Array; readonly mutations: readonly WireMutation[] }
  | { readonly how: 'random'; readonly bytes: Uint8Array };

/** Shows a document as its text (not a list of byte values) in a counterexample. */
function shownAsText<T extends { how: string; bytes: Uint8Array }>(d: T): T {
  return Object.defineProperty({ ...d }, fc.toStringMethod, {
    value: () => `{ how: '${d.how}', text: ${JSON.stringify(fromUtf8.decode(d.bytes))} }`,
  });
}

function documentBytes(
  valid: Uint8Array,
  weights = { valid: 1, tree: 6, bytes: 3, random: 1 },
): fc.Arbitrary<DocumentBytes> {
  const doc: unknown = JSON.parse(fromUtf8.decode(valid));
  return fc
    .oneof(
      { weight: weights.valid, arbitrary: fc.constant({ how: 'valid' as const, bytes: valid }) },
      {
        weight: weights.tree,
        arbitrary: fc.array(treeMutation(), { minLength: 1, maxLength: 3 }).map((mutations) => ({
          how: 'tree' as const,
          bytes: utf8.encode(JSON.stringify(applyTreeMutations(doc, mutations)) ?? ''),
          mutations,
        })),
      },
      {
        weight: weights.bytes,
        arbitrary: fc.array(wireMutation(), { minLength: 1, maxLength: 3 }).map((mutations) => ({
          how: 'bytes' as const,
          bytes: applyMutations(valid, mutations),
          mutations,
        })),
      },
      {
        weight: weights.random,
        arbitrary: fc
          .oneof(
            fc.uint8Array({ maxLength: 100 }),
            fc.jsonValue().map((v) => utf8.encode(JSON.stringify(v))),
          )
          .map((bytes) => ({ how: 'random' as const, bytes })),
      },
    )
    .map(shownAsText);
}

/** Canonical text of what a trusted role says (its `signed` part). */
const signedOf = (md: { signed: { toJSON(): unknown } } | undefined): string =>
  JSON.stringify(md?.signed.toJSON());

/**
 * createTufClientState over a provisioned root: never throws, answers ok or a TUF code with a
 * message; the valid root is trusted; anything trusted says exactly what the valid root says
 * (no change to the signed part passes the self-signature check).
 */
export function tufRootFuzz(): PureFuzz<DocumentBytes> {
  const root = fuzzRepository().metadataFiles().get('1.root.json') ?? fail('no 1.root.json');
  const trusted = createTufClientState(root);
  if (!trusted.ok) fail(`the fuzzer's root is refused: ${trusted.error.message}`);
  const expected = signedOf(trusted.value.root);
  return {
    arbitrary: documentBytes(root),
    check(input) {
      const r = createTufClientState(input.bytes);
      if (typedTufResult(r, 'createTufClientState')) {
        if (signedOf(r.value.root) !== expected) fail('trusted a root whose signed part changed');
      } else if (input.how === 'valid') fail(`refused the valid root`);
    },
  };
}

type TufFile = 'timestamp' | 'snapshot' | 'targets' | 'root';
export interface TufUpdateInput {
  readonly file: TufFile;
  readonly bytes: DocumentBytes;
  readonly dropRoot: boolean;
}

/**
 * updateMetadata with one of the files (timestamp, snapshot, targets, the new root) fuzzed:
 * never throws, answers ok or a TUF code; the valid set is accepted; anything accepted trusts
 * exactly the signed parts of the valid set.
 */
export function tufUpdateFuzz(): PureFuzz<TufUpdateInput> {
  const repo = fuzzRepository();
  const files = repo.metadataFiles();
  const v = repo.versions();
  const get = (name: string): Uint8Array => files.get(name) ?? fail(`no ${name}`);
  const state = createTufClientState(get('1.root.json'));
  if (!state.ok) fail(state.error.message);
  const valid: Record<TufFile, Uint8Array> = {
    root: get(`${v.root}.root.json`),
    timestamp: get('timestamp.json'),
    snapshot: get(`${v.snapshot}.snapshot.json`),
    targets: get(`${v.targets}.targets.json`),
  };
  const nowMs = T0 + 2000;
  const filesWith = (file: TufFile, bytes: Uint8Array, dropRoot: boolean): TufUpdateFiles => {
    const f = { ...valid, [file]: bytes };
    return {
      timestamp: f.timestamp,
      snapshot: f.snapshot,
      targets: f.targets,
      roots: dropRoot ? [] : [f.root],
    };
  };
  const good = updateMetadata(state.value, filesWith('root', valid.root, false), nowMs);
  if (!good.ok) fail(`the fuzzer's metadata is refused: ${good.error.code} ${good.error.message}`);
  const expected = (s: TufClientState): string[] =>
    [s.root, s.timestamp, s.snapshot, s.targets].map(signedOf);
  const want = expected(good.value);
  return {
    arbitrary: fc
      .constantFrom<TufFile>('timestamp', 'snapshot', 'targets', 'root')
      .chain((file) =>
        fc.record({ file: fc.constant(file), bytes: documentBytes(valid[file]), dropRoot: fc.boolean() }),
      ),
    check(input) {
      const r = updateMetadata(state.value, filesWith(input.file, input.bytes.bytes, input.dropRoot), nowMs);
      if (typedTufResult(r, 'updateMetadata')) {
        if (!sameValue(expected(r.value), want))
          fail(`accepted metadata whose signed part changed (${input.file})`);
      } else if (input.bytes.how === 'valid' && !input.dropRoot)
        fail(`refused the valid metadata: ${r.error.code}`);
    },
  };
}

export interface TufTargetInput {
  readonly name: string;
  readonly content: Uint8Array;
  readonly deviceSecurityVersion: number;
}

/** verifyTarget: never throws, answers ok or a TUF code; only the listed content passes. */
export function tufTargetFuzz(): PureFuzz<TufTargetInput> {
  const repo = fuzzRepository();
  const files = repo.metadataFiles();
  const v = repo.versions();
  const get = (name: string): Uint8Array => files.get(name) ?? fail(`no ${name}`);
  const s0 = createTufClientState(get('1.root.json'));
  if (!s0.ok) fail(s0.error.message);
  const s = updateMetadata(
    s0.value,
    {
      timestamp: get('timestamp.json'),
      snapshot: get(`${v.snapshot}.snapshot.json`),
      targets: get(`${v.targets}.targets.json`),
      roots: [get(`${v.root}.root.json`)],
    },
    T0 + 2000,
  );
  if (!s.ok) fail(s.error.message);
  const state = s.value;
  return {
    arbitrary: fc.record({
      name: fc.oneof(
        fc.constant(TARGET),
        fc.constantFrom('__proto__', 'constructor', 'os', `${TARGET}/`),
        fc.string(),
      ),
      content: fc.oneof(
        fc.constant(CONTENT),
        fc.array(wireMutation(), { minLength: 1, maxLength: 2 }).map((ms) => applyMutations(CONTENT, ms)),
        fc.uint8Array({ maxLength: 40 }),
      ),
      // The floor is the device's own state, an integer: not fuzzed beyond that.
      deviceSecurityVersion: fc.oneof(fc.nat({ max: 6 }), fc.integer()),
    }),
    check(input) {
      const r = verifyTarget(state, input.name, input.content, input.deviceSecurityVersion);
      if (!typedTufResult(r, 'verifyTarget')) return;
      if (input.name !== TARGET || !sameValue(input.content, CONTENT))
        fail('verified content that is not the listed target');
      if (input.deviceSecurityVersion > SECURITY_VERSION) fail('verified a target below the device floor');
    },
  };
}

// ---- scenarios ------------------------------------------------------------------------------

/** The example scenarios shipped in loadgen/examples, as text. */
function exampleScenarios(): { file: string; text: string }[] {
  const dir = join(repoRoot(), 'loadgen', 'examples');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((file) => ({ file, text: readFileSync(join(dir, file), 'utf8') }));
}

/** Throwing parsers: what they may throw, and a check that it is that with a message. */
function expectThrowsOnly(
  what: string,
  fn: () => unknown,
  ...allowed: (abstract new (...a: never[]) => Error)[]
): unknown {
  try {
    return fn();
  } catch (e) {
    if (!allowed.some((cls) => e instanceof cls))
      fail(
        `${what} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} (allowed: ${allowed.map((c) => c.name).join(', ')})`,
      );
    if ((e as Error).message === '') fail(`${what} threw ${(e as Error).name} without a message`);
    if (e instanceof ScenarioError && e.issues.length === 0)
      fail(`${what} threw a ScenarioError listing no issue`);
    return undefined;
  }
}

export type ScenarioText =
  | {
      readonly how: 'tree';
      readonly example: string;
      readonly mutations: readonly TreeMutation[];
      readonly text: string;
    }
  | {
      readonly how: 'text';
      readonly example: string;
      readonly mutations: readonly TextMutation[];
      readonly text: string;
    }
  | { readonly how: 'random'; readonly text: string };

/** parseScenarioYaml: returns a scenario or throws a ScenarioError listing issues; nothing else. */
export function scenarioYamlFuzz(): PureFuzz<ScenarioText> {
  const examples = exampleScenarios();
  for (const e of examples) parseScenarioYaml(e.text, e.file);
  const docs = examples.map((e) => ({ file: e.file, text: e.text, doc: parseYaml(e.text) as unknown }));
  const example = fc.constantFrom(...docs);
  return {
    arbitrary: fc.oneof(
      {
        weight: 5,
        arbitrary: fc
          .tuple(example, fc.array(treeMutation(), { minLength: 1, maxLength: 4 }))
          .map(([e, mutations]) => ({
            how: 'tree' as const,
            example: e.file,
            mutations,
            text: String(stringifyYaml(applyTreeMutations(e.doc, mutations)) ?? ''),
          })),
      },
      {
        weight: 3,
        arbitrary: fc
          .tuple(example, fc.array(textMutation(), { minLength: 1, maxLength: 4 }))
          .map(([e, mutations]) => ({
            how: 'text' as const,
            example: e.file,
            mutations,
            text: applyTextMutations(e.text, mutations),
          })),
      },
      {
        weight: 1,
        arbitrary: fc.string({ maxLength: 200 }).map((text) => ({ how: 'random' as const, text })),
      },
    ),
    check(input) {
      expectThrowsOnly('parseScenarioYaml', () => parseScenarioYaml(input.text, 'fuzz.yaml'), ScenarioError);
    },
  };
}

export interface ScenarioObject {
  readonly example: string;
  readonly mutations: readonly TreeMutation[];
}

/** compileScenario over objects (any JS values, not only what YAML gives): ScenarioError or a scenario. */
export function scenarioObjectFuzz(): PureFuzz<ScenarioObject> {
  const docs = new Map(exampleScenarios().map((e) => [e.file, parseYaml(e.text) as unknown]));
  const anyValue = fc.oneof(
    oddValue,
    fc.anything({ maxDepth: 2 }),
    fc.constantFrom(undefined, NaN, Infinity, -Infinity),
  );
  return {
    arbitrary: fc.record({
      example: fc.constantFrom(...docs.keys()),
      mutations: fc.array(treeMutation(anyValue), { minLength: 1, maxLength: 4 }),
    }),
    check(input) {
      const doc = applyTreeMutations(docs.get(input.example), input.mutations);
      expectThrowsOnly('compileScenario', () => compileScenario(doc), ScenarioError);
    },
  };
}

export interface ChaosInput {
  readonly fault: unknown;
  readonly stack: { readonly shards: number; readonly natsNodes: number };
}

/**
 * compileChaosFault (the chaos control API compiles POST bodies with it): returns a fault or
 * throws a plain Error naming the problems; never a TypeError or the like.
 */
export function chaosFaultFuzz(): PureFuzz<ChaosInput> {
  const chaos = (
    parseYaml(readFileSync(join(repoRoot(), 'loadgen', 'examples', 'chaos.yaml'), 'utf8')) as {
      chaos: { faults: unknown[] };
    }
  ).chaos;
  const faults = chaos.faults;
  const anyValue = fc.oneof(oddValue, fc.anything({ maxDepth: 2 }));
  return {
    arbitrary: fc.record({
      fault: fc.oneof(
        { weight: 1, arbitrary: fc.constantFrom(...faults) },
        {
          weight: 6,
          arbitrary: fc
            .tuple(
              fc.constantFrom(...faults),
              fc.array(treeMutation(anyValue), { minLength: 1, maxLength: 3 }),
            )
            .map(([f, ms]) => applyTreeMutations(f, ms)),
        },
        { weight: 1, arbitrary: anyValue },
      ),
      stack: fc.record({
        shards: fc.integer({ min: -1, max: 20 }),
        natsNodes: fc.integer({ min: -1, max: 12 }),
      }),
    }),
    check(input) {
      let out: unknown;
      try {
        out = compileChaosFault(input.fault, input.stack);
      } catch (e) {
        if (!(e instanceof Error) || e.constructor !== Error)
          fail(
            `compileChaosFault threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}, not an Error naming the problem`,
          );
        if (e.message === '') fail('compileChaosFault threw an Error without a message');
        return;
      }
      const f = out as { index?: unknown; label?: unknown; action?: unknown };
      if (f.index !== -1 || typeof f.label !== 'string' || f.label === '' || typeof f.action !== 'object')
        fail(`compileChaosFault returned ${JSON.stringify(out)}`);
    },
  };
}

const fieldValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ maxLength: 16 }),
  fc.constantFrom(
    '1s',
    '1.5h',
    '0ms',
    '-1s',
    '1e9d',
    '10/s',
    '0/s',
    '64KiB',
    '1.5MiB',
    '1e400',
    ' 5 m',
    'p(99)<5',
    '',
  ),
  fc
    .tuple(fc.double(), fc.constantFrom('ms', 's', 'm', 'h', 'd', '/s', '/m', 'KiB', 'MB', 'B', ''))
    .map(([n, u]) => `${n}${u}`),
  oddValue,
);

/** Field parsers: throw their own error class with a message, or return a number. */
export function fieldParserFuzz(name: 'parseDuration' | 'parseRate' | 'parseSize'): PureFuzz<unknown> {
  const [fn, cls] =
    name === 'parseDuration'
      ? [parseDuration, DurationError]
      : name === 'parseRate'
        ? [parseRate, DurationError]
        : [parseSize, SizeError];
  return {
    arbitrary: fieldValue,
    check(input) {
      const out = expectThrowsOnly(name, () => fn(input), cls);
      if (out !== undefined && (typeof out !== 'number' || Number.isNaN(out)))
        fail(`${name} returned ${JSON.stringify(out)}`);
    },
  };
}

export interface ThresholdInput {
  readonly metric: string;
  readonly expressions: readonly string[];
}

/** parseThreshold / compileThresholds: a ThresholdError with a message, or thresholds. */
export function thresholdFuzz(): PureFuzz<ThresholdInput> {
  const expression = fc.oneof(
    fc.string({ maxLength: 24 }),
    fc
      .tuple(
        fc.constantFrom(
          'p(99)',
          'p(50)',
          'p(0)',
          'p(100)',
          'p(101)',
          'p(-1)',
          'avg',
          'max',
          'rate',
          'count',
          'p(',
          'p(x)',
          '',
        ),
        fc.constantFrom('<', '<=', '>', '>=', '==', '!=', '=', '<<', ''),
        fc.oneof(fc.double().map(String), fc.constantFrom('5000', '0.99', '1e400', '-0', 'x', '')),
      )
      .map(([a, op, n]) => `${a}${op}${n}`),
  );
  return {
    arbitrary: fc.record({
      metric: fc.oneof(fc.constantFrom(...Object.keys(THRESHOLD_METRICS)), fc.string({ maxLength: 12 })),
      expressions: fc.array(expression, { maxLength: 3 }),
    }),
    check(input) {
      for (const e of input.expressions)
        expectThrowsOnly('parseThreshold', () => parseThreshold(input.metric, e), ThresholdError);
      expectThrowsOnly(
        'compileThresholds',
        () => compileThresholds({ [input.metric]: input.expressions }),
        ThresholdError,
      );
    },
  };
}

// ---- rollouts -------------------------------------------------------------------------------

const VALID_ROLLOUT_CONFIG = {
  waves: [{ count: 10 }, { share: 0.5 }, { share: 1 }],
  successThreshold: 0.9,
  errorThreshold: { count: 12, share: 0.1 },
  autoRollback: true,
  pauseBetweenWavesMs: 60_000,
};

/** compileRolloutConfig (operator input, documented never to throw): a config or {field, message}. */
export function rolloutConfigFuzz(): PureFuzz<readonly TreeMutation[]> {
  const anyValue = fc.oneof(
    oddValue,
    fc.anything({ maxDepth: 2 }),
    fc.constantFrom(undefined, NaN, Infinity),
  );
  return {
    arbitrary: fc.array(treeMutation(anyValue), { maxLength: 4 }),
    check(mutations) {
      const r = compileRolloutConfig(applyTreeMutations(VALID_ROLLOUT_CONFIG, mutations));
      if (r.ok) return;
      if (typeof r.error.field !== 'string' || typeof r.error.message !== 'string' || r.error.message === '')
        fail(`compileRolloutConfig refused without field and message: ${JSON.stringify(r.error)}`);
    },
  };
}

/** A serialized rollout as the journal carries it (a `deployment` record's `rollout`). */
function validRollout(): unknown {
  const config = compileRolloutConfig(VALID_ROLLOUT_CONFIG);
  if (!config.ok) fail(config.error.message);
  const r = initialRollout({
    deploymentId: 'd-0123456789abcdef',
    groupId: 'g-0123456789abcdef',
    image: { imageId: 'i-0123456789abcdef', kind: 'os', version: '25.10', securityVersion: 5 },
    config: config.value,
  });
  const ids = ['a'.repeat(128), 'b'.repeat(128)];
  return {
    ...r,
    state: 'running',
    currentWave: 1,
    devices: ids.map((deviceId) => ({
      deviceId,
      wave: 1,
      state: 'pending',
      offered: true,
      attempts: 1,
      rollbackOrdered: false,
      reportIds: ['r-1'],
    })),
    index: Object.fromEntries(ids.map((id, i) => [id, i])),
  };
}

/** deserializeRollout (journal content; returns a Result): never throws, refuses with ROLLOUT_CORRUPT. */
export function rolloutJsonFuzz(): PureFuzz<DocumentBytes> {
  const valid = utf8.encode(JSON.stringify(validRollout()));
  return {
    arbitrary: documentBytes(valid, { valid: 1, tree: 8, bytes: 2, random: 1 }),
    check(input) {
      const r = deserializeRollout(fromUtf8.decode(input.bytes));
      if (r.ok) return;
      if (r.error.code !== 'ROLLOUT_CORRUPT' || r.error.message === '')
        fail(`deserializeRollout refused with ${r.error.code} "${r.error.message}"`);
      if (input.how === 'valid') fail('refused the valid rollout');
    },
  };
}
