/**
 * Thresholds, windows and memory caps of the threat detector. Every time is simulated ms (the
 * clock of the events), never wall time.
 */
export interface DetectionConfig {
  /** CLONED_IDENTITY: two accepted boots this close in time are compared. */
  readonly cloneWindowMs: number;
  /** REPLAYED_REQUEST: rejection codes counted as replays besides `NONCE_REUSED` and `REPLAYED`. */
  readonly replayCodes: readonly string[];
  /** REPLAYED_REQUEST: replays of one device counted over this window. */
  readonly replayWindowMs: number;
  /** REPLAYED_REQUEST: replays within the window that raise an alert. */
  readonly replayMinEvents: number;
  /** MEASUREMENT_DRIFT: distinct devices showing one unknown digest that raise an alert. */
  readonly driftMinDevices: number;
  /** MEASUREMENT_DRIFT: the devices must show it within this window. */
  readonly driftWindowMs: number;
  /** CRASH_BURST_AFTER_UPDATE: crashes this long after a device's install count against the update. */
  readonly crashWindowMs: number;
  /** CRASH_BURST_AFTER_UPDATE: how late an error report may arrive after `crashWindowMs` and still count. */
  readonly crashReportLagMs: number;
  /** CRASH_BURST_AFTER_UPDATE: distinct crashing updated devices needed. */
  readonly crashMinDevices: number;
  /** CRASH_BURST_AFTER_UPDATE: crashes per updated device needed (may be fractional). */
  readonly crashRatePerDevice: number;
  /** DEVICE_FLOODING: more requests than this within the window raise an alert. */
  readonly floodMaxRequests: number;
  readonly floodWindowMs: number;
  /** Each rule raises at most one alert per key in each aligned window of this length. */
  readonly suppressWindowMs: number;
  /** Per rule, devices with state beyond this evict the least recently active one. */
  readonly maxTrackedDevices: number;
  /** Per fleet-level rule (drift keys, deployments), the same cap. */
  readonly maxFleetKeys: number;
  /** Keys remembered as alerted; beyond this the oldest is forgotten (its next alert keeps its id). */
  readonly maxSuppressedKeys: number;
}

const HOUR_MS = 3_600_000;

export const DEFAULT_DETECTION_CONFIG: DetectionConfig = {
  // A device re-attests about daily (certificates last 24 h): a clone shows within a day.
  cloneWindowMs: 24 * HOUR_MS,
  replayCodes: [],
  replayWindowMs: 10 * 60_000,
  // A nonce or request counter is single-use: one replay is already an attack.
  replayMinEvents: 1,
  driftMinDevices: 3,
  driftWindowMs: 24 * HOUR_MS,
  crashWindowMs: HOUR_MS,
  // Devices upload error reports once a day; allow one missed upload.
  crashReportLagMs: 48 * HOUR_MS,
  crashMinDevices: 3,
  crashRatePerDevice: 1,
  floodMaxRequests: 120,
  floodWindowMs: 60_000,
  suppressWindowMs: HOUR_MS,
  maxTrackedDevices: 100_000,
  maxFleetKeys: 10_000,
  maxSuppressedKeys: 100_000,
};

/** Upper bound on `driftMinDevices` and `crashMinDevices`: drift keeps that many devices per key. */
export const MAX_MIN_DEVICES = 1_000;

/** Thrown for a configuration that cannot work; `field` names it. */
export class DetectionConfigError extends Error {
  override readonly name = 'DetectionConfigError';
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}

const POSITIVE_INT_FIELDS = [
  'cloneWindowMs',
  'replayWindowMs',
  'replayMinEvents',
  'driftMinDevices',
  'driftWindowMs',
  'crashWindowMs',
  'crashMinDevices',
  'floodMaxRequests',
  'floodWindowMs',
  'suppressWindowMs',
  'maxTrackedDevices',
  'maxFleetKeys',
  'maxSuppressedKeys',
] as const satisfies readonly (keyof DetectionConfig)[];

/**
 * Fills `input` from {@link DEFAULT_DETECTION_CONFIG} and checks it: windows, counts and caps are
 * positive safe integers, `crashReportLagMs` a non-negative one, `crashRatePerDevice` a positive
 * finite number, the two `*MinDevices` at most {@link MAX_MIN_DEVICES}.
 * @throws DetectionConfigError naming the first bad field.
 */
export function compileDetectionConfig(input: Partial<DetectionConfig> = {}): DetectionConfig {
  const c: DetectionConfig = { ...DEFAULT_DETECTION_CONFIG, ...input };
  for (const field of POSITIVE_INT_FIELDS) {
    const v = c[field];
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new DetectionConfigError(field, `must be a positive integer, got ${String(v)}`);
    }
  }
  if (!Number.isSafeInteger(c.crashReportLagMs) || c.crashReportLagMs < 0) {
    throw new DetectionConfigError(
      'crashReportLagMs',
      `must be a non-negative integer, got ${String(c.crashReportLagMs)}`,
    );
  }
  if (!Number.isFinite(c.crashRatePerDevice) || c.crashRatePerDevice <= 0) {
    throw new DetectionConfigError(
      'crashRatePerDevice',
      `must be a positive number, got ${String(c.crashRatePerDevice)}`,
    );
  }
  for (const field of ['driftMinDevices', 'crashMinDevices'] as const) {
    if (c[field] > MAX_MIN_DEVICES) {
      throw new DetectionConfigError(field, `must be at most ${MAX_MIN_DEVICES}, got ${c[field]}`);
    }
  }
  if (!Array.isArray(c.replayCodes) || !c.replayCodes.every((s) => typeof s === 'string')) {
    throw new DetectionConfigError('replayCodes', 'must be an array of strings');
  }
  return { ...c, replayCodes: [...c.replayCodes] };
}

/** How long any state can matter: prune drops what is older. */
export function longestWindowMs(c: DetectionConfig): number {
  return Math.max(
    c.cloneWindowMs,
    c.replayWindowMs,
    c.driftWindowMs,
    c.crashWindowMs + c.crashReportLagMs,
    c.floodWindowMs,
    c.suppressWindowMs,
  );
}
