/**
 * The `attacks:` section of a scenario: hostile traffic the run sends besides its fleet, each
 * profile a number of attempts spread evenly over a window of SIMULATED time (like stages and
 * rollouts). The attacks themselves live in loadgen/hostile; this is what a user writes.
 *
 * ```yaml
 * attacks:
 *   impersonate: { count: 30, startAt: 10m, for: 30m }   # act as another device
 *   replay: { count: 20, startAt: 10m, for: 30m }        # re-send captured sealed requests
 *   flood: { count: 400, startAt: 20m, for: 5m }          # one device past its request budget
 *   malformed: { rate: 2/m, startAt: 10m, for: 30m }      # undecodable, mistyped, oversize bytes
 *   tenantCrossing: { count: 14, startAt: 15m, for: 20m } # another tenant's token on our devices
 * ```
 */
import { z } from 'zod';
import { describeValue, formatDuration, parseRate } from './duration.js';
import { durationField, field, FieldError } from './fields.js';

/** Attack profiles, in the order the report lists them. */
export const ATTACK_PROFILES = ['impersonate', 'replay', 'flood', 'malformed', 'tenantCrossing'] as const;

/** One of {@link ATTACK_PROFILES}. */
export type AttackProfile = (typeof ATTACK_PROFILES)[number];

/** Most attempts one profile may make. */
export const MAX_ATTACK_ATTEMPTS = 100_000;

/** Most flooding devices. */
export const MAX_FLOOD_DEVICES = 100;

/** The request budget the service gives each device (its token bucket: shard `--device-rate-*`). */
export interface DeviceRateLimit {
  /** Requests a device may send at once. */
  readonly burst: number;
  /** Requests per simulated hour, sustained. */
  readonly perHour: number;
}

/** One compiled attack profile. */
export interface AttackSpec {
  readonly profile: AttackProfile;
  /** How many attempts (flood: requests, over all its devices). */
  readonly attempts: number;
  /** Simulated ms after the run starts of the first attempt. */
  readonly startAtMs: number;
  /** Simulated ms the attempts are spread over (evenly; 0: all at `startAtMs`). */
  readonly forMs: number;
  /** Attacker devices (flood: the flooding devices; 1 for the other profiles). */
  readonly devices: number;
}

/** The compiled `attacks:` section: the profiles written, in {@link ATTACK_PROFILES} order. */
export interface AttacksConfig {
  readonly profiles: readonly AttackSpec[];
}

/** When attempt `i` of `spec` is due (simulated ms after the run starts). */
export function attemptAtMs(spec: AttackSpec, i: number): number {
  return spec.startAtMs + (spec.attempts <= 1 ? 0 : Math.floor((spec.forMs * i) / spec.attempts));
}

/**
 * The most requests a device's budget lets through within `spanMs` simulated ms: the burst,
 * what the bucket refills meanwhile (rounded up), and one for the service's clock reading a
 * little off the loadgen's.
 */
export function floodAllowance(limit: DeviceRateLimit, spanMs: number): number {
  return limit.burst + Math.ceil((limit.perHour * Math.max(0, spanMs)) / 3_600_000) + 1;
}

function parseCount(value: unknown): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= MAX_ATTACK_ATTEMPTS)
    return value;
  throw new FieldError(
    `expected a whole number of attempts from 1 to ${MAX_ATTACK_ATTEMPTS}, got ${describeValue(value)}`,
  );
}

function parseFloodDevices(value: unknown): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= MAX_FLOOD_DEVICES)
    return value;
  throw new FieldError(
    `expected a whole number of devices from 1 to ${MAX_FLOOD_DEVICES}, got ${describeValue(value)}`,
  );
}

const timing = {
  count: field(parseCount),
  rate: field(parseRate),
  startAt: durationField(),
  for: durationField(),
};

const profileSchema = z.strictObject(timing).optional();

/** The zod schema of the written `attacks:` section (strict). */
export const attacksSchema = z.strictObject({
  impersonate: profileSchema,
  replay: profileSchema,
  flood: z.strictObject({ ...timing, devices: field(parseFloodDevices) }).optional(),
  malformed: profileSchema,
  tenantCrossing: profileSchema,
});

/** The written section, as the schema gives it. */
export type AttacksInput = z.output<typeof attacksSchema>;

type AddIssue = (path: (string | number)[], message: string) => void;

/**
 * Resolve the written section: attempts from `count` or `rate × for`, the window inside the run,
 * and floods that outrun `rateLimit` (a flood the budget absorbs shows nothing).
 * @returns `null` without an `attacks:` section or when it names no profile
 */
export function resolveAttacks(
  input: AttacksInput | undefined,
  durationMs: number,
  rateLimit: DeviceRateLimit,
  add: AddIssue,
): AttacksConfig | null {
  if (input === undefined) return null;
  const profiles: AttackSpec[] = [];
  for (const profile of ATTACK_PROFILES) {
    const written = input[profile];
    if (written === undefined) continue;
    const at = (...path: string[]): string[] => ['attacks', profile, ...path];
    const startAtMs = written.startAt ?? 0;
    const forMs = written.for ?? 0;
    let attempts = 0;
    if ((written.count === undefined) === (written.rate === undefined)) {
      add(at(), 'needs exactly one of count (attempts) or rate (attempts per simulated second, with for)');
    } else if (written.count !== undefined) {
      attempts = written.count;
    } else if (written.rate !== undefined) {
      attempts = Math.floor((written.rate * forMs) / 1_000 + 1e-9);
      if (forMs === 0) add(at('for'), 'a rate needs a window: give for (the attempts are rate × for)');
      else if (attempts < 1 || attempts > MAX_ATTACK_ATTEMPTS) {
        add(at('rate'), `rate × for gives ${attempts} attempts; it must give 1 to ${MAX_ATTACK_ATTEMPTS}`);
      }
    }
    if (startAtMs + forMs > durationMs) {
      add(
        at(written.for === undefined ? 'startAt' : 'for'),
        `the attacks run until ${formatDuration(startAtMs + forMs)} but the run lasts ${formatDuration(durationMs)}`,
      );
    }
    const devices = profile === 'flood' ? (input.flood?.devices ?? 1) : 1;
    if (profile === 'flood' && attempts > 0) {
      const perDevice = Math.floor(attempts / devices);
      const allowance = floodAllowance(rateLimit, forMs);
      if (perDevice <= allowance) {
        add(
          at(written.count === undefined ? 'rate' : 'count'),
          `${perDevice} requests per device over ${formatDuration(forMs)} fit in its budget ` +
            `(burst ${rateLimit.burst}, ${rateLimit.perHour} per hour: ${allowance}), so none would be refused; ` +
            'send more, over a shorter window, or lower service.deviceRateLimit',
        );
      }
    }
    profiles.push({ profile, attempts, startAtMs, forMs, devices });
  }
  return profiles.length === 0 ? null : { profiles };
}
