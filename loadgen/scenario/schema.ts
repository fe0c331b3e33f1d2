/**
 * Scenario files: the zod schema of what a user writes, and {@link compileScenario}, which
 * validates it ONCE into a fully filled, typed {@link Scenario} (every default applied, durations
 * in ms, rates per simulated second, stages and faults resolved to device counts).
 *
 * Validation collects every problem before throwing, so a user fixes a file in one pass.
 * Structural problems (types, unknown keys, bad durations) are found first; checks that need
 * several fields at once (stage counts against the fleet, fault totals) run when the fields they
 * read are themselves valid.
 */
import type { DeviceBehaviour } from '../../actors/device/index.js';
import { DEFAULT_UPDATE_BEHAVIOUR } from '../../actors/update-agent/logic.js';
import { DEFAULT_DEVICE_GROUPS, OS_FEEDS, UPDATE_POLICIES } from '../../services/registry/products.js';
import type { OsFeed, UpdatePolicy } from '../../services/registry/products.js';
import { compileRolloutConfig } from '../../services/rollouts/config.js';
import type { RolloutConfigInput, WaveSpec } from '../../services/rollouts/config.js';
import { z } from 'zod';
import { apportion } from './apportion.js';
import {
  FAULT_PROFILES,
  FAULT_PROFILE_LIST,
  OS_VERSIONS,
  OS_VERSION_LIST,
  UPDATE_FAULT_LIST,
  belowMinimumVersion,
  isOsVersion,
} from './catalog.js';
import type { FaultProfile, OsVersion, UpdateFault } from './catalog.js';
import { describeValue, formatDuration, parseDuration, parseRate } from './duration.js';
import { formatSize, parseSize } from './size.js';
import { ScenarioError } from './errors.js';
import type { ScenarioIssue } from './errors.js';
import { locateIssues } from './locate.js';
import { durationField, field, FieldError } from './fields.js';
import { chaosSchema, resolveChaos } from './chaos.js';
import { attacksSchema, resolveAttacks } from './attacks.js';
import type { AttacksConfig, DeviceRateLimit } from './attacks.js';
import type { ChaosConfig } from './chaos.js';
import { errorsSchema, parseCrashRate, resolveErrors } from './error-reports.js';
import type { ErrorsConfig } from './error-reports.js';
import { THRESHOLD_METRICS, parseThreshold } from './thresholds.js';
import { closest, fromZodIssue } from './zod-issues.js';
import type { Threshold } from './thresholds.js';

/** Defaults applied by {@link compileScenario} (durations as written in a scenario file). */
export const SCENARIO_DEFAULTS = {
  seed: 'sphere',
  timeScale: 1,
  osMix: { '25.10': 1 },
  apps: [{ name: 'blinky', version: '1.0.0' }],
  connections: { mode: 'shared', pool: 4 },
  bootStormWithin: '10s',
  device: {
    attestEvery: '24h',
    heartbeatEvery: '1h',
    retry: { initial: '30s', max: '1h', multiplier: 2, jitter: 0.2 },
    requestTimeout: 5_000,
    replayAfter: '10m',
    renewBefore: '1h',
  },
  service: {
    nonceTtl: '5m',
    certificateLifetime: '24h',
    minSecurityVersion: 3,
    maxClockSkew: '5m',
    // The shard's own default (DEFAULT_POLICY.deviceRateLimit).
    deviceRateLimit: { burst: 600, perHour: 600 },
  },
  updates: { checkEvery: '20h', chunkSize: '64KiB', slowLinkBytesPerSecond: '2KiB' },
  image: { kind: 'app', appSecurityVersion: 1, defectRate: 0 },
  group: { osFeed: 'RETAIL', updatePolicy: 'ACCEPT_ALL' },
  rollout: { startAt: '0s', pauseBetweenWaves: '0s', autoRollback: false },
} as const;

/** Largest fleet a scenario may describe. */
export const MAX_FLEET_SIZE = 1_000_000;

/** Hostile devices may make up at most this share of the fleet. */
export const MAX_HOSTILE_SHARE = 0.5;

/** Devices with an update fault may make up at most this share of the fleet. */
export const MAX_UPDATE_FAULT_SHARE = 0.5;

/** Smallest and largest `updates.chunkSize`. */
export const MIN_CHUNK_BYTES = 4 * 1024;
export const MAX_CHUNK_BYTES = 512 * 1024;

/** Largest image: the operator API's limit on UploadImage content (`MAX_IMAGE_BYTES` there). */
export const MAX_IMAGE_BYTES = 4 * 1024 * 1024 - 64 * 1024;

/** Names of the five device groups every product gets (`groups` may add more). */
export const DEFAULT_GROUP_NAMES: readonly string[] = DEFAULT_DEVICE_GROUPS.map((g) => g.name);

/** What a rollout's `expect` may assert about its final state. */
export const ROLLOUT_EXPECTATIONS = ['completed', 'halted'] as const;

/** `completed` or `halted`. */
export type RolloutExpectation = (typeof ROLLOUT_EXPECTATIONS)[number];

/** Image kinds. */
export const IMAGE_KINDS = ['app', 'os'] as const;

/** Image names and versions the operator API accepts (UploadImage). */
const IMAGE_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const IMAGE_VERSION = /^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$/;

// ---------------------------------------------------------------------------------------------
// Compiled form
// ---------------------------------------------------------------------------------------------

/** An app every device runs. */
export interface AppSpec {
  readonly name: string;
  readonly version: string;
}

/** One OS version's share of the fleet, resolved to a device count. */
export interface OsShare {
  readonly version: OsVersion;
  readonly securityVersion: number;
  /** Share of the devices that run the mix (all but `belowMinVersion` devices), as written. */
  readonly share: number;
  /** Exact number of devices (largest-remainder rounding of `share`). */
  readonly count: number;
}

/** The fleet, with every share resolved to a device count. */
export interface FleetConfig {
  readonly size: number;
  /**
   * OS versions in ascending order. Counts sum to `size - faults.belowMinVersion`: devices with
   * the `belowMinVersion` fault run {@link FleetConfig.belowMinOsVersion} instead of the mix.
   */
  readonly osMix: readonly OsShare[];
  readonly apps: readonly AppSpec[];
  /** Devices per fault profile (every profile present, 0 when unused); `clonedKey` is even. */
  readonly faults: Readonly<Record<FaultProfile, number>>;
  /** Sum of `faults`. */
  readonly hostileDevices: number;
  /** What `belowMinVersion` devices run; `null` when no known version is below the minimum. */
  readonly belowMinOsVersion: OsVersion | null;
}

/** `shared`: devices multiplex over `pool` NATS connections; `per-device`: one connection each. */
export type ConnectionConfig =
  { readonly mode: 'shared'; readonly pool: number } | { readonly mode: 'per-device' };

/** Connection mode names. */
export const CONNECTION_MODES = ['shared', 'per-device'] as const;

/** Fields every resolved stage has. Times are simulated ms from the start of the run. */
interface StageBase {
  /** Position in `stages`. */
  readonly index: number;
  readonly startMs: number;
  readonly endMs: number;
  /** Devices this stage powers on (0 for `hold`). */
  readonly devices: number;
  /** Devices powered on by earlier stages: this stage powers on plan indexes `firstDevice ..< firstDevice + devices`. */
  readonly firstDevice: number;
}

/** A resolved load stage. Stages run back to back; the run idles after the last until `durationMs`. */
export type ScenarioStage =
  | (StageBase & { readonly kind: 'bootStorm' })
  | (StageBase & { readonly kind: 'ramp'; readonly ratePerSec: number })
  | (StageBase & { readonly kind: 'hold' });

/** Stage kinds. */
export const STAGE_KINDS = ['bootStorm', 'ramp', 'hold'] as const;

/**
 * Device behaviour: the device actor's own knobs (every time SIMULATED ms, see `DeviceBehaviour`
 * in actors/device) plus the network timeout the loadgen applies.
 */
export interface DeviceConfig extends DeviceBehaviour {
  /** WALL ms a device waits for a reply from the service before counting a transport error. */
  readonly requestTimeoutMs: number;
}

/** Knobs passed to the security-service shard (simulated ms). */
export interface ServiceConfig {
  readonly nonceTtlMs: number;
  readonly certificateLifetimeMs: number;
  readonly minSecurityVersion: number;
  readonly maxClockSkewMs: number;
  /**
   * Each device's request budget after attestation (the shard's `--device-rate-burst` and
   * `--device-rate-per-hour`); the `flood` attack is judged against it.
   */
  readonly deviceRateLimit: DeviceRateLimit;
}

/** The device update agent's behaviour (times simulated). */
export interface UpdatesConfig {
  /** Devices check for updates after their first attestation at boot, then this often. */
  readonly checkEveryMs: number;
  /** Download chunk size, {@link MIN_CHUNK_BYTES}..{@link MAX_CHUNK_BYTES}. */
  readonly chunkBytes: number;
  /** Download speed of `slowLink` devices (simulated bytes per second). */
  readonly slowLinkBytesPerSecond: number;
  /**
   * Devices per update fault (every fault present, 0 when unused). Only healthy devices (no
   * fault profile) get one; the sum is at most {@link MAX_UPDATE_FAULT_SHARE} of the fleet.
   */
  readonly faults: Readonly<Record<UpdateFault, number>>;
  /**
   * Healthy devices whose application asks to postpone OS updates when one is offered, and for
   * how long (simulated ms). The agent grants at most {@link MAX_OS_DEFERRAL_MS} from the first ask.
   */
  readonly deferOs: { readonly devices: number; readonly forMs: number };
}

/** Longest OS deferral an application can obtain (Azure Sphere: 24 h). */
export const MAX_OS_DEFERRAL_MS = DEFAULT_UPDATE_BEHAVIOUR.maxDeferralMs;

/** An image the run uploads; its content is `imageContent(scenario.seed, image)`. */
export interface ImageSpec {
  /** How rollouts refer to it; unique within the scenario. */
  readonly id: string;
  readonly kind: 'app' | 'os';
  readonly name: string;
  readonly version: string;
  /** Anti-rollback security version (apps default to 1; OS images must give it). */
  readonly securityVersion: number;
  readonly sizeBytes: number;
  /** Share [0, 1] of devices on which the image is defective (see `imageDefective`). */
  readonly defectRate: number;
}

/** A device group the run creates in addition to the product's five default groups. */
export interface DeviceGroupSpec {
  readonly name: string;
  readonly osFeed: OsFeed;
  readonly updatePolicy: UpdatePolicy;
}

/** A rollout the run creates as a deployment at `startAtMs`. */
export interface RolloutSpec {
  /** Unique within the scenario. */
  readonly name: string;
  /** An `ImageSpec.id`. */
  readonly imageId: string;
  /** A default group name ({@link DEFAULT_GROUP_NAMES}) or a `DeviceGroupSpec.name`. */
  readonly group: string;
  /**
   * Devices assigned to `group` (healthy devices only). Rollouts to the same group share its
   * devices, so they have the same count; different groups get disjoint devices.
   */
  readonly devices: number;
  /** Simulated ms after the run starts, before `durationMs`. */
  readonly startAtMs: number;
  /** What CreateDeployment gets; `compileRolloutConfig(config)` accepts it. */
  readonly config: RolloutConfigInput;
  /** The final state the run asserts (a verdict like fault profiles), or `null`. */
  readonly expect: RolloutExpectation | null;
}

/** A compiled scenario: fully filled, validated, every unit normalised. */
export interface Scenario {
  readonly name: string;
  /** Empty when the file has none. */
  readonly description: string;
  /** Always a string: a numeric seed `42` becomes `"42"` (the same seed as `"42"`). */
  readonly seed: string;
  /** Simulated seconds per wall second. */
  readonly timeScale: number;
  /** Simulated length of the run. */
  readonly durationMs: number;
  /** `durationMs / timeScale`: how long the run takes on the wall clock. */
  readonly wallDurationMs: number;
  readonly fleet: FleetConfig;
  readonly connections: ConnectionConfig;
  /** At least one stage; device counts sum to `fleet.size`; the last ends by `durationMs`. */
  readonly stages: readonly ScenarioStage[];
  readonly device: DeviceConfig;
  readonly service: ServiceConfig;
  /** Device update agents (defaults when the file has no `updates`). */
  readonly updates: UpdatesConfig;
  /** Custom device groups (empty when the file has none). */
  readonly groups: readonly DeviceGroupSpec[];
  /** Images the run uploads (empty when none). */
  readonly images: readonly ImageSpec[];
  /** Rollouts in file order (empty when none). */
  readonly rollouts: readonly RolloutSpec[];
  readonly thresholds: readonly Threshold[];
  /** Faults to inject and the stack they need (chaos.ts); `null` without a `chaos:` section. */
  readonly chaos: ChaosConfig | null;
  /** Device crashes and error report uploads (error-reports.ts; defaults without `errors:`). */
  readonly errors: ErrorsConfig;
  /** Hostile traffic besides the fleet (attacks.ts, loadgen/hostile); `null` without `attacks:`. */
  readonly attacks: AttacksConfig | null;
}

/** Where the scenario input came from; `text` lets errors carry line numbers. */
export interface ScenarioSource {
  readonly file?: string | undefined;
  readonly text?: string | undefined;
}

// ---------------------------------------------------------------------------------------------
// Schema of the written form
// ---------------------------------------------------------------------------------------------

const rateField = (options: { required?: boolean } = {}) => field(parseRate, options);

/** A fault assignment: a share of the fleet in [0, 1) (`0.01` or `"1%"`), or an exact `{ count: N }`. */
type FaultAmount = { readonly share: number } | { readonly count: number };

function parseFaultAmount(value: unknown): FaultAmount {
  const expected = 'expected a share of the fleet in [0, 1) like 0.005 or "0.5%", or { count: N }';
  const percent = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?|\.\d+)\s*%\s*$/.exec(value) : null;
  const share = typeof value === 'number' ? value : percent === null ? undefined : Number(percent[1]) / 100;
  if (share !== undefined) {
    if (!(share >= 0 && share < 1)) throw new FieldError(`${expected}, got ${describeValue(value)}`);
    return { share };
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const key of Object.keys(value)) {
      if (key !== 'count') throw new FieldError(`unknown key "${key}" (only "count" is allowed)`, [key]);
    }
    const count = (value as { count?: unknown }).count;
    if (count === undefined) throw new FieldError('required', ['count']);
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) {
      throw new FieldError(`expected a whole number of devices (0 or more), got ${describeValue(count)}`, [
        'count',
      ]);
    }
    return { count };
  }
  throw new FieldError(`${expected}, got ${describeValue(value)}`);
}

/** Stage device amount: a count, or a share of the fleet written as a percentage. */
type DeviceAmount = { readonly count: number } | { readonly percent: number };

function parseDeviceAmount(value: unknown): DeviceAmount {
  const expected = 'expected a device count like 1500 or a share of the fleet like "75%"';
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1) return { count: value };
  if (typeof value === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value);
    const percent = match === null ? NaN : Number(match[1]);
    if (percent > 0 && percent <= 100) return { percent };
  }
  throw new FieldError(`${expected}, got ${describeValue(value)}`);
}

function parseSeed(value: unknown): string {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new FieldError(`expected a number or a non-empty string, got ${describeValue(value)}`);
}

/** `requestTimeout` is WALL ms: a number of ms or a duration string. */
function parseWallTimeout(value: unknown): number {
  const ms = parseDuration(value);
  if (ms <= 0) throw new FieldError(`must be longer than 0, got ${describeValue(value)}`);
  return ms;
}

/** A share written as a number (`0.95`) or a percentage (`"95%"`); `zero`: whether 0 is allowed. */
function parseShare(value: unknown, zero: boolean): number {
  let share = NaN;
  if (typeof value === 'number') share = value;
  else if (typeof value === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*%\s*$/.exec(value);
    if (match !== null) share = Number(match[1]) / 100;
  }
  if (!(share <= 1 && (zero ? share >= 0 : share > 0))) {
    throw new FieldError(
      `expected a share in ${zero ? '[0, 1]' : '(0, 1]'} like 0.95 or "95%", got ${describeValue(value)}`,
    );
  }
  return share;
}

/** `{ count: N }` with N a whole number >= `min`; `allowed` are the keys the mapping may have. */
function parseCountObject(value: object, min: number, allowed: readonly string[]): number | undefined {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      const only = allowed.map((k) => `"${k}"`).join(' or ');
      throw new FieldError(`unknown key "${key}" (only ${only} is allowed)`, [key]);
    }
  }
  const count = (value as { count?: unknown }).count;
  if (count === undefined) return undefined;
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < min) {
    throw new FieldError(`expected a whole number of devices (${min} or more), got ${describeValue(count)}`, [
      'count',
    ]);
  }
  return count;
}

/**
 * Rollout `devices`: a device count (`400` or `{ count: 400 }`, like stage `devices`) or a share
 * of the healthy devices (`"50%"`, or a fraction below 1 like `0.5`).
 */
function parseDeviceSelection(value: unknown): FaultAmount {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const count = parseCountObject(value, 1, ['count']);
    if (count === undefined) throw new FieldError('required', ['count']);
    return { count };
  }
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1) return { count: value };
  const expected =
    'expected a device count like 400 or { count: 400 }, or a share of the healthy devices like "50%"';
  if (typeof value === 'number' && value > 1) throw new FieldError(`${expected}, got ${value}`);
  try {
    return { share: parseShare(value, false) };
  } catch {
    throw new FieldError(`${expected}, got ${describeValue(value)}`);
  }
}

/** One rollout wave: a cumulative share (`"25%"`, `0.25`, `{ share: 0.25 }`) or `{ count: N }`. */
function parseWave(value: unknown): WaveSpec {
  const expected = 'expected a cumulative share like "25%" or 0.25, or { count: N }';
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const count = parseCountObject(value, 1, ['count', 'share']);
    const share = (value as { share?: unknown }).share;
    if ((count === undefined) === (share === undefined)) {
      throw new FieldError('needs exactly one of count or share');
    }
    if (count !== undefined) return { count };
    try {
      return { share: parseShare(share, false) };
    } catch (error) {
      throw new FieldError((error as Error).message, ['share']);
    }
  }
  if (typeof value === 'number' && value > 1) {
    throw new FieldError(`${expected}, got ${value} (write { count: ${value} } for ${value} devices)`);
  }
  try {
    return { share: parseShare(value, false) };
  } catch {
    throw new FieldError(`${expected}, got ${describeValue(value)}`);
  }
}

function parseChunkSize(value: unknown): number {
  const bytes = parseSize(value);
  if (bytes < MIN_CHUNK_BYTES || bytes > MAX_CHUNK_BYTES) {
    throw new FieldError(
      `must be between ${formatSize(MIN_CHUNK_BYTES)} and ${formatSize(MAX_CHUNK_BYTES)}, got ${describeValue(value)}`,
    );
  }
  return bytes;
}

function parseBytesPerSecond(value: unknown): number {
  const bytes = parseSize(value);
  if (bytes <= 0) throw new FieldError(`must be more than 0 bytes per second, got ${describeValue(value)}`);
  return bytes;
}

function parseImageSize(value: unknown): number {
  const bytes = parseSize(value);
  if (bytes < 1 || bytes > MAX_IMAGE_BYTES) {
    throw new FieldError(
      `must be between 1 byte and ${formatSize(MAX_IMAGE_BYTES)} (the operator API's limit), got ${describeValue(value)}`,
    );
  }
  return bytes;
}

function parseImageName(value: unknown): string {
  if (typeof value === 'string' && IMAGE_NAME.test(value)) return value;
  throw new FieldError(
    `expected 1 to 64 characters of a-z, 0-9 and "-", starting with a letter or digit, got ${describeValue(value)}`,
  );
}

function parseImageVersion(value: unknown): string {
  if (typeof value === 'string' && IMAGE_VERSION.test(value)) return value;
  const hint = typeof value === 'number' ? ' (quote it in YAML)' : '';
  throw new FieldError(
    `expected a version of 1 to 32 characters of A-Z, a-z, 0-9, ".", "+" and "-", got ${describeValue(value)}${hint}`,
  );
}

/**
 * `record` for a mapping a user writes. zod 4.1's record tells a plain object by reading
 * `input.constructor.prototype`, which throws a TypeError for a key `constructor` set to null
 * (YAML `constructor: ~`). No scenario mapping may have that key: it is reported with
 * `unknownKey`'s message, and the record checks the other keys in the next pass.
 */
function withoutConstructorKey<T extends z.ZodType>(record: T, unknownKey: (key: string) => string) {
  return z.preprocess((value, ctx) => {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, 'constructor')) return value;
    ctx.addIssue({ code: 'custom', message: unknownKey('constructor'), path: ['constructor'] });
    return Object.fromEntries(Object.entries(value).filter(([key]) => key !== 'constructor'));
  }, record);
}

function unknownOsVersion(version: string): string {
  const quoted = OS_VERSION_LIST.find((known) => String(Number(known)) === version);
  const hint =
    quoted === undefined
      ? `known versions: ${OS_VERSION_LIST.join(', ')}`
      : `did you mean "${quoted}"? Quote versions in YAML ("${quoted}": ...), unquoted ${quoted} is the number ${version}`;
  return `unknown OS version "${version}"; ${hint}`;
}

function unknownMetric(metric: string): string {
  const suggestion = closest(metric, Object.keys(THRESHOLD_METRICS));
  const hint = suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`;
  return `unknown metric${hint}; known metrics: ${Object.keys(THRESHOLD_METRICS).join(', ')}`;
}

const osMixRecord = z.record(z.string(), z.number().min(0).max(1)).superRefine((mix, ctx) => {
  let sum = 0;
  for (const [version, share] of Object.entries(mix)) {
    sum += share;
    if (!isOsVersion(version)) {
      ctx.addIssue({ code: 'custom', message: unknownOsVersion(version), path: [version] });
    }
  }
  if (Object.keys(mix).length === 0)
    ctx.addIssue({ code: 'custom', message: 'needs at least one OS version' });
  else if (Math.abs(sum - 1) > 1e-6) {
    ctx.addIssue({ code: 'custom', message: `shares must sum to 1, got ${Number(sum.toFixed(9))}` });
  }
});

const osMixSchema = withoutConstructorKey(osMixRecord, unknownOsVersion);

const thresholdsRecord = z
  .record(z.string(), z.union([z.string(), z.array(z.string())]))
  .transform((defs, ctx): Threshold[] => {
    const out: Threshold[] = [];
    for (const [metric, value] of Object.entries(defs)) {
      if (!Object.hasOwn(THRESHOLD_METRICS, metric)) {
        ctx.addIssue({ code: 'custom', message: unknownMetric(metric), path: [metric] });
        continue;
      }
      const list = typeof value === 'string' ? [value] : value;
      list.forEach((expression, i) => {
        try {
          out.push(parseThreshold(metric, expression));
        } catch (error) {
          const path = typeof value === 'string' ? [metric] : [metric, i];
          ctx.addIssue({ code: 'custom', message: (error as Error).message, path });
        }
      });
    }
    return out;
  });

const thresholdsSchema = withoutConstructorKey(thresholdsRecord, unknownMetric);

const stageSchema = z
  .strictObject({
    bootStorm: z
      .strictObject({ devices: field(parseDeviceAmount), within: durationField({ required: true }) })
      .optional(),
    ramp: z
      .strictObject({ rate: rateField({ required: true }), for: durationField({ required: true }) })
      .optional(),
    hold: z.strictObject({ for: durationField({ required: true }) }).optional(),
  })
  .superRefine((stage, ctx) => {
    const kinds = STAGE_KINDS.filter((kind) => stage[kind] !== undefined);
    if (kinds.length !== 1) {
      const got = kinds.length === 0 ? 'none' : kinds.join(' and ');
      ctx.addIssue({
        code: 'custom',
        message: `expected exactly one of ${STAGE_KINDS.join(', ')}, got ${got}`,
      });
    }
  });

const imageSchema = z.strictObject({
  id: z.string().min(1),
  kind: z.enum(IMAGE_KINDS).optional(),
  name: field(parseImageName, { required: true }),
  version: field(parseImageVersion, { required: true }),
  securityVersion: z.number().int().min(0).max(0xffff_ffff).optional(),
  size: field(parseImageSize, { required: true }),
  defectRate: field((value) => parseShare(value, true)),
  /** Crashes per day of every device running the image (its app, or the OS): error-reports.ts. */
  crashesPerDay: field(parseCrashRate),
});

const groupSchema = z.strictObject({
  name: z.string().min(1).max(128),
  osFeed: z.enum(OS_FEEDS).optional(),
  updatePolicy: z.enum(UPDATE_POLICIES).optional(),
});

const rolloutSchema = z.strictObject({
  name: z.string().min(1),
  image: z.string().min(1),
  group: z.string().min(1),
  devices: field(parseDeviceSelection),
  startAt: durationField(),
  waves: z.array(field(parseWave, { required: true })).min(1),
  successThreshold: field((value) => parseShare(value, true), { required: true }),
  errorCondition: z.strictObject({
    count: z.number().int().min(1).optional(),
    share: field((value) => parseShare(value, false)),
  }),
  pauseBetweenWaves: durationField(),
  autoRollback: z.boolean().optional(),
  expect: z.enum(ROLLOUT_EXPECTATIONS).optional(),
});

/**
 * The zod schema of a scenario as written (YAML or JSON). Strict: an unknown key anywhere is an
 * error. Its output still has optional fields; {@link compileScenario} fills them.
 */
export const scenarioInputSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  seed: field(parseSeed),
  timeScale: z.number().positive().optional(),
  duration: durationField({ required: true, positive: true }),
  fleet: z.strictObject({
    size: z.number().int().min(1).max(MAX_FLEET_SIZE),
    osMix: osMixSchema.optional(),
    apps: z
      .array(z.strictObject({ name: z.string().min(1), version: z.string().min(1) }))
      .min(1)
      .optional(),
    faults: z
      .strictObject(
        Object.fromEntries(FAULT_PROFILE_LIST.map((profile) => [profile, field(parseFaultAmount)])) as Record<
          FaultProfile,
          ReturnType<typeof field<FaultAmount>>
        >,
      )
      .optional(),
  }),
  connections: z
    .strictObject({
      mode: z.enum(CONNECTION_MODES).optional(),
      pool: z.number().int().min(1).max(100_000).optional(),
    })
    .optional(),
  stages: z.array(stageSchema).min(1).optional(),
  device: z
    .strictObject({
      attestEvery: durationField({ positive: true }),
      heartbeatEvery: durationField({ positive: true }),
      retry: z
        .strictObject({
          initial: durationField({ positive: true }),
          max: durationField({ positive: true }),
          multiplier: z.number().min(1).optional(),
          jitter: z.number().min(0).max(1).optional(),
        })
        .optional(),
      requestTimeout: field(parseWallTimeout),
      replayAfter: durationField({ positive: true }),
      renewBefore: durationField({ positive: false }),
    })
    .optional(),
  service: z
    .strictObject({
      nonceTtl: durationField({ positive: true }),
      certificateLifetime: durationField({ positive: true }),
      minSecurityVersion: z.number().int().min(0).optional(),
      maxClockSkew: durationField(),
      deviceRateLimit: z
        .strictObject({
          burst: z.number().int().min(1).max(1e9),
          perHour: z.number().int().min(1).max(1e9),
        })
        .optional(),
    })
    .optional(),
  updates: z
    .strictObject({
      checkEvery: durationField({ positive: true }),
      chunkSize: field(parseChunkSize),
      faults: z
        .strictObject(
          Object.fromEntries(UPDATE_FAULT_LIST.map((fault) => [fault, field(parseFaultAmount)])) as Record<
            UpdateFault,
            ReturnType<typeof field<FaultAmount>>
          >,
        )
        .optional(),
      slowLinkBytesPerSecond: field(parseBytesPerSecond),
      deferOs: z
        .strictObject({
          devices: field(parseFaultAmount, { required: true }),
          for: durationField({ required: true, positive: true }),
        })
        .optional(),
    })
    .optional(),
  groups: z.array(groupSchema).optional(),
  images: z.array(imageSchema).optional(),
  rollouts: z.array(rolloutSchema).optional(),
  thresholds: thresholdsSchema.optional(),
  chaos: chaosSchema.optional(),
  errors: errorsSchema.optional(),
  attacks: attacksSchema.optional(),
});

type ScenarioInput = z.output<typeof scenarioInputSchema>;

// ---------------------------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------------------------

/**
 * Validate a parsed scenario (the object YAML or JSON gave) into a {@link Scenario}.
 *
 * @param input the parsed document (not the text)
 * @param source optional file name (shown in the error header) and the YAML text it was parsed
 *   from (each problem then carries its line and column)
 * @throws {ScenarioError} listing every problem found, each naming its field path
 */
export function compileScenario(input: unknown, source: ScenarioSource = {}): Scenario {
  const issues: ScenarioIssue[] = [];
  const parsed = scenarioInputSchema.safeParse(input, { reportInput: true });
  let scenario: Scenario | undefined;
  if (parsed.success) {
    scenario = resolve(parsed.data, issues);
  } else {
    for (const issue of parsed.error.issues) issues.push(...fromZodIssue(issue, scenarioInputSchema));
  }
  if (issues.length > 0 || scenario === undefined) {
    const located = source.text === undefined ? issues : locateIssues(issues, source.text);
    throw new ScenarioError(located, { file: source.file });
  }
  return scenario;
}

function resolve(input: ScenarioInput, issues: ScenarioIssue[]): Scenario | undefined {
  const before = issues.length;
  const add = (path: (string | number)[], message: string): void => void issues.push({ path, message });
  const d = SCENARIO_DEFAULTS;

  const timeScale = input.timeScale ?? d.timeScale;
  const durationMs = input.duration ?? 0;
  const service: ServiceConfig = {
    nonceTtlMs: input.service?.nonceTtl ?? parseDuration(d.service.nonceTtl),
    certificateLifetimeMs: input.service?.certificateLifetime ?? parseDuration(d.service.certificateLifetime),
    minSecurityVersion: input.service?.minSecurityVersion ?? d.service.minSecurityVersion,
    maxClockSkewMs: input.service?.maxClockSkew ?? parseDuration(d.service.maxClockSkew),
    deviceRateLimit: input.service?.deviceRateLimit ?? d.service.deviceRateLimit,
  };

  const retry = {
    initialMs: input.device?.retry?.initial ?? parseDuration(d.device.retry.initial),
    maxMs: input.device?.retry?.max ?? parseDuration(d.device.retry.max),
    multiplier: input.device?.retry?.multiplier ?? d.device.retry.multiplier,
    jitter: input.device?.retry?.jitter ?? d.device.retry.jitter,
  };
  if (retry.maxMs < retry.initialMs) {
    add(
      ['device', 'retry', input.device?.retry?.max === undefined ? 'initial' : 'max'],
      `retry.max (${formatDuration(retry.maxMs)}) must not be shorter than retry.initial (${formatDuration(retry.initialMs)})`,
    );
  }
  const device: DeviceConfig = {
    attestEveryMs: input.device?.attestEvery ?? parseDuration(d.device.attestEvery),
    heartbeatEveryMs: input.device?.heartbeatEvery ?? parseDuration(d.device.heartbeatEvery),
    retry,
    requestTimeoutMs: input.device?.requestTimeout ?? d.device.requestTimeout,
    replayAfterMs: input.device?.replayAfter ?? parseDuration(d.device.replayAfter),
    renewBeforeMs: input.device?.renewBefore ?? parseDuration(d.device.renewBefore),
  };

  const fleet = resolveFleet(input, service, add);
  const connections = resolveConnections(input, add);
  const stages = resolveStages(input, fleet.size, durationMs, add);
  const updates = resolveUpdates(input, fleet, add);
  const { groups, images, rollouts } = resolveRollouts(input, fleet, durationMs, add);

  const thresholds = input.thresholds ?? [];
  if (fleet.hostileDevices === 0 && thresholds.some((t) => t.metric === 'hostile_rejected_rate')) {
    add(
      ['thresholds', 'hostile_rejected_rate'],
      'the fleet has no hostile devices (fleet.faults assigns none), so this threshold has no data; remove it or add faults',
    );
  }
  for (const metric of new Set(thresholds.map((t) => t.metric))) {
    if (!(ROLLOUT_METRICS as readonly string[]).includes(metric)) continue;
    if (rollouts.length === 0) {
      add(
        ['thresholds', metric],
        'the scenario has no rollouts, so this threshold has no data; remove it or add rollouts',
      );
    } else if (metric === 'rollout_expectations_met' && rollouts.every((r) => r.expect === null)) {
      add(
        ['thresholds', metric],
        'no rollout has an "expect", so this threshold has no data; remove it or add expect to a rollout',
      );
    }
  }

  const chaos = resolveChaos(input.chaos, durationMs / timeScale, add);
  const errors = resolveErrors(input.errors, input.images ?? [], images, add);
  const attacks = resolveAttacks(input.attacks, durationMs, service.deviceRateLimit, add);

  if (issues.length > before) return undefined;
  return {
    name: input.name,
    description: input.description ?? '',
    seed: input.seed ?? d.seed,
    timeScale,
    durationMs,
    wallDurationMs: durationMs / timeScale,
    fleet,
    connections,
    stages,
    device,
    service,
    updates,
    groups,
    images,
    rollouts,
    thresholds,
    chaos,
    errors,
    attacks,
  };
}

/** Threshold metrics that measure rollouts (they need at least one rollout). */
const ROLLOUT_METRICS = [
  'rollouts_completed',
  'rollouts_halted',
  'rollout_expectations_met',
  'update_success_rate',
] as const;

type AddIssue = (path: (string | number)[], message: string) => void;

function resolveFleet(input: ScenarioInput, service: ServiceConfig, add: AddIssue): FleetConfig {
  const size = input.fleet.size;
  const faults = resolveFaults(input, add);
  const hostileDevices = FAULT_PROFILE_LIST.reduce((sum, profile) => sum + faults[profile], 0);

  const belowMinOsVersion = belowMinimumVersion(service.minSecurityVersion);
  if (faults.belowMinVersion > 0 && belowMinOsVersion === null) {
    add(
      ['fleet', 'faults', 'belowMinVersion'],
      `no known OS version has a security version below service.minSecurityVersion (${service.minSecurityVersion})`,
    );
  }

  const mix: Record<string, number> = input.fleet.osMix ?? SCENARIO_DEFAULTS.osMix;
  const versions = OS_VERSION_LIST.filter((version) => (mix[version] ?? 0) > 0);
  for (const version of versions) {
    const { securityVersion } = OS_VERSIONS[version];
    if (securityVersion < service.minSecurityVersion) {
      add(
        ['fleet', 'osMix', version],
        `OS ${version} has security version ${securityVersion}, below service.minSecurityVersion ` +
          `(${service.minSecurityVersion}), so these healthy devices would be rejected; use the belowMinVersion fault instead`,
      );
    }
  }
  const mixDevices = Math.max(0, size - faults.belowMinVersion);
  const counts = apportion(
    mixDevices,
    versions.map((version) => mix[version] ?? 0),
  );
  const osMix = versions.map((version, i): OsShare => ({
    version,
    securityVersion: OS_VERSIONS[version].securityVersion,
    share: mix[version] ?? 0,
    count: counts[i] ?? 0,
  }));

  const apps = (input.fleet.apps ?? SCENARIO_DEFAULTS.apps).map((app) => ({
    name: app.name,
    version: app.version,
  }));
  return { size, osMix, apps, faults, hostileDevices, belowMinOsVersion };
}

function resolveFaults(input: ScenarioInput, add: AddIssue): Record<FaultProfile, number> {
  return resolveAmounts({
    keys: FAULT_PROFILE_LIST,
    written: input.fleet.faults ?? {},
    size: input.fleet.size,
    path: ['fleet', 'faults'],
    what: 'hostile devices',
    maxShare: MAX_HOSTILE_SHARE,
    pairs: (profile) => FAULT_PROFILES[profile].pairs,
    add,
  });
}

/**
 * Resolve `{ key: share | { count } }` to device counts. Counts are taken as written; shares of
 * `size` are rounded by largest remainder together with the devices left over, so rounding is exact
 * overall. The total may be at most `maxShare` of `size`. Paired keys get even counts.
 */
function resolveAmounts<K extends string>(opts: {
  keys: readonly K[];
  written: Partial<Record<K, FaultAmount | undefined>>;
  size: number;
  path: (string | number)[];
  what: string;
  maxShare: number;
  pairs: (key: K) => boolean;
  add: AddIssue;
}): Record<K, number> {
  const { keys, written, size, path, add } = opts;
  const counts = Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
  const shared: K[] = [];
  let explicit = 0;
  let quotaTotal = 0;
  for (const key of keys) {
    const amount = written[key];
    if (amount === undefined) continue;
    if ('count' in amount) {
      counts[key] = amount.count;
      explicit += amount.count;
      if (opts.pairs(key) && amount.count % 2 !== 0) {
        add(
          [...path, key, 'count'],
          `${key} devices come in pairs that share one identity, so the count must be even, got ${amount.count}`,
        );
      }
    } else {
      shared.push(key);
      quotaTotal += amount.share * size;
    }
  }
  const limit = Math.floor(size * opts.maxShare);
  if (explicit + quotaTotal > limit + 1e-9) {
    const total = Number((explicit + quotaTotal).toFixed(2));
    add(path, `${total} ${opts.what} is more than half of the fleet (at most ${limit} of ${size})`);
    return counts;
  }
  // Largest remainder over the share keys plus "the rest", so rounding is exact overall.
  const weights = shared.map((key) => {
    const amount = written[key];
    return amount !== undefined && 'share' in amount ? amount.share * size : 0;
  });
  const parts = apportion(size - explicit, [...weights, size - explicit - quotaTotal]);
  shared.forEach((key, i) => {
    const part = parts[i] ?? 0;
    // Pairs: an odd share-derived count gives its last device back to the rest.
    counts[key] = opts.pairs(key) ? part - (part % 2) : part;
  });
  return counts;
}

function resolveUpdates(input: ScenarioInput, fleet: FleetConfig, add: AddIssue): UpdatesConfig {
  const written = input.updates;
  const d = SCENARIO_DEFAULTS.updates;
  const faults = resolveAmounts({
    keys: UPDATE_FAULT_LIST,
    written: written?.faults ?? {},
    size: fleet.size,
    path: ['updates', 'faults'],
    what: 'devices with update faults',
    maxShare: MAX_UPDATE_FAULT_SHARE,
    pairs: () => false,
    add,
  });
  const defer = written?.deferOs;
  const deferring = resolveAmounts({
    keys: ['devices'] as const,
    written: defer === undefined ? {} : { devices: defer.devices },
    size: fleet.size,
    path: ['updates', 'deferOs'],
    what: 'devices deferring OS updates',
    maxShare: MAX_UPDATE_FAULT_SHARE,
    pairs: () => false,
    add,
  });
  // Hostile devices, update faults and deferring devices are each at most half of the fleet, so
  // the latter two always fit on the healthy devices (planFleet gives them only to those).
  return {
    checkEveryMs: written?.checkEvery ?? parseDuration(d.checkEvery),
    chunkBytes: written?.chunkSize ?? parseSize(d.chunkSize),
    slowLinkBytesPerSecond: written?.slowLinkBytesPerSecond ?? parseSize(d.slowLinkBytesPerSecond),
    faults,
    deferOs: { devices: deferring.devices, forMs: defer?.for ?? 0 },
  };
}

/** Maps a `compileRolloutConfig` error field (`waves[2].share`, `errorThreshold.count`...) to the rollout's keys. */
function rolloutConfigPath(field: string): (string | number)[] {
  const wave = /^waves\[(\d+)\]/.exec(field);
  if (wave !== null) return ['waves', Number(wave[1])];
  if (field.startsWith('errorThreshold')) {
    const sub = field.split('.')[1];
    return sub === undefined ? ['errorCondition'] : ['errorCondition', sub];
  }
  if (field === 'pauseBetweenWavesMs') return ['pauseBetweenWaves'];
  if (field === 'config') return [];
  return [field];
}

function resolveRollouts(
  input: ScenarioInput,
  fleet: FleetConfig,
  durationMs: number,
  add: AddIssue,
): { groups: DeviceGroupSpec[]; images: ImageSpec[]; rollouts: RolloutSpec[] } {
  const d = SCENARIO_DEFAULTS;

  const images: ImageSpec[] = [];
  const imageIndex = new Map<string, number>();
  const targetIndex = new Map<string, number>();
  (input.images ?? []).forEach((written, i) => {
    const kind = written.kind ?? d.image.kind;
    const name = written.name ?? '';
    const version = written.version ?? '';
    const sameId = imageIndex.get(written.id);
    if (sameId !== undefined)
      add(['images', i, 'id'], `duplicate image id "${written.id}" (also images[${sameId}])`);
    else imageIndex.set(written.id, i);
    const target = `${kind} ${name} ${version}`;
    const sameTarget = targetIndex.get(target);
    if (sameTarget !== undefined) {
      add(
        ['images', i, 'version'],
        `images[${sameTarget}] is also the ${kind} image ${name} ${version}; the service keeps one image per kind, name and version`,
      );
    } else targetIndex.set(target, i);
    // A known OS build has its security version; devices report it when they attest.
    const release = kind === 'os' && isOsVersion(version) ? OS_VERSIONS[version] : undefined;
    if (
      release !== undefined &&
      written.securityVersion !== undefined &&
      written.securityVersion !== release.securityVersion
    ) {
      add(
        ['images', i, 'securityVersion'],
        `OS ${version} has security version ${release.securityVersion} (leave it out, or upload another version)`,
      );
    } else if (kind === 'os' && release === undefined && written.securityVersion === undefined) {
      add(
        ['images', i, 'securityVersion'],
        'required for os images the service has no build of (the anti-rollback version devices check)',
      );
    }
    images.push({
      id: written.id,
      kind,
      name,
      version,
      securityVersion: release?.securityVersion ?? written.securityVersion ?? d.image.appSecurityVersion,
      sizeBytes: written.size ?? 0,
      defectRate: written.defectRate ?? d.image.defectRate,
    });
  });

  const groups: DeviceGroupSpec[] = [];
  (input.groups ?? []).forEach((written, i) => {
    if (DEFAULT_GROUP_NAMES.includes(written.name)) {
      add(
        ['groups', i, 'name'],
        `"${written.name}" is one of the product's default groups, which exist already (${DEFAULT_GROUP_NAMES.join(', ')})`,
      );
    } else if (groups.some((g) => g.name === written.name)) {
      add(['groups', i, 'name'], `duplicate group name "${written.name}"`);
    } else {
      groups.push({
        name: written.name,
        osFeed: written.osFeed ?? d.group.osFeed,
        updatePolicy: written.updatePolicy ?? d.group.updatePolicy,
      });
    }
  });
  const policies = new Map<string, UpdatePolicy>([
    ...DEFAULT_DEVICE_GROUPS.map((g): [string, UpdatePolicy] => [g.name, g.updatePolicy]),
    ...groups.map((g): [string, UpdatePolicy] => [g.name, g.updatePolicy]),
  ]);

  const written = input.rollouts ?? [];
  const sizes = groupSizes(written, fleet.size - fleet.hostileDevices, add);
  const rollouts: RolloutSpec[] = [];
  const names = new Map<string, number>();
  written.forEach((r, i) => {
    const at = (...path: (string | number)[]): (string | number)[] => ['rollouts', i, ...path];
    const sameName = names.get(r.name);
    if (sameName !== undefined)
      add(at('name'), `duplicate rollout name "${r.name}" (also rollouts[${sameName}])`);
    else names.set(r.name, i);

    const image = images.find((candidate) => candidate.id === r.image);
    if (image === undefined) {
      const ids = images.map((candidate) => candidate.id);
      const suggestion = closest(r.image, ids);
      const hint = suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`;
      add(
        at('image'),
        `unknown image "${r.image}"${hint}; ${ids.length === 0 ? 'the scenario has no images' : `images: ${ids.join(', ')}`}`,
      );
    }
    const policy = policies.get(r.group);
    if (policy === undefined) {
      const known = [...policies.keys()];
      const suggestion = closest(r.group, known);
      const hint = suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`;
      const custom = groups.length === 0 ? '' : `; groups: ${groups.map((g) => g.name).join(', ')}`;
      add(
        at('group'),
        `unknown device group "${r.group}"${hint}; default groups: ${DEFAULT_GROUP_NAMES.join(', ')}${custom}`,
      );
    } else if (policy === 'SYSTEM_ONLY' && image?.kind === 'app') {
      add(
        at('group'),
        `"${r.group}" has update policy SYSTEM_ONLY (OS updates only), so its devices never install the app image "${image.id}"`,
      );
    }

    const startAtMs = r.startAt ?? parseDuration(d.rollout.startAt);
    if (startAtMs >= durationMs) {
      add(
        at('startAt'),
        `the rollout starts at ${formatDuration(startAtMs)} but the run lasts ${formatDuration(durationMs)}`,
      );
    }

    const { count, share } = r.errorCondition;
    const config: RolloutConfigInput = {
      waves: r.waves.map((wave) => wave ?? { share: 1 }),
      successThreshold: r.successThreshold ?? 0,
      errorThreshold: {
        ...(count === undefined ? {} : { count }),
        ...(share === undefined ? {} : { share }),
      },
      autoRollback: r.autoRollback ?? d.rollout.autoRollback,
      pauseBetweenWavesMs: Math.round(r.pauseBetweenWaves ?? parseDuration(d.rollout.pauseBetweenWaves)),
    };
    const compiled = compileRolloutConfig(config);
    if (!compiled.ok) {
      const { field, message } = compiled.error;
      add(
        at(...rolloutConfigPath(field)),
        message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message,
      );
    }

    rollouts.push({
      name: r.name,
      imageId: r.image,
      group: r.group,
      devices: sizes.get(r.group) ?? 0,
      startAtMs,
      config,
      expect: r.expect ?? null,
    });
  });
  return { groups, images, rollouts };
}

/**
 * Devices per rollout group. Rollouts to one group share its devices, so the counts they give
 * must agree; a share is of the `healthy` devices (rounded down). Groups whose rollouts give no
 * count split the healthy devices the others leave, evenly.
 */
function groupSizes(
  rollouts: NonNullable<ScenarioInput['rollouts']>,
  healthy: number,
  add: AddIssue,
): Map<string, number> {
  const order: string[] = [];
  const firstRollout = new Map<string, number>();
  const explicit = new Map<string, { count: number; index: number }>();
  rollouts.forEach((r, i) => {
    if (!firstRollout.has(r.group)) {
      order.push(r.group);
      firstRollout.set(r.group, i);
    }
    if (r.devices === undefined) return;
    const count = 'count' in r.devices ? r.devices.count : Math.floor(r.devices.share * healthy + 1e-9);
    if (count === 0) {
      add(
        ['rollouts', i, 'devices'],
        `this share of the ${healthy} healthy devices rounds down to no device`,
      );
      return;
    }
    const prior = explicit.get(r.group);
    if (prior === undefined) explicit.set(r.group, { count, index: i });
    else if (prior.count !== count) {
      add(
        ['rollouts', i, 'devices'],
        `rollouts to the same group share its devices: rollouts[${prior.index}] assigns ${prior.count} devices to "${r.group}", this one ${count}`,
      );
    }
  });
  const sizes = new Map<string, number>();
  let taken = 0;
  for (const [group, { count }] of explicit) {
    sizes.set(group, count);
    taken += count;
  }
  if (taken > healthy) {
    add(
      ['rollouts'],
      `rollout groups take ${taken} devices but the fleet has only ${healthy} healthy devices (no fault profile)`,
    );
    return sizes;
  }
  const rest = order.filter((group) => !explicit.has(group));
  const parts = apportion(
    healthy - taken,
    rest.map(() => 1),
  );
  rest.forEach((group, k) => {
    const part = parts[k] ?? 0;
    sizes.set(group, part);
    if (part === 0) {
      add(
        ['rollouts', firstRollout.get(group) ?? 0],
        `group "${group}" gets the healthy devices other groups leave, but they take all ${healthy}; give this rollout "devices"`,
      );
    }
  });
  return sizes;
}

function resolveConnections(input: ScenarioInput, add: AddIssue): ConnectionConfig {
  const written = input.connections;
  const mode = written?.mode ?? SCENARIO_DEFAULTS.connections.mode;
  if (mode === 'per-device') {
    if (written?.pool !== undefined) {
      add(
        ['connections', 'pool'],
        'per-device mode opens one connection per device and has no pool; remove pool or use mode: shared',
      );
    }
    return { mode };
  }
  return { mode, pool: written?.pool ?? SCENARIO_DEFAULTS.connections.pool };
}

function resolveStages(
  input: ScenarioInput,
  size: number,
  durationMs: number,
  add: AddIssue,
): ScenarioStage[] {
  type WrittenStage = NonNullable<ScenarioInput['stages']>[number];
  const defaultStage: WrittenStage = {
    bootStorm: { devices: undefined, within: parseDuration(SCENARIO_DEFAULTS.bootStormWithin) },
  };
  const written: readonly WrittenStage[] = input.stages ?? [defaultStage];
  const stages: ScenarioStage[] = [];
  let startMs = 0;
  let powered = 0;
  let broken = false;
  written.forEach((stage, index) => {
    const remaining = size - powered;
    const base = { index, startMs, firstDevice: powered };
    if (stage.bootStorm !== undefined) {
      const { devices: amount, within = 0 } = stage.bootStorm;
      const devices =
        amount === undefined
          ? remaining
          : 'count' in amount
            ? amount.count
            : Math.round((amount.percent / 100) * size);
      if (devices > remaining || devices === 0) {
        broken = true;
        add(
          ['stages', index, 'bootStorm', ...(amount === undefined ? [] : ['devices'])],
          remaining === 0
            ? 'no devices left to power on: earlier stages already power on the whole fleet'
            : `${devices} devices requested but only ${remaining} of ${size} are still off after earlier stages`,
        );
      }
      stages.push({
        ...base,
        kind: 'bootStorm',
        endMs: startMs + within,
        devices: Math.min(devices, remaining),
      });
      startMs += within;
    } else if (stage.ramp !== undefined) {
      const { rate = 0, for: lengthMs = 0 } = stage.ramp;
      // A ramp stops early once the whole fleet is on; it still occupies its full length.
      const arrivals = Math.floor((rate * lengthMs) / 1_000 + 1e-9);
      const devices = Math.min(arrivals, remaining);
      if (devices === 0) {
        broken = true;
        add(
          ['stages', index, 'ramp'],
          remaining === 0
            ? 'no devices left to power on: earlier stages already power on the whole fleet'
            : `a rate of ${rate}/s for ${formatDuration(lengthMs)} powers on no device`,
        );
      }
      stages.push({ ...base, kind: 'ramp', endMs: startMs + lengthMs, devices, ratePerSec: rate });
      startMs += lengthMs;
    } else if (stage.hold !== undefined) {
      const lengthMs = stage.hold.for ?? 0;
      stages.push({ ...base, kind: 'hold', endMs: startMs + lengthMs, devices: 0 });
      startMs += lengthMs;
    }
    powered += stages[stages.length - 1]?.devices ?? 0;
  });
  const path = input.stages === undefined ? [] : ['stages'];
  if (!broken && powered < size) {
    add(
      path,
      `stages power on ${powered} of ${size} devices; add a stage for the rest ` +
        '(a bootStorm without "devices" takes all remaining devices)',
    );
  }
  if (startMs > durationMs) {
    add(
      input.stages === undefined ? ['duration'] : path,
      `stages take ${formatDuration(startMs)} but duration is ${formatDuration(durationMs)}`,
    );
  }
  return stages;
}
