#!/usr/bin/env node
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDeploymentId } from '../proto/codec/index.js';
import { OperatorCallError, createOperatorClient } from '../services/operator-api/index.js';
import { ScenarioError, formatDuration, loadScenarioFile } from './scenario/index.js';
import {
  ROLLOUT_LEGEND,
  RolloutWatchPrinter,
  WATCH_EXIT,
  renderSummaryTable,
  runRolloutWatch,
  writeSummaryJson,
} from './report/index.js';
import { runScenario } from './runner/index.js';

/**
 * Exit codes, k6-style: 99 means the run finished but a threshold or verdict failed; 3 means a
 * watched rollout ended halted or cancelled.
 */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  rolloutStopped: WATCH_EXIT.stopped,
  thresholds: 99,
  interrupted: 130,
} as const;

const HELP = `sphere: load-test an Azure Sphere style security service with a simulated fleet

Usage:
  sphere run <scenario.yaml> --nats <url> --grpc <host:port> --admin-token-file <path> [options]
  sphere validate <scenario.yaml>
  sphere rollout watch <deploymentId> --grpc <host:port> --token-file <path> [options]
  sphere chaos list|inject <fault>|heal <id> [--stack <stack.json>]
  sphere <command> --help

Commands:
  run            run a scenario against a running stack; prints a live progress line and a summary
  validate       check a scenario file and print what it resolves to
  rollout watch  follow a deployment wave by wave until it completes, halts or is cancelled
  chaos          inject or heal faults in a running chaos stack (npm run stack -- <scenario> --no-run)

Run options:
  --nats <url>                NATS server the devices connect to (required)
  --grpc <host:port>          the shard's operator API (required)
  --admin-token-file <path>   file with the service admin token (or --admin-token / SPHERE_ADMIN_TOKEN)
  --metrics-port <port>       serve the loadgen's /metrics on this port (0 = any free port)
  --out <dir>                 write summary.json there (default .runs/<timestamp>)
  --no-progress               no live progress line

Exit codes: 0 all thresholds and fault verdicts pass, 99 a threshold or verdict failed,
1 error, 2 bad usage, 130 interrupted; rollout watch: 0 completed, 3 halted or cancelled.
The local stack (npm run quickstart) runs all of this for you.`;

const RUN_HELP = `sphere run <scenario.yaml> --nats <url> --grpc <host:port> --admin-token-file <path>
  [--metrics-port <port>] [--out <dir>] [--no-progress]

Runs the scenario against a running shard: creates a tenant, endorses and claims the fleet,
powers devices on per the scenario's stages and reports. See README "Scenario format".`;

const VALIDATE_HELP = `sphere validate <scenario.yaml>

Checks the scenario and prints the fleet, stages and thresholds it resolves to. Exit 0 when valid,
2 with every problem (field path and line) otherwise.`;

const ROLLOUT_HELP = `sphere rollout watch <deploymentId> --grpc <host:port> --token-file <path>
  [--interval <ms>]

Follows a deployment over the operator API's WatchRollout stream: a header (deployment, image,
state, current wave, failures/attempted, halt reason) and one progress bar per wave with its
devices by state. On a terminal the display is redrawn in place; otherwise (a pipe, a CI log)
each update is printed as its own block.

Options:
  --grpc <host:port>    the shard's operator API (required)
  --token-file <path>   file with the tenant's API token (or --token / SPHERE_TOKEN)
  --interval <ms>       least wall time between updates (server default 250, clamped to 50..60000)

Exit codes: 0 the rollout completed, 3 it was halted or cancelled, 1 error (refused call,
connection lost), 2 bad usage, 130 interrupted.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === 'validate') return validate(rest);
  if (command === 'run') return run(rest);
  if (command === 'rollout') return rollout(rest);
  if (command === 'chaos') return chaos(rest);
  console.error(`sphere: unknown command "${command}"\n\n${HELP}`);
  return EXIT.usage;
}

async function validate(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { help: { type: 'boolean' } },
  });
  if (values.help === true) {
    console.log(VALIDATE_HELP);
    return EXIT.ok;
  }
  const file = positionals[0];
  if (file === undefined) {
    console.error(`sphere validate: a scenario file is required\n\n${VALIDATE_HELP}`);
    return EXIT.usage;
  }
  try {
    const s = await loadScenarioFile(file);
    console.log(
      `✓ ${file}: "${s.name}", ${s.fleet.size.toLocaleString('en-US')} devices (${s.fleet.hostileDevices} hostile), ` +
        `${formatDuration(s.durationMs)} simulated at timeScale ${s.timeScale} = ${formatDuration(s.wallDurationMs)} wall, ` +
        `${s.stages.length} stage(s), ${s.thresholds.length} threshold(s), ${s.connections.mode} connections`,
    );
    return EXIT.ok;
  } catch (e) {
    console.error(e instanceof ScenarioError ? e.message : String(e));
    return EXIT.usage;
  }
}

async function run(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        nats: { type: 'string' },
        grpc: { type: 'string' },
        'admin-token-file': { type: 'string' },
        'admin-token': { type: 'string' },
        'metrics-port': { type: 'string' },
        out: { type: 'string' },
        'no-progress': { type: 'boolean' },
        help: { type: 'boolean' },
      },
    });
  } catch (e) {
    console.error(`sphere run: ${e instanceof Error ? e.message : String(e)}\n\n${RUN_HELP}`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    console.log(RUN_HELP);
    return EXIT.ok;
  }
  const file = positionals[0];
  const problems: string[] = [];
  if (file === undefined) problems.push('a scenario file is required');
  if (values.nats === undefined) problems.push('--nats <url> is required');
  if (values.grpc === undefined) problems.push('--grpc <host:port> is required');
  let adminToken = values['admin-token'] ?? process.env['SPHERE_ADMIN_TOKEN'] ?? '';
  if (values['admin-token-file'] !== undefined)
    adminToken = readFileSync(values['admin-token-file'], 'utf8').trim();
  if (adminToken === '')
    problems.push('an admin token is required: --admin-token-file, --admin-token or SPHERE_ADMIN_TOKEN');
  const metricsPort = values['metrics-port'] === undefined ? null : Number(values['metrics-port']);
  if (metricsPort !== null && !(Number.isInteger(metricsPort) && metricsPort >= 0 && metricsPort < 65536)) {
    problems.push(`--metrics-port must be a port number, got "${values['metrics-port']}"`);
  }
  if (problems.length > 0 || file === undefined || values.nats === undefined || values.grpc === undefined) {
    console.error(`sphere run: ${problems.join('; ')}\n\n${RUN_HELP}`);
    return EXIT.usage;
  }
  let scenario;
  try {
    scenario = await loadScenarioFile(file);
  } catch (e) {
    console.error(e instanceof ScenarioError ? e.message : String(e));
    return EXIT.usage;
  }
  const out = values.out ?? join('.runs', new Date().toISOString().replace(/[:.]/g, '-'));
  await mkdir(out, { recursive: true });
  let interrupted = false;
  const abort = new Promise<string>((resolve) => {
    const onSignal = (sig: string) => {
      interrupted = true;
      resolve(`interrupted by ${sig}`);
    };
    process.once('SIGINT', () => onSignal('SIGINT'));
    process.once('SIGTERM', () => onSignal('SIGTERM'));
  });
  console.log(
    `▶ ${scenario.name}: ${scenario.fleet.size.toLocaleString('en-US')} devices, ${formatDuration(scenario.durationMs)} simulated ` +
      `at timeScale ${scenario.timeScale} (~${formatDuration(scenario.wallDurationMs)} wall), ${scenario.connections.mode} connections`,
  );
  const summary = await runScenario({
    scenario,
    nats: values.nats,
    grpc: values.grpc,
    adminToken,
    metricsPort,
    progress: values['no-progress'] !== true,
    log: (line) => console.log(line),
    abort,
    historyPath: join(out, 'history.json'),
  });
  console.log(`\n${renderSummaryTable(summary)}`);
  const jsonPath = join(out, 'summary.json');
  await writeSummaryJson(jsonPath, summary);
  console.log(`summary written to ${jsonPath}`);
  if (interrupted) return EXIT.interrupted;
  return summary.pass ? EXIT.ok : EXIT.thresholds;
}

async function rollout(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(ROLLOUT_HELP);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  if (sub !== 'watch') {
    console.error(`sphere rollout: unknown subcommand "${sub}"\n\n${ROLLOUT_HELP}`);
    return EXIT.usage;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        grpc: { type: 'string' },
        'token-file': { type: 'string' },
        token: { type: 'string' },
        interval: { type: 'string' },
        help: { type: 'boolean' },
      },
    });
  } catch (e) {
    console.error(`sphere rollout watch: ${e instanceof Error ? e.message : String(e)}\n\n${ROLLOUT_HELP}`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    console.log(ROLLOUT_HELP);
    return EXIT.ok;
  }
  const problems: string[] = [];
  const deploymentId = positionals[0];
  if (deploymentId === undefined) problems.push('a deployment ID is required');
  else if (parseDeploymentId(deploymentId) === null)
    problems.push(`deployment ID must look like "d-" + 16 hex characters, got "${deploymentId}"`);
  if (positionals.length > 1) problems.push(`one deployment ID at a time, got ${positionals.length}`);
  if (values.grpc === undefined) problems.push('--grpc <host:port> is required');
  let token = values.token ?? process.env['SPHERE_TOKEN'] ?? '';
  if (values['token-file'] !== undefined) {
    try {
      token = readFileSync(values['token-file'], 'utf8').trim();
    } catch (e) {
      problems.push(`cannot read --token-file: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (token === '') problems.push('a tenant API token is required: --token-file, --token or SPHERE_TOKEN');
  const interval = values.interval === undefined ? 0 : Number(values.interval);
  if (!(Number.isInteger(interval) && interval >= 0 && interval <= 0xffff_ffff))
    problems.push(`--interval must be a whole number of milliseconds, got "${values.interval}"`);
  if (problems.length > 0 || deploymentId === undefined || values.grpc === undefined) {
    console.error(`sphere rollout watch: ${problems.join('; ')}\n\n${ROLLOUT_HELP}`);
    return EXIT.usage;
  }

  const client = createOperatorClient(values.grpc, token);
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    console.log(ROLLOUT_LEGEND);
    const outcome = await runRolloutWatch(
      client.watchRollout(deploymentId, { minIntervalMs: interval, signal: abort.signal }),
      new RolloutWatchPrinter(process.stdout),
      () => abort.signal.aborted,
    );
    (outcome.exitCode === EXIT.error ? console.error : console.log)(outcome.message);
    return outcome.exitCode;
  } catch (e) {
    if (!(e instanceof OperatorCallError)) throw e;
    console.error(`sphere rollout watch: ${e.code}: ${e.message}`);
    return EXIT.error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`sphere: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(EXIT.error);
  },
);

const CHAOS_HELP = `sphere chaos: inject and heal faults in a running local chaos stack

Usage:
  sphere chaos list                 faults in effect, and the timeline so far
  sphere chaos inject '<fault>'     a fault written as in a scenario's chaos.faults (YAML), e.g.
                                      '{ for: 10s, partition: { between: [shard-1, nats] } }'
                                      '{ for: 20s, kill: nats-2 }'   '{ latency: { between: [devices, nats], ms: 200 } }'
  sphere chaos heal <id>            heal a fault now (ids from list / inject)

Options:
  --stack <stack.json>   the stack to act on (default: the newest .runs/*/stack.json with a chaos controller)

The stack must run with a cluster or a chaos scenario, e.g.
  npm run stack -- loadgen/examples/chaos.yaml --no-run --no-chaos`;

/** The newest stack.json under .runs that has a chaos control endpoint. */
function findChaosStack(): string | null {
  let best: { path: string; mtime: number } | null = null;
  let dirs: string[] = [];
  try {
    dirs = readdirSync('.runs');
  } catch {
    return null;
  }
  for (const d of dirs) {
    const path = join('.runs', d, 'stack.json');
    try {
      const state = JSON.parse(readFileSync(path, 'utf8')) as { chaos?: { control?: string } | null };
      const mtime = statSync(path).mtimeMs;
      if (state.chaos?.control !== undefined && (best === null || mtime > best.mtime)) best = { path, mtime };
    } catch {
      /* not a stack dir */
    }
  }
  return best?.path ?? null;
}

async function chaos(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { stack: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [sub, arg] = positionals;
  if (values.help === true || sub === undefined) {
    console.log(CHAOS_HELP);
    return sub === undefined && values.help !== true ? EXIT.usage : EXIT.ok;
  }
  const stackFile = values.stack ?? findChaosStack();
  if (stackFile === null) {
    console.error(
      'sphere chaos: no running chaos stack found under .runs (start one, or pass --stack <stack.json>)',
    );
    return EXIT.usage;
  }
  let control: string | undefined;
  try {
    control = (JSON.parse(readFileSync(stackFile, 'utf8')) as { chaos?: { control?: string } | null }).chaos
      ?.control;
  } catch (e) {
    console.error(`sphere chaos: cannot read ${stackFile}: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT.usage;
  }
  if (control === undefined) {
    console.error(
      `sphere chaos: ${stackFile} has no chaos controller (start the stack with a chaos scenario or --nats-nodes 3)`,
    );
    return EXIT.usage;
  }
  const call = async (
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> => {
    const r = await fetch(`${control}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    return { status: r.status, json: await r.json() };
  };
  try {
    if (sub === 'list') {
      const { json } = await call('GET', '/faults');
      const j = json as {
        active: { id: string; label: string; sinceMs: number }[];
        events: { atMs: number; fault: string; action: string; label: string; detail: string }[];
      };
      console.log(j.active.length === 0 ? 'no fault in effect' : 'in effect:');
      for (const a of j.active)
        console.log(`  ${a.id}  ${a.label}  since ${(a.sinceMs / 1000).toFixed(1)} s`);
      if (j.events.length > 0) console.log('timeline:');
      for (const e of j.events)
        console.log(
          `  ${(e.atMs / 1000).toFixed(1).padStart(7)} s  ${e.fault}  ${e.action.padEnd(5)}  ${e.label}${e.detail === '' ? '' : ` (${e.detail})`}`,
        );
      return EXIT.ok;
    }
    if (sub === 'inject' && arg !== undefined) {
      const { status, json } = await call('POST', '/faults', parseYaml(arg) as unknown);
      const j = json as { id?: string; label?: string; error?: string };
      if (status !== 201) {
        console.error(`sphere chaos inject: ${j.error ?? `HTTP ${status}`}`);
        return EXIT.usage;
      }
      console.log(`${j.id ?? '?'}  ${j.label ?? ''}`);
      return EXIT.ok;
    }
    if (sub === 'heal' && arg !== undefined) {
      const { status, json } = await call('DELETE', `/faults/${encodeURIComponent(arg)}`);
      if (status !== 200) {
        console.error(`sphere chaos heal: ${(json as { error?: string }).error ?? `HTTP ${status}`}`);
        return EXIT.usage;
      }
      console.log(`healed ${arg}`);
      return EXIT.ok;
    }
  } catch (e) {
    console.error(
      `sphere chaos: ${control}: ${e instanceof Error ? e.message : String(e)} (is the stack still running?)`,
    );
    return EXIT.error;
  }
  console.error(`sphere chaos: unknown or incomplete subcommand "${positionals.join(' ')}"\n\n${CHAOS_HELP}`);
  return EXIT.usage;
}
