/**
 * The `errors:` section of a scenario and the crash rates of its images: how often devices crash
 * (per device and simulated day, drawn from the seed) and how often they upload their error
 * reports. Without the section devices never crash, but they still record failed updates and
 * refused attestations and upload them daily.
 *
 * ```yaml
 * errors:
 *   appCrashesPerDay: 0.2 # per device, spread over its apps; the OS restarts the app
 *   appExitsPerDay: 0.1 # an app exits with a code 0-255; the OS restarts it
 *   osCrashesPerDay: 0.01 # the device reboots (and attests again)
 *   uploadEvery: 24h
 * images:
 *   # Every device that installs this release crashes its app 6 times a day.
 *   - { id: blinky-crashy, name: blinky, version: '1.3.0', size: 64KiB, crashesPerDay: 6 }
 * ```
 */
import { z } from 'zod';
import type { CrashyImage } from '../../actors/device/index.js';
import { MAX_REPORT_SPAN_MS } from '../../services/error-reports/index.js';
import { describeValue, formatDuration, parseDuration } from './duration.js';
import { durationField, field, FieldError } from './fields.js';

/** Defaults of the `errors:` section (durations as written). */
export const ERRORS_DEFAULTS = {
  appCrashesPerDay: 0,
  appExitsPerDay: 0,
  osCrashesPerDay: 0,
  uploadEvery: '24h',
} as const;

/** Largest rate of any crash knob (events per device and simulated day). */
export const MAX_CRASHES_PER_DAY = 1000;
/** Shortest and longest `errors.uploadEvery` (a report spans at most 14 days). */
export const MIN_UPLOAD_EVERY_MS = 60_000;
export const MAX_UPLOAD_EVERY_MS = MAX_REPORT_SPAN_MS;

/** The compiled `errors:` section: every rate per device and simulated day. */
export interface ErrorsConfig {
  readonly appCrashesPerDay: number;
  readonly appExitsPerDay: number;
  readonly osCrashesPerDay: number;
  /** Simulated ms between a device's uploads. */
  readonly uploadEveryMs: number;
  /** The scenario's images with `crashesPerDay` above 0, in file order. */
  readonly crashyImages: readonly CrashyImage[];
}

/** A rate of events per simulated day: a number from 0 to {@link MAX_CRASHES_PER_DAY}. */
export function parseCrashRate(value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= MAX_CRASHES_PER_DAY)
    return value;
  throw new FieldError(
    `expected a number of events per device and simulated day from 0 to ${MAX_CRASHES_PER_DAY}, like 0.5, got ${describeValue(value)}`,
  );
}

/** The zod schema of the written `errors:` section. */
export const errorsSchema = z.strictObject({
  appCrashesPerDay: field(parseCrashRate),
  appExitsPerDay: field(parseCrashRate),
  osCrashesPerDay: field(parseCrashRate),
  uploadEvery: durationField({ positive: true }),
});

export type ErrorsInput = z.output<typeof errorsSchema>;

/**
 * Compiles the `errors:` section and the images' `crashesPerDay` (`written[i]` is the image
 * `images[i]` was compiled from). Problems go to `add` with their field path.
 */
export function resolveErrors(
  input: ErrorsInput | undefined,
  written: readonly { readonly crashesPerDay?: number | undefined }[],
  images: readonly Omit<CrashyImage, 'crashesPerDay'>[],
  add: (path: (string | number)[], message: string) => void,
): ErrorsConfig {
  const d = ERRORS_DEFAULTS;
  const uploadEveryMs = input?.uploadEvery ?? parseDuration(d.uploadEvery);
  if (uploadEveryMs < MIN_UPLOAD_EVERY_MS || uploadEveryMs > MAX_UPLOAD_EVERY_MS) {
    add(
      ['errors', 'uploadEvery'],
      `must be between ${formatDuration(MIN_UPLOAD_EVERY_MS)} and ${formatDuration(MAX_UPLOAD_EVERY_MS)} (a report spans at most 14 days), got ${formatDuration(uploadEveryMs)}`,
    );
  }
  const crashyImages: CrashyImage[] = [];
  written.forEach((w, i) => {
    const image = images[i];
    const crashesPerDay = w.crashesPerDay ?? 0;
    if (image !== undefined && crashesPerDay > 0)
      crashyImages.push({ kind: image.kind, name: image.name, version: image.version, crashesPerDay });
  });
  return {
    appCrashesPerDay: input?.appCrashesPerDay ?? d.appCrashesPerDay,
    appExitsPerDay: input?.appExitsPerDay ?? d.appExitsPerDay,
    osCrashesPerDay: input?.osCrashesPerDay ?? d.osCrashesPerDay,
    uploadEveryMs,
    crashyImages,
  };
}
