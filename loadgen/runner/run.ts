import { ActorSystem, connectNatsTransport, createPromMeter, createRng } from '../../actors/runtime/index.js';
import type { MetricsServer, Transport } from '../../actors/runtime/index.js';
import { createOperatorClient } from '../../services/operator-api/index.js';
import { FAULT_PROFILES, FAULT_PROFILE_LIST, evaluateThresholds, planFleet } from '../scenario/index.js';
import type { Scenario } from '../scenario/index.js';
import {
  ProgressPrinter,
  SUMMARY_VERSION,
  faultSummaryRow,
  rolloutMetrics,
  summaryPasses,
} from '../report/index.js';
import type { HostileSummary, ProgressSnapshot, RunSummary } from '../report/index.js';
import { attackerFirmware, prepareHostile } from '../hostile/index.js';
import type { HostileTraffic } from '../hostile/index.js';
import { FleetLinks, manufactureFleet, spawnFleet } from './fleet.js';
import { enrollFleet, serviceClock } from './setup.js';
import { HistoryRecorder, writeHistoryJson } from './history.js';
import { RunRecorder } from './recorder.js';
import { prepareRollouts } from './rollouts.js';
import type { RolloutRun } from './rollouts.js';

export interface RunOptions {
  readonly scenario: Scenario;
  readonly nats: string;
  /** Operator API address, host:port. */
  readonly grpc: string;
  readonly adminToken: string;
  /** `null`: no /metrics endpoint for the loadgen. */
  readonly metricsPort: number | null;
  readonly progress: boolean;
  readonly log: (line: string) => void;
  /** Resolves to stop the run early (Ctrl-C); the summary is still produced. */
  readonly abort?: Promise<string>;
  /** Where to write the run's history for the verdict (history.ts); omitted: not recorded. */
  readonly historyPath?: string;
}

/** The line the runner logs when the fleet starts; the local stack starts its chaos clock on it. */
export const FLEET_STARTED = 'fleet started';

/**
 * Runs a scenario against a live service: creates a tenant, endorses and claims the fleet
 * (except `unendorsed` devices), prepares the scenario's rollouts (product, groups, images; see
 * rollouts.ts), spawns a security core and a device actor per device, powers them on per the
 * stages, creates each deployment at its start time, runs for the scenario's simulated duration,
 * then summarizes and evaluates thresholds, fault-profile verdicts and rollout expectations.
 */
export async function runScenario(opts: RunOptions): Promise<RunSummary> {
  const { scenario, log } = opts;
  const startedAt = new Date();
  const wallStart = performance.now();
  const admin = createOperatorClient(opts.grpc, opts.adminToken);
  const meter = createPromMeter({ defaultMetrics: true });
  let metricsServer: MetricsServer | null = null;
  let links: FleetLinks | null = null;
  let system: ActorSystem | null = null;
  let rollouts: RolloutRun | null = null;
  let hostileLink: Transport | null = null;
  let hostile: HostileTraffic | null = null;
  let progressLine: ProgressPrinter | null = null;
  try {
    const info = await admin.getServiceInfo();
    if (Math.abs(info.timeScale - scenario.timeScale) > 1e-9) {
      throw new Error(
        `the service runs at timeScale ${info.timeScale} but the scenario needs ${scenario.timeScale}; start the shard with --time-scale ${scenario.timeScale} (the local stack does this from the scenario)`,
      );
    }
    if (opts.metricsPort !== null) {
      metricsServer = await meter.serveMetrics({ port: opts.metricsPort });
      log(`loadgen metrics: ${metricsServer.url}`);
    }
    const plans = planFleet(scenario);
    const t0 = performance.now();
    const identities = manufactureFleet(plans);
    log(
      `manufactured ${plans.length.toLocaleString('en-US')} devices in ${Math.round(performance.now() - t0)} ms`,
    );

    const tenant = await enrollFleet(admin, `${scenario.name}-${startedAt.toISOString()}`, plans, identities);
    log(`tenant ${tenant.tenantId}: endorsed and claimed ${tenant.enrolled.toLocaleString('en-US')} devices`);
    rollouts = await prepareRollouts({
      client: admin.withToken(tenant.apiToken),
      scenario,
      plans,
      deviceIds: identities.map((id) => id.deviceId),
      // Rollouts log mid-run: erase the live progress line first.
      log: (line) => {
        progressLine?.clear();
        log(line);
      },
      tuf: { baseUrl: info.tufBaseUrl, tenantId: tenant.tenantId },
    });

    const clock = serviceClock(info);
    if (scenario.attacks !== null) {
      // Attackers are clients of their own; their victims are the fleet's healthy devices.
      hostileLink = await connectNatsTransport({ servers: opts.nats, name: 'loadgen-hostile' });
      const healthy = plans.flatMap((p, i) => (p.fault === null ? [identities[i]?.deviceId] : []));
      hostile = await prepareHostile({
        attacks: scenario.attacks,
        seed: scenario.seed,
        name: `${scenario.name}-${startedAt.toISOString()}`,
        transport: hostileLink,
        admin,
        grpc: opts.grpc,
        tenant,
        victims: healthy.filter((id) => id !== undefined),
        partitions: info.partitions,
        clock,
        firmware: attackerFirmware(scenario),
        rateLimit: scenario.service.deviceRateLimit,
        requestTimeoutMs: scenario.device.requestTimeoutMs,
        renewBeforeMs: scenario.device.renewBeforeMs,
        log,
      });
    }
    const runStartSim = clock.now();
    const history =
      opts.historyPath === undefined
        ? null
        : new HistoryRecorder(
            plans.map((p, i) => ({
              id: identities[i]?.deviceId ?? String(i),
              fault: p.fault,
              twin: p.twinOf !== undefined,
            })),
          );
    const recorder = new RunRecorder(plans, meter, history);
    links = new FleetLinks(opts.nats, scenario.connections, meter);
    await links.ready();
    system = new ActorSystem({
      clock,
      rng: createRng(scenario.seed).fork('devices'),
      meter,
      name: 'loadgen',
      onFailure: (f) => {
        const key = `actor failure: ${f.error instanceof Error ? f.error.message : String(f.error)}`;
        recorder.errors.set(key, (recorder.errors.get(key) ?? 0) + 1);
      },
    });
    const devices = spawnFleet({
      system,
      scenario,
      plans,
      identities,
      links,
      recorder,
      partitions: info.partitions,
      updateRoot: rollouts?.updateRoot ?? null,
    });
    plans.forEach((p, i) =>
      clock.setTimeout(() => devices[i]?.tell({ type: 'device.power-on' }), p.powerOnAtMs),
    );
    log(`${FLEET_STARTED} at ${new Date().toISOString()}`);
    rollouts?.start(clock, runStartSim);
    hostile?.start(runStartSim);

    const printer = opts.progress ? new ProgressPrinter() : null;
    progressLine = printer;
    const snapshot = (): ProgressSnapshot => {
      const now = clock.now();
      let powered = 0;
      let failed = 0;
      let backoff = 0;
      for (const t of recorder.tracks) {
        if (t.poweredOn) powered++;
        if (t.phase === 'backoff') backoff++;
        if (t.lastFailed) failed++;
      }
      return {
        simulatedMs: Math.min(scenario.durationMs, now - runStartSim),
        durationMs: scenario.durationMs,
        wallElapsedMs: performance.now() - wallStart,
        devices: { total: plans.length, powered, attested: recorder.attestedAt(now), failed, backoff },
        attestations: recorder.attestations,
        p99AttestMs: recorder.attestLatency.count > 0 ? recorder.attestLatency.percentile(99) : null,
        ...(rollouts === null ? {} : { rollouts: rollouts.progress() }),
      };
    };
    const ticker = printer === null ? null : setInterval(() => printer.update(snapshot()), 1000);
    const finished = new Promise<null>((resolve) =>
      clock.setTimeout(() => resolve(null), scenario.durationMs),
    );
    const aborted = await Promise.race([finished, opts.abort ?? new Promise<never>(() => undefined)]);
    if (ticker !== null) clearInterval(ticker);
    const end = snapshot();
    printer?.done(end);
    const rolloutSummaries = (await rollouts?.finish()) ?? [];
    const hostileSummary: HostileSummary | undefined = await hostile?.finish();

    await system.shutdown();
    system = null;
    await links.close();
    links = null;
    const endSim = clock.now();
    if (history !== null && opts.historyPath !== undefined) {
      const valid = (i: number): boolean => (recorder.tracks[i]?.certificatesNotAfterMs ?? 0) > endSim;
      await writeHistoryJson(opts.historyPath, history.finish(valid));
    }

    const stages = scenario.stages.map((s) => {
      const mine = recorder.tracks.filter((t) => t.plan.stage === s.index);
      return {
        index: s.index,
        kind: s.kind,
        startMs: s.startMs,
        endMs: s.endMs,
        planned: s.devices,
        poweredOn: mine.filter((t) => t.poweredOn).length,
        attested: mine.filter((t) => t.certificatesNotAfterMs !== null && t.certificatesNotAfterMs > endSim)
          .length,
        failed: mine.filter((t) => t.lastFailed).length,
      };
    });
    const faults = FAULT_PROFILE_LIST.filter((f) => scenario.fleet.faults[f] > 0).map((f) => {
      const mine = recorder.tracks.filter((t) => t.plan.fault === f);
      const observedCodes: Record<string, number> = {};
      for (const t of mine) for (const [c, n] of t.codes) observedCodes[c] = (observedCodes[c] ?? 0) + n;
      return faultSummaryRow(f, {
        devices: mine.length,
        observedCodes,
        devicesRejectedAsExpected: mine.filter((t) => RunRecorder.rejectedAsExpected(t)).length,
        devicesCertified: mine.filter((t) => t.ok > 0).length,
      });
    });
    // Caught share over what each profile's contract requires (one device per cloned pair),
    // the same rule the fault rows apply.
    let hostileRequired = 0;
    let hostileCaught = 0;
    for (const row of faults) {
      const required = FAULT_PROFILES[row.profile].pairs ? Math.ceil(row.devices / 2) : row.devices;
      hostileRequired += required;
      hostileCaught += Math.min(required, row.devicesRejectedAsExpected);
    }
    const healthyAttempts = recorder.healthyOk + recorder.healthyFailed;
    const failedAttempts = recorder.attestations - (recorder.byResult['ok'] ?? 0);
    const transportErrors = (recorder.byResult['timeout'] ?? 0) + (recorder.byResult['transport_error'] ?? 0);
    const thresholds = evaluateThresholds(scenario.thresholds, {
      attest_latency_ms: { latency: recorder.attestLatency },
      challenge_latency_ms: { latency: recorder.challengeLatency },
      attest_success_rate: healthyAttempts > 0 ? { rate: recorder.healthyOk / healthyAttempts } : {},
      hostile_rejected_rate: { rate: hostileRequired > 0 ? hostileCaught / hostileRequired : 1 },
      devices_attested: { count: end.devices.attested },
      attestations_ok: { count: recorder.byResult['ok'] ?? 0 },
      attestations_failed: { count: failedAttempts },
      transport_errors: { count: transportErrors },
      ...rolloutMetrics(rolloutSummaries),
    });
    const partial: Omit<RunSummary, 'pass'> = {
      version: SUMMARY_VERSION,
      run: {
        scenario: scenario.name,
        description: scenario.description,
        seed: scenario.seed,
        startedAt: startedAt.toISOString(),
        wallElapsedMs: Math.round(performance.now() - wallStart),
        simulatedMs: Math.round(end.simulatedMs),
        durationMs: scenario.durationMs,
        timeScale: scenario.timeScale,
        fleetSize: plans.length,
        connections: scenario.connections,
        aborted,
      },
      stages,
      devices: {
        total: plans.length,
        poweredOn: end.devices.powered,
        attested: end.devices.attested,
        failed: end.devices.failed,
        backoff: end.devices.backoff,
      },
      attestations: {
        total: recorder.attestations,
        ok: recorder.byResult['ok'] ?? 0,
        failed: failedAttempts,
        byResult: { ...recorder.byResult },
        byCode: { ...recorder.byCode },
      },
      latency: { challenge: recorder.challengeLatency.stats(), attest: recorder.attestLatency.stats() },
      faults,
      rollouts: rolloutSummaries,
      updates:
        rollouts === null
          ? null
          : {
              ...recorder.updates,
              reports: { ...recorder.updates.reports },
              checkFailures: { ...recorder.updates.checkFailures },
            },
      errorReports: {
        ...recorder.errorReports,
        eventsByKind: { ...recorder.errorReports.eventsByKind },
        refused: { ...recorder.errorReports.refused },
      },
      ...(hostileSummary === undefined ? {} : { hostile: hostileSummary }),
      thresholds,
      errors: [...recorder.errors, ...(rollouts?.errors ?? [])].map(([message, count]) => ({
        message,
        count,
      })),
    };
    return { ...partial, pass: summaryPasses(partial) };
  } finally {
    rollouts?.stop();
    hostile?.stop();
    await hostileLink?.close();
    await system?.shutdown();
    await links?.close();
    await metricsServer?.close();
    admin.close();
  }
}
