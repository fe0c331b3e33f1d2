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
import { z } from 'zod';
import { apportion } from './apportion.js';
import {
  FAULT_PROFILES,
  FAULT_PROFILE_LIST,
  OS_VERSIONS,
  OS_VERSION_LIST,
  belowMinimumVersion,
  isOsVersion,
} from './catalog.js';
import type { FaultProfile, OsVersion } from './catalog.js';
import { describeValue, formatDuration, parseDuration, parseRate } from './duration.js';
import { ScenarioError } from './errors.js';
import type { ScenarioIssue } from './errors.js';
import { locateIssues } from './locate.js';
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
  service: { nonceTtl: '5m', certificateLifetime: '24h', minSecurityVersion: 3, maxClockSkew: '5m' },
} as const;

/** Largest fleet a scenario may describe. */
export const MAX_FLEET_SIZE = 1_000_000;

/** Hostile devices may make up at most this share of the fleet. */
export const MAX_HOSTILE_SHARE = 0.5;

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
  readonly thresholds: readonly Threshold[];
}

/** Where the scenario input came from; `text` lets errors carry line numbers. */
export interface ScenarioSource {
  readonly file?: string | undefined;
  readonly text?: string | undefined;
}

// ---------------------------------------------------------------------------------------------
// Schema of the written form
// ---------------------------------------------------------------------------------------------

/** Thrown by field parsers; `path` is relative to the field. */
class FieldError extends Error {
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
function field<T>(parse: (value: unknown) => T, options: { required?: boolean } = {}) {
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

function durationField(options: { required?: boolean; positive?: boolean } = {}) {
  return field((value) => {
    const ms = parseDuration(value);
    if (options.positive === true && ms <= 0)
      throw new FieldError(`must be longer than 0, got ${describeValue(value)}`);
    return ms;
  }, options);
}

const rateField = (options: { required?: boolean } = {}) => field(parseRate, options);

/** A fault assignment: a share of the fleet in [0, 1), or an exact `{ count: N }`. */
type FaultAmount = { readonly share: number } | { readonly count: number };

function parseFaultAmount(value: unknown): FaultAmount {
  const expected = 'expected a share of the fleet in [0, 1) like 0.005, or { count: N }';
  if (typeof value === 'number') {
    if (!(value >= 0 && value < 1)) throw new FieldError(`${expected}, got ${describeValue(value)}`);
    return { share: value };
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

const osMixSchema = z.record(z.string(), z.number().min(0).max(1)).superRefine((mix, ctx) => {
  let sum = 0;
  for (const [version, share] of Object.entries(mix)) {
    sum += share;
    if (!isOsVersion(version)) {
      const quoted = OS_VERSION_LIST.find((known) => String(Number(known)) === version);
      const hint =
        quoted === undefined
          ? `known versions: ${OS_VERSION_LIST.join(', ')}`
          : `did you mean "${quoted}"? Quote versions in YAML ("${quoted}": ...), unquoted ${quoted} is the number ${version}`;
      ctx.addIssue({ code: 'custom', message: `unknown OS version "${version}"; ${hint}`, path: [version] });
    }
  }
  if (Object.keys(mix).length === 0)
    ctx.addIssue({ code: 'custom', message: 'needs at least one OS version' });
  else if (Math.abs(sum - 1) > 1e-6) {
    ctx.addIssue({ code: 'custom', message: `shares must sum to 1, got ${Number(sum.toFixed(9))}` });
  }
});

const thresholdsSchema = z
  .record(z.string(), z.union([z.string(), z.array(z.string())]))
  .transform((defs, ctx): Threshold[] => {
    const out: Threshold[] = [];
    for (const [metric, value] of Object.entries(defs)) {
      if (!Object.hasOwn(THRESHOLD_METRICS, metric)) {
        const suggestion = closest(metric, Object.keys(THRESHOLD_METRICS));
        const hint = suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`;
        ctx.addIssue({
          code: 'custom',
          message: `unknown metric${hint}; known metrics: ${Object.keys(THRESHOLD_METRICS).join(', ')}`,
          path: [metric],
        });
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
    })
    .optional(),
  thresholds: thresholdsSchema.optional(),
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

  const thresholds = input.thresholds ?? [];
  if (fleet.hostileDevices === 0 && thresholds.some((t) => t.metric === 'hostile_rejected_rate')) {
    add(
      ['thresholds', 'hostile_rejected_rate'],
      'the fleet has no hostile devices (fleet.faults assigns none), so this threshold has no data; remove it or add faults',
    );
  }

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
    thresholds,
  };
}

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
  const size = input.fleet.size;
  const written: Partial<Record<FaultProfile, FaultAmount | undefined>> = input.fleet.faults ?? {};
  const counts = Object.fromEntries(FAULT_PROFILE_LIST.map((p) => [p, 0])) as Record<FaultProfile, number>;
  const shared: FaultProfile[] = [];
  let explicit = 0;
  let quotaTotal = 0;
  for (const profile of FAULT_PROFILE_LIST) {
    const amount = written[profile];
    if (amount === undefined) continue;
    if ('count' in amount) {
      counts[profile] = amount.count;
      explicit += amount.count;
      if (FAULT_PROFILES[profile].pairs && amount.count % 2 !== 0) {
        add(
          ['fleet', 'faults', profile, 'count'],
          `${profile} devices come in pairs that share one identity, so the count must be even, got ${amount.count}`,
        );
      }
    } else {
      shared.push(profile);
      quotaTotal += amount.share * size;
    }
  }
  const limit = Math.floor(size * MAX_HOSTILE_SHARE);
  if (explicit + quotaTotal > limit + 1e-9) {
    const total = Number((explicit + quotaTotal).toFixed(2));
    add(
      ['fleet', 'faults'],
      `${total} hostile devices is more than half of the fleet (at most ${limit} of ${size})`,
    );
    return counts;
  }
  // Largest remainder over the share profiles plus "healthy", so rounding is exact overall.
  const weights = shared.map((profile) => {
    const amount = written[profile];
    return amount !== undefined && 'share' in amount ? amount.share * size : 0;
  });
  const parts = apportion(size - explicit, [...weights, size - explicit - quotaTotal]);
  shared.forEach((profile, i) => {
    const part = parts[i] ?? 0;
    // Pairs: an odd share-derived count gives its last device back to the healthy devices.
    counts[profile] = FAULT_PROFILES[profile].pairs ? part - (part % 2) : part;
  });
  return counts;
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
