/**
 * Every fuzzed entry point of sphere-fleet, in one table: the CI suite (test/fuzz) and the long
 * campaign (deploy/fuzz/campaign.ts) both run exactly this list. Decoders and API methods are
 * derived from proto/codec's exports, DEVICE_OPS and the gRPC service definition, so new ones
 * are picked up; anything else is one line below.
 *
 * Reproduce a failure with the seed (and path) it prints:
 *   FUZZ_SEED=<seed> FUZZ_PATH=<path> npx vitest run test/fuzz -t '<entry name>'
 *   node dist/deploy/fuzz/campaign.js --only <entry name> --seed <seed> --path <path>
 */
import fc from 'fast-check';
import { deviceDecoderFuzz, deviceDecoders, deviceOpMessages } from './device-codec.js';
import {
  chaosFaultFuzz,
  fieldParserFuzz,
  rolloutConfigFuzz,
  rolloutJsonFuzz,
  scenarioObjectFuzz,
  scenarioYamlFuzz,
  thresholdFuzz,
  tufRootFuzz,
  tufTargetFuzz,
  tufUpdateFuzz,
} from './documents.js';
import { operatorDeserializerFuzz, operatorMethods } from './operator-api.js';
import type { PureFuzz, WireFuzz } from './property.js';
import type { FuzzTarget } from './target.js';
import { deviceOpFuzz, grpcFuzz, journalFuzz } from './wire.js';

/**
 * What an entry point runs against: nothing (a pure function), a running shard (its state in
 * memory or in a journal; fuzzing must leave it serving), or a shard on a JetStream journal of
 * its own (the fuzzing writes into that journal).
 */
export type FuzzNeeds = 'none' | 'shard' | 'journal';

export interface FuzzRunOptions {
  readonly seed: number;
  readonly numRuns: number;
  /** fast-check's replay path, printed with a counterexample. */
  readonly path?: string;
  /**
   * Over-the-wire entry points only: run the property this many times at once, with seeds
   * seed, seed+1, … and the runs split between them (a failure names its own seed). Default 1.
   */
  readonly parallel?: number;
}

export interface FuzzReport {
  readonly name: string;
  readonly failed: boolean;
  /** Inputs run (up to and including a failing one). */
  readonly runs: number;
  readonly seconds: number;
  /** On failure: what failed, the seed and path to replay it, the (shrunk) counterexample. */
  readonly message: string;
  /** Known bugs seen on the way (they do not fail the run). */
  readonly notes: readonly string[];
}

export interface FuzzEntryPoint {
  readonly name: string;
  readonly needs: FuzzNeeds;
  /** The property, in a sentence. */
  readonly contract: string;
  /** Set when the entry point is known to fail: the bug it finds (tests mark it `it.fails`). */
  readonly knownBug?: string;
  /** Inputs per CI run (`npm test`); FUZZ_RUNS overrides it, the campaign uses `--runs`. */
  readonly ciRuns: number;
  run(options: FuzzRunOptions, target: FuzzTarget | null): Promise<FuzzReport>;
}

/** The CI seed: runs are reproducible unless FUZZ_SEED says otherwise. */
export const DEFAULT_FUZZ_SEED = 20_250_611;

const MAX_MESSAGE = 20_000;

/** A thrown value as text. */
function errorText(e: unknown): string {
  return e instanceof Error ? e.message : typeof e === 'string' ? e : JSON.stringify(e);
}

function report<T>(
  name: string,
  details: fc.RunDetails<T>,
  started: number,
  notes: readonly string[],
  settleError?: unknown,
): FuzzReport {
  const seconds = (performance.now() - started) / 1000;
  let message = '';
  if (details.failed) {
    message = `${errorText(details.errorInstance)}\n${fc.defaultReportMessage(details) ?? 'failed'}`;
  } else if (settleError !== undefined)
    message = `after ${details.numRuns} inputs (seed ${details.seed}): ${errorText(settleError)}`;
  if (message.length > MAX_MESSAGE)
    message = `${message.slice(0, MAX_MESSAGE)}… (${message.length} characters)`;
  return {
    name,
    failed: details.failed || settleError !== undefined,
    runs: details.numRuns,
    seconds,
    message: message === '' ? '' : `${name}: ${message}`,
    notes,
  };
}

function parameters<T>(o: FuzzRunOptions, shrink: boolean): fc.Parameters<T> {
  return {
    seed: o.seed,
    numRuns: o.numRuns,
    ...(o.path === undefined ? {} : { path: o.path }),
    // Network properties are not shrunk: the service's state moved on since the failing input.
    endOnFailure: !shrink,
  };
}

interface EntryOptions {
  readonly ciRuns?: number;
  readonly knownBug?: string;
}

/** An entry point over a pure function. */
function pure<I>(
  name: string,
  contract: string,
  make: () => PureFuzz<I>,
  o: EntryOptions = {},
): FuzzEntryPoint {
  return {
    name,
    needs: 'none',
    contract,
    ciRuns: o.ciRuns ?? 1000,
    ...(o.knownBug === undefined ? {} : { knownBug: o.knownBug }),
    run(options) {
      const f = make();
      const started = performance.now();
      const known = new Map<string, number>();
      const property = fc.property(f.arbitrary, (input) => {
        try {
          f.check(input);
        } catch (e) {
          const bug = f.known?.(input, e);
          if (bug === undefined) throw e;
          known.set(bug, (known.get(bug) ?? 0) + 1);
        }
      });
      const details = fc.check(property, parameters<[I]>(options, true));
      const notes = [...known].map(([bug, n]) => `${n} input(s) hit the known ${bug}`);
      return Promise.resolve(report(name, details, started, notes));
    },
  };
}

/** An entry point over a running service. */
function wire<I>(
  name: string,
  needs: Exclude<FuzzNeeds, 'none'>,
  contract: string,
  make: (t: FuzzTarget) => Promise<WireFuzz<I>>,
  o: EntryOptions = {},
): FuzzEntryPoint {
  return {
    name,
    needs,
    contract,
    ciRuns: o.ciRuns ?? 400,
    ...(o.knownBug === undefined ? {} : { knownBug: o.knownBug }),
    async run(options, target) {
      if (target === null) throw new Error(`${name} needs a running ${needs}`);
      const f = await make(target);
      const started = performance.now();
      // Once one lane fails the others stop sending (their remaining inputs pass untried).
      let stopped = false;
      let tried = 0;
      const property = fc.asyncProperty(f.arbitrary, async (input) => {
        if (stopped) return;
        tried++;
        await f.check(input).catch((e: unknown) => {
          stopped = true;
          throw e;
        });
      });
      const lanes = options.path === undefined ? Math.max(1, options.parallel ?? 1) : 1;
      const all = await Promise.all(
        Array.from({ length: lanes }, (_, i) => {
          const numRuns = Math.floor(options.numRuns / lanes) + (i < options.numRuns % lanes ? 1 : 0);
          const lane = { ...options, seed: options.seed + i, numRuns };
          return fc.check(property, parameters<[I]>(lane, false));
        }),
      );
      const details = all.find((d) => d.failed) ?? all[0];
      if (details === undefined) throw new Error('no run');
      const runs = tried;
      let settleError: unknown;
      if (!details.failed) await f.settle().catch((e: unknown) => (settleError = e));
      return { ...report(name, details, started, f.notes, settleError), runs };
    },
  };
}

const DECODE =
  'never throws; ok, or a rejection with a REJECT_CODES code and a message (PAYLOAD_TOO_LARGE exactly over the limit); valid encodings round-trip; what it accepts re-encodes to the same value (the same bytes, for requests)';

/** THE table. One line per entry point, or one line per family derived from the code. */
export const FUZZ_ENTRY_POINTS: readonly FuzzEntryPoint[] = [
  ...deviceDecoders().map((d) =>
    pure(`codec.decode${d.message}`, DECODE, () => deviceDecoderFuzz(d), { ciRuns: 1000 }),
  ),
  ...operatorMethods().map((m) =>
    pure(
      `operator-api.deserialize.${m.name}`,
      'never throws; a canonical request without unknown fields, or { undecodable } with an OPERATOR_ERRORS code and a message; canonical encodings are accepted as the same value',
      () => operatorDeserializerFuzz(m),
      { ciRuns: 500 },
    ),
  ),
  pure(
    'tuf.createTufClientState',
    'never throws; ok or a TUF_ERROR_CODES code with a message; the provisioned root is trusted, and nothing whose signed part differs',
    tufRootFuzz,
    { ciRuns: 500 },
  ),
  pure(
    'tuf.updateMetadata',
    'never throws; ok or a TUF code; the valid set is accepted, and no set whose signed parts differ',
    tufUpdateFuzz,
    { ciRuns: 500 },
  ),
  pure(
    'tuf.verifyTarget',
    'never throws; ok or a TUF code; only the listed content at or above the floor passes',
    tufTargetFuzz,
  ),
  pure(
    'scenario.parseScenarioYaml',
    'a scenario, or a ScenarioError listing issues; nothing else',
    scenarioYamlFuzz,
    {
      ciRuns: 300,
    },
  ),
  pure(
    'scenario.compileScenario',
    'a scenario, or a ScenarioError listing issues, for any JS value',
    scenarioObjectFuzz,
    {
      ciRuns: 500,
    },
  ),
  pure('scenario.compileChaosFault', 'a fault, or a plain Error naming the problems', chaosFaultFuzz),
  pure('scenario.parseDuration', 'a number or a DurationError', () => fieldParserFuzz('parseDuration')),
  pure('scenario.parseRate', 'a number or a DurationError', () => fieldParserFuzz('parseRate')),
  pure('scenario.parseSize', 'a number or a SizeError', () => fieldParserFuzz('parseSize')),
  pure('scenario.parseThreshold', 'thresholds or a ThresholdError', thresholdFuzz),
  pure('rollouts.compileRolloutConfig', 'never throws; a config or { field, message }', rolloutConfigFuzz),
  pure(
    'rollouts.deserializeRollout',
    'never throws; a rollout or ROLLOUT_CORRUPT with a message',
    rolloutJsonFuzz,
  ),
  ...deviceOpMessages().map((m) =>
    wire(
      `wire.device.${m.op}`,
      'shard',
      `every request on sphere.dev.v1.${m.op}.<partition> is answered with a valid reply or a typed rejection (the codec's own, for bytes it refuses); the counter counts each request once; the shard keeps serving`,
      (t) => deviceOpFuzz(m, t),
    ),
  ),
  wire(
    'wire.operator-api',
    'shard',
    'every gRPC call with fuzzed request bytes ends with a status; refusals are typed (sphere-error-code, not INTERNAL) and match the deserializer; the shard keeps serving',
    (t) => grpcFuzz(operatorMethods(), t),
    { ciRuns: 800 },
  ),
  wire(
    'wire.journal',
    'journal',
    'a record anyone publishes into the JetStream journal is skipped, and the shard keeps applying changes and serving',
    journalFuzz,
    { ciRuns: 20 },
  ),
];

/** Options for a CI run: the entry's own size and the fixed seed, unless FUZZ_SEED / FUZZ_RUNS / FUZZ_PATH say otherwise. */
export function fuzzOptionsFromEnv(
  entry: FuzzEntryPoint,
  env: NodeJS.ProcessEnv = process.env,
): FuzzRunOptions {
  const num = (key: string, fallback: number): number => {
    const raw = env[key];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n)) throw new Error(`${key}=${raw} is not an integer`);
    return n;
  };
  const path = env['FUZZ_PATH'];
  return {
    seed: num('FUZZ_SEED', DEFAULT_FUZZ_SEED),
    numRuns: num('FUZZ_RUNS', entry.ciRuns),
    ...(path === undefined || path === '' ? {} : { path }),
  };
}
