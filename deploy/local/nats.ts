/**
 * Start and stop a real `nats-server` process for the local stack and for tests.
 *
 * Only node builtins are imported here on purpose: tests transpile this file on the fly and the
 * launcher must work before anything else in the repo is built.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findExecutable } from './executables.js';

/** Directories searched (after `$NATS_SERVER` and `$PATH`) for a `nats-server` binary. */
export const NATS_SERVER_SEARCH_DIRS: readonly string[] = ['/usr/sbin', '/usr/bin', '/usr/local/bin'];

/** Release used in the manual-install instructions (any 2.9+ release works). */
const NATS_RELEASE = 'v2.10.22';

/**
 * Locate the `nats-server` binary.
 *
 * Contract: if `$NATS_SERVER` is set (non-empty) it is authoritative: its value is returned when it
 * is an executable file, otherwise `null` (no silent fallback to another binary). Without it,
 * `$PATH` is searched, then {@link NATS_SERVER_SEARCH_DIRS}. Returns an absolute-or-PATH-resolved
 * path, or `null` when nothing was found.
 */
export function findNatsServer(): string | null {
  return findExecutable('nats-server', 'NATS_SERVER', NATS_SERVER_SEARCH_DIRS);
}

/**
 * Human-readable explanation of how to install `nats-server`; used verbatim by the shell scripts'
 * counterpart (`deploy/local/ensure-deps.sh`) and by {@link NatsServerNotFoundError}.
 */
export function natsServerMissingMessage(): string {
  const override = process.env['NATS_SERVER'];
  const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
  const tarball = `nats-server-${NATS_RELEASE}-linux-${arch}`;
  const head =
    override !== undefined && override !== ''
      ? `nats-server not found: NATS_SERVER=${override} is not an executable file.`
      : `nats-server not found (looked in $PATH and ${NATS_SERVER_SEARCH_DIRS.join(', ')}).`;
  return [
    head,
    'Install it with ONE of:',
    '  1. Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y nats-server prometheus',
    `  2. Release tarball: curl -fsSL https://github.com/nats-io/nats-server/releases/download/${NATS_RELEASE}/${tarball}.tar.gz | tar -xz -C /tmp \\`,
    `                       && sudo install -m 0755 /tmp/${tarball}/nats-server /usr/local/bin/nats-server`,
    '  3. Point at an existing binary:  export NATS_SERVER=/path/to/nats-server',
    '(`npm test` and `npm run quickstart` do option 1 automatically when run as root on an apt-based system.)',
  ].join('\n');
}

/** Thrown by {@link startNatsServer} when no usable binary exists; `message` says how to install one. */
export class NatsServerNotFoundError extends Error {
  constructor() {
    super(natsServerMissingMessage());
    this.name = 'NatsServerNotFoundError';
  }
}

/**
 * Ask the kernel for a currently free TCP port on `host` (bind port 0, read it, close).
 * There is an unavoidable race until the caller binds it; {@link startNatsServer} retries on EADDRINUSE.
 */
export function getFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ port: 0, host, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('could not obtain a free port'))));
    });
  });
}

/** Options for {@link startNatsServer}. Every field is optional. */
export interface StartNatsOptions {
  /** Client port; `0` or omitted = pick a free one. */
  port?: number;
  /** Bind address (`-a`); default `127.0.0.1`. */
  host?: string;
  /** Enable JetStream (`-js -sd <storeDir>`). Default false. */
  jetstream?: boolean;
  /** JetStream store dir. Default: a fresh temp dir that `stop()` removes. A given dir is never removed. */
  storeDir?: string;
  /** Server name (`-n`). */
  name?: string;
  /** HTTP monitoring port (`-m`); `0` = pick a free one; omitted = no monitoring endpoint. */
  monitorPort?: number;
  /** Cluster name (`--cluster_name`). */
  clusterName?: string;
  /** Cluster listen port (`--cluster nats://host:port`); `0` = pick a free one; omitted = no cluster. */
  clusterPort?: number;
  /** Routes to other cluster members, e.g. `nats://127.0.0.1:6222` (`--routes a,b`). */
  routes?: string[];
  /** Append the server's log (its stderr/stdout) to this file. */
  logFile?: string;
  /** Extra raw arguments appended to the command line. */
  extraArgs?: string[];
  /** How long to wait for "Server is ready"; default 15 000 ms. */
  readyTimeoutMs?: number;
  /**
   * Start in its own process group (default true) so a terminal Ctrl-C reaches only the owner, who
   * then stops the server in order. Set false to let the server die with the terminal's group.
   */
  detached?: boolean;
}

/** A running nats-server. */
export interface NatsServerHandle {
  /** Client URL, e.g. `nats://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  /** HTTP monitoring port when requested via `monitorPort`. */
  readonly monitorPort?: number;
  /** Cluster port when requested via `clusterPort`. */
  readonly clusterPort?: number;
  readonly pid: number;
  /** JetStream store dir (undefined without JetStream). */
  readonly storeDir?: string;
  /** Path of the binary that was started. */
  readonly binary: string;
  readonly name: string;
  /** Last lines of the server's log (kept in memory, at most 200). */
  logTail(): string[];
  /**
   * SIGTERM, then SIGKILL after 5 s; resolves once the process has exited and a temp store dir
   * has been removed. Idempotent.
   */
  stop(): Promise<void>;
  /** Send a signal right away (default SIGKILL), no waiting, no cleanup. Safe after exit. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  readonly exited: Promise<number | null>;
}

const STOP_GRACE_MS = 5_000;
const TAIL_LINES = 200;

class PortInUseError extends Error {}

/**
 * Start `nats-server` and resolve once it logs "Server is ready".
 *
 * Contract: throws {@link NatsServerNotFoundError} when no binary is found (see
 * {@link findNatsServer}); rejects with an error containing the last log lines when the server
 * exits early or is not ready within `readyTimeoutMs`. Auto-picked ports are retried up to 3
 * times if another process grabbed them first.
 */
export async function startNatsServer(opts: StartNatsOptions = {}): Promise<NatsServerHandle> {
  const binary = findNatsServer();
  if (binary === null) throw new NatsServerNotFoundError();
  const autoPorts = !opts.port || opts.monitorPort === 0 || opts.clusterPort === 0;
  const attempts = autoPorts ? 3 : 1;
  for (let i = 1; ; i++) {
    try {
      return await startOnce(binary, opts);
    } catch (err) {
      if (!(err instanceof PortInUseError) || i >= attempts) throw err;
    }
  }
}

async function startOnce(binary: string, opts: StartNatsOptions): Promise<NatsServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ? opts.port : await getFreePort(host);
  const monitorPort =
    opts.monitorPort === undefined ? undefined : opts.monitorPort || (await getFreePort(host));
  const clusterPort =
    opts.clusterPort === undefined ? undefined : opts.clusterPort || (await getFreePort(host));
  const name = opts.name ?? `sphere-nats-${port}`;

  const args = ['-a', host, '-p', String(port), '-n', name];
  if (monitorPort !== undefined) args.push('-m', String(monitorPort));
  let storeDir: string | undefined;
  let tempStore = false;
  if (opts.jetstream) {
    if (opts.storeDir !== undefined) storeDir = opts.storeDir;
    else {
      storeDir = await mkdtemp(join(tmpdir(), 'sphere-nats-js-'));
      tempStore = true;
    }
    args.push('-js', '-sd', storeDir);
  }
  if (clusterPort !== undefined) args.push('--cluster', `nats://${host}:${clusterPort}`);
  if (opts.clusterName !== undefined) args.push('--cluster_name', opts.clusterName);
  if (opts.routes !== undefined && opts.routes.length > 0) args.push('--routes', opts.routes.join(','));
  if (opts.extraArgs) args.push(...opts.extraArgs);

  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached ?? true });
  const tail: string[] = [];
  let log: WriteStream | undefined;
  if (opts.logFile !== undefined) {
    log = createWriteStream(opts.logFile, { flags: 'a' });
    log.on('error', () => undefined);
    log.write(`# ${binary} ${args.join(' ')}\n`);
  }

  let readyResolve!: () => void;
  const readySeen = new Promise<void>((r) => (readyResolve = r));
  let portInUse = false;
  const onData = (() => {
    let partial = '';
    return (chunk: Buffer): void => {
      log?.write(chunk);
      partial += chunk.toString('utf8');
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        if (line.includes('Server is ready')) readyResolve();
        if (/address already in use/i.test(line)) portInUse = true;
      }
    };
  })();
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);

  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (err) => {
      tail.push(`spawn error: ${err.message}`);
      resolve(null);
    });
  });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let alive = true;
  void exited.then(() => {
    alive = false;
  });

  const kill = (signal: NodeJS.Signals = 'SIGKILL'): void => {
    if (!alive || child.pid === undefined) return;
    try {
      if (opts.detached ?? true) process.kill(-child.pid, signal);
      else child.kill(signal);
    } catch {
      try {
        child.kill(signal);
      } catch {
        /* already gone */
      }
    }
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (alive) {
        kill('SIGTERM');
        const timer = setTimeout(() => kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      await Promise.race([closed, new Promise((r) => setTimeout(r, 1_000))]);
      if (log) await new Promise<void>((r) => log.end(() => r()));
      if (tempStore && storeDir !== undefined) await rm(storeDir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const timeoutMs = opts.readyTimeoutMs ?? 15_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    readySeen.then(() => 'ready' as const),
    exited.then(() => 'exited' as const),
    new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') {
    await stop();
    const why = outcome === 'timeout' ? `was not ready within ${timeoutMs} ms` : 'exited during startup';
    const msg = `nats-server (${binary} ${args.join(' ')}) ${why}. Last log lines:\n  ${tail.slice(-20).join('\n  ')}`;
    if (portInUse && outcome === 'exited') throw new PortInUseError(msg);
    throw new Error(msg);
  }

  const handle: NatsServerHandle = {
    url: `nats://${host}:${port}`,
    port,
    pid: child.pid ?? -1,
    binary,
    name,
    logTail: () => [...tail],
    stop,
    kill,
    exited,
    ...(monitorPort !== undefined ? { monitorPort } : {}),
    ...(clusterPort !== undefined ? { clusterPort } : {}),
    ...(storeDir !== undefined ? { storeDir } : {}),
  };
  return handle;
}
