/**
 * Hazards of time compression that are legal but probably not what the author meant. Every
 * simulated interval shrinks by `timeScale` on the wall clock, while network latency does not:
 * at timeScale 2880 a 5 m nonce TTL is 104 wall ms, and 100 wall ms of latency is 4.8 simulated
 * minutes of apparent clock skew. The CLI prints these before a run; they never fail compilation.
 */
import { formatDuration } from './duration.js';
import { OS_VERSION_LIST, isOsVersion } from './catalog.js';
import { MAX_OS_DEFERRAL_MS } from './schema.js';
import type { Scenario } from './schema.js';

/** Simulated windows that must span network round trips should last at least this much wall time. */
export const MIN_WALL_WINDOW_MS = 1_000;

/** A warning about a compiled scenario, naming the field it concerns. */
export interface ScenarioWarning {
  /** Dotted field path, e.g. `service.nonceTtl`. */
  readonly path: string;
  readonly message: string;
}

/**
 * Warnings for a compiled scenario (empty when nothing looks off):
 * - `service.nonceTtl` or `service.maxClockSkew` shorter than {@link MIN_WALL_WINDOW_MS} of wall
 *   time, so healthy devices may fail with NONCE_STALE or CLOCK_SKEW from latency alone;
 * - `service.certificateLifetime` shorter than `device.attestEvery`, so certificates lapse
 *   between attestations;
 * - `device.attestEvery` longer than the run, so no device re-attests;
 * - a rollout starting less than `updates.checkEvery` before the end of the run, so some of its
 *   devices may never check for updates while it runs;
 * - an OS image of a build the service has no reference values for (devices booting it fail
 *   attestation and fall back);
 * - `updates.deferOs.for` beyond what the agent grants (24 h).
 */
export function scenarioWarnings(scenario: Scenario): ScenarioWarning[] {
  const out: ScenarioWarning[] = [];
  const { timeScale, service, device } = scenario;
  const needed = formatDuration(MIN_WALL_WINDOW_MS * timeScale);
  const wallWindow = (path: string, simulatedMs: number, consequence: string): void => {
    const wallMs = simulatedMs / timeScale;
    if (wallMs >= MIN_WALL_WINDOW_MS) return;
    out.push({
      path,
      message:
        `${formatDuration(simulatedMs)} is only ${formatDuration(wallMs)} of wall time at timeScale ${timeScale}; ` +
        `${consequence}. Use at least ${needed}.`,
    });
  };
  wallWindow(
    'service.nonceTtl',
    service.nonceTtlMs,
    'healthy devices may be rejected with NONCE_STALE under load',
  );
  wallWindow(
    'service.maxClockSkew',
    service.maxClockSkewMs,
    'network latency alone may look like clock skew and reject healthy devices with CLOCK_SKEW',
  );
  if (service.certificateLifetimeMs < device.attestEveryMs) {
    out.push({
      path: 'service.certificateLifetime',
      message: `certificates (${formatDuration(service.certificateLifetimeMs)}) expire before devices re-attest (every ${formatDuration(device.attestEveryMs)})`,
    });
  }
  const lastPowerOn = Math.max(0, ...scenario.stages.filter((s) => s.devices > 0).map((s) => s.endMs));
  if (lastPowerOn + device.attestEveryMs > scenario.durationMs) {
    out.push({
      path: 'device.attestEvery',
      message: `some devices will not re-attest: the last power on is at ${formatDuration(lastPowerOn)}, attestEvery is ${formatDuration(device.attestEveryMs)} and the run lasts ${formatDuration(scenario.durationMs)}`,
    });
  }
  scenario.images.forEach((image, i) => {
    if (image.kind !== 'os' || isOsVersion(image.version)) return;
    out.push({
      path: `images[${i}].version`,
      message: `the service has no reference measurements for OS ${image.version} (it knows ${OS_VERSION_LIST.join(', ')}): devices that boot it fail attestation, so their health check fails and they fall back to their previous OS`,
    });
  });
  const { deferOs } = scenario.updates;
  if (deferOs.devices > 0 && deferOs.forMs > MAX_OS_DEFERRAL_MS) {
    out.push({
      path: 'updates.deferOs.for',
      message: `applications may postpone an OS update by at most ${formatDuration(MAX_OS_DEFERRAL_MS)}; the agents will install after that, not after ${formatDuration(deferOs.forMs)}`,
    });
  }
  scenario.rollouts.forEach((rollout, i) => {
    const left = scenario.durationMs - rollout.startAtMs;
    if (left >= scenario.updates.checkEveryMs) return;
    out.push({
      path: `rollouts[${i}].startAt`,
      message: `rollout "${rollout.name}" starts ${formatDuration(left)} before the run ends, but devices check for updates only every ${formatDuration(scenario.updates.checkEveryMs)} (updates.checkEvery), so some may never see it`,
    });
  });
  return out;
}
