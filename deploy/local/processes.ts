/**
 * A tiny process supervisor for the local launcher and the e2e test fixtures.
 *
 * Every child runs in its own process group (`detached: true`) and is signalled through the group
 * (`process.kill(-pid, sig)`), so grandchildren die with it. {@link installShutdownHandlers} makes
 * sure that Ctrl-C, SIGTERM, a normal exit or an uncaught error leaves no orphan behind.
 *
 * Only node builtins are imported on purpose (tests transpile this file on the fly).
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';

/** Anything the shutdown handlers can stop: managed processes, nats-server handles, ... */
export interface Stoppable {
  /** Graceful stop; resolves once the thing is gone. Must be idempotent. */
  stop(): Promise<unknown>;
  /** Immediate, synchronous, best-effort kill (used from the process 'exit' hook). */
  kill(signal?: NodeJS.Signals): void;
}

/** Options for {@link spawnManaged}. */
export interface SpawnManagedOptions {
  /** Environment of the child; default: this process's environment. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * Readiness condition tested on every output line (stdout and stderr). Omitted = ready as soon
   * as the process has been spawned.
   */
  ready?: RegExp | ((line: string) => boolean);
  /** Default 30 000 ms. */
  readyTimeoutMs?: number;
  /** Echo each output line to this process's stdout/stderr as `[name] line`. Default false. */
  prefixOutput?: boolean;
  /** Forward output chunks unchanged to this process's stdout/stderr (for a foreground tool). */
  passthrough?: boolean;
  /** Append all output (stdout and stderr) to this file. */
  logFile?: string;
  /** Called for every complete output line. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Grace period between SIGTERM and SIGKILL in `stop()`; default 5 000 ms. */
  stopGraceMs?: number;
}

/** How a process ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Handle of a child started by {@link spawnManaged}. */
export interface ManagedProcess extends Stoppable {
  readonly name: string;
  readonly pid: number;
  /**
   * Resolves when the readiness condition matched; rejects (with the last output lines) when the
   * process exits first or the timeout elapses. Rejections are pre-handled: not awaiting it is safe.
   */
  readonly ready: Promise<void>;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** True until the process has exited. */
  isRunning(): boolean;
  /** The last (at most 500) output lines. */
  tail(n?: number): string[];
  /** SIGTERM the process group, SIGKILL it after the grace period; resolves with the exit info. */
  stop(graceMs?: number): Promise<ExitInfo>;
  /** Signal the whole process group now (default SIGKILL). No-op once exited. */
  kill(signal?: NodeJS.Signals): void;
}

const TAIL_MAX = 500;

/**
 * Spawn `cmd args` in its own process group with output captured line by line.
 *
 * Contract: never throws synchronously for a missing command; a spawn failure shows up as
 * `exited` resolving with code null and `ready` rejecting.
 */
export function spawnManaged(
  name: string,
  cmd: string,
  args: readonly string[],
  opts: SpawnManagedOptions = {},
): ManagedProcess {
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const lines: string[] = [];
  let log: WriteStream | undefined;
  if (opts.logFile !== undefined) {
    log = createWriteStream(opts.logFile, { flags: 'a' });
    log.on('error', () => undefined);
  }
  let running = true;
  let readyResolve!: () => void;
  let readyReject!: (err: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  ready.catch(() => undefined);
  let isReady = false;
  const matches =
    opts.ready === undefined
      ? undefined
      : opts.ready instanceof RegExp
        ? (l: string): boolean => (opts.ready as RegExp).test(l)
        : opts.ready;

  const failReady = (why: string): void => {
    if (isReady) return;
    isReady = true;
    const last = lines
      .slice(-20)
      .map((l) => `  ${l}`)
      .join('\n');
    readyReject(
      new Error(`${name} (${cmd} ${args.join(' ')}) ${why}.${last ? ` Last output:\n${last}` : ''}`),
    );
  };

  const attach = (stream: NodeJS.ReadableStream, which: 'stdout' | 'stderr'): void => {
    const out = which === 'stdout' ? process.stdout : process.stderr;
    let partial = '';
    stream.on('data', (chunk: Buffer) => {
      log?.write(chunk);
      if (opts.passthrough) out.write(chunk);
      partial += chunk.toString('utf8');
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) emit(line, which, out);
    });
    stream.on('end', () => {
      if (partial !== '') emit(partial, which, out);
      partial = '';
    });
  };
  const emit = (line: string, which: 'stdout' | 'stderr', out: NodeJS.WriteStream): void => {
    lines.push(line);
    if (lines.length > TAIL_MAX) lines.shift();
    if (opts.prefixOutput) out.write(`[${name}] ${line}\n`);
    opts.onLine?.(line, which);
    if (!isReady && matches?.(line)) {
      isReady = true;
      readyResolve();
    }
  };
  attach(child.stdout, 'stdout');
  attach(child.stderr, 'stderr');

  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('error', (err) => {
      lines.push(`spawn error: ${err.message}`);
      running = false;
      failReady(`could not be started (${err.message})`);
      resolve({ code: null, signal: null });
    });
    // 'close' (not 'exit') so that all output has been read before we report.
    child.once('close', (code, signal) => {
      running = false;
      failReady(`exited (code ${code ?? 'null'}, signal ${signal ?? 'none'}) before it was ready`);
      if (log) log.end(() => resolve({ code, signal }));
      else resolve({ code, signal });
    });
  });
  child.once('exit', () => {
    running = false;
    // Kill lingering group members (grandchildren) that kept running after the leader exited.
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* group already empty */
      }
    }
  });

  if (matches === undefined) {
    if (child.pid !== undefined) {
      isReady = true;
      readyResolve();
    }
  } else {
    const timeoutMs = opts.readyTimeoutMs ?? 30_000;
    const t = setTimeout(() => failReady(`was not ready within ${timeoutMs} ms`), timeoutMs);
    t.unref();
    void ready.then(
      () => clearTimeout(t),
      () => clearTimeout(t),
    );
  }

  const kill = (signal: NodeJS.Signals = 'SIGKILL'): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      if (running) {
        try {
          child.kill(signal);
        } catch {
          /* gone */
        }
      }
    }
  };

  let stopping: Promise<ExitInfo> | undefined;
  const stop = (graceMs?: number): Promise<ExitInfo> => {
    stopping ??= (async () => {
      if (running) {
        kill('SIGTERM');
        const t = setTimeout(() => kill('SIGKILL'), graceMs ?? opts.stopGraceMs ?? 5_000);
        const info = await exited;
        clearTimeout(t);
        return info;
      }
      return exited;
    })();
    return stopping;
  };

  return {
    name,
    pid: child.pid ?? -1,
    ready,
    exited,
    isRunning: () => running,
    tail: (n = TAIL_MAX) => lines.slice(-n),
    stop,
    kill,
  };
}

/** Options for {@link installShutdownHandlers}. */
export interface ShutdownOptions {
  /** Called once when a signal arrives, before stopping (e.g. to print "stopping..."). */
  onSignal?: (signal: NodeJS.Signals) => void;
  /** Exit codes per signal; defaults: SIGINT 130, SIGTERM 143, SIGHUP 129. */
  exitCodes?: Partial<Record<'SIGINT' | 'SIGTERM' | 'SIGHUP', number>>;
}

/** Returned by {@link installShutdownHandlers}. */
export interface ShutdownController {
  /** Stop everything (in reverse registration order), then `process.exit(code)`. Idempotent. */
  shutdown(code: number): Promise<never>;
  /** Stop everything (reverse order) without exiting. */
  stopAll(): Promise<void>;
  /** Remove the installed handlers. */
  uninstall(): void;
}

/**
 * Make sure nothing in `handles` outlives this process.
 *
 * - SIGINT / SIGTERM / SIGHUP: stop all handles (children get SIGTERM, SIGKILL after their grace
 *   period) in reverse order, then exit with 130 / 143 / 129. A second signal SIGKILLs everything
 *   and exits at once.
 * - uncaught exception / unhandled rejection: print it, stop all, exit 1.
 * - normal exit (`process.exit` or an empty event loop): synchronously SIGKILL what is left.
 *
 * `handles` is read live: pushing to the array after installation is fine.
 */
export function installShutdownHandlers(
  handles: Stoppable[] | (() => readonly Stoppable[]),
  opts: ShutdownOptions = {},
): ShutdownController {
  const list = (): readonly Stoppable[] => (typeof handles === 'function' ? handles() : handles);
  let shuttingDown: Promise<never> | undefined;

  const killAll = (): void => {
    for (const h of list()) {
      try {
        h.kill('SIGKILL');
      } catch {
        /* ignore */
      }
    }
  };
  const stopAll = async (): Promise<void> => {
    const all = [...list()].reverse();
    // Stop in reverse order, but don't let one slow child hold up the others for long.
    for (const h of all) {
      await Promise.race([h.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 2_000))]);
    }
    await Promise.all(all.map((h) => h.stop().catch(() => undefined)));
  };
  const shutdown = (code: number): Promise<never> => {
    shuttingDown ??= (async () => {
      try {
        await stopAll();
      } finally {
        process.exit(code);
      }
    })();
    return shuttingDown;
  };

  const codes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129, ...opts.exitCodes };
  const onSig = (sig: 'SIGINT' | 'SIGTERM' | 'SIGHUP'): void => {
    if (shuttingDown) {
      killAll();
      process.exit(codes[sig]);
    }
    opts.onSignal?.(sig);
    void shutdown(codes[sig]);
  };
  const sigHandlers = {
    SIGINT: () => onSig('SIGINT'),
    SIGTERM: () => onSig('SIGTERM'),
    SIGHUP: () => onSig('SIGHUP'),
  };
  const onFatal = (err: unknown): void => {
    // Only report the first fatal error, and never a broken stdout/stderr pipe (`... | head`):
    // writing about it would raise the next EPIPE and spin forever.
    if (shuttingDown) return;
    const epipe = (err as NodeJS.ErrnoException | undefined)?.code === 'EPIPE';
    if (!epipe) {
      try {
        process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      } catch {
        /* stderr unusable */
      }
    }
    void shutdown(1);
  };
  const onExit = (): void => killAll();

  for (const [sig, fn] of Object.entries(sigHandlers)) process.on(sig, fn);
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  process.on('exit', onExit);

  return {
    shutdown,
    stopAll,
    uninstall: () => {
      for (const [sig, fn] of Object.entries(sigHandlers)) process.off(sig, fn);
      process.off('uncaughtException', onFatal);
      process.off('unhandledRejection', onFatal);
      process.off('exit', onExit);
    },
  };
}
