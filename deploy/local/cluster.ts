/**
 * Start a local N-node NATS cluster (JetStream on, R3-capable) whose route links can be routed
 * through proxies, and kill/restart single nodes of it.
 *
 *   const cluster = await startNatsCluster({ route: (from, to, port) => proxy.portFor(from, to, port) });
 *   const nc = await connect({ servers: cluster.urls });
 *   cluster.kill(1);              // SIGKILL, store kept
 *   await cluster.restart(1);     // same ports, same store
 *   await cluster.waitForJetStream();
 *   await cluster.stop();
 *
 * Routes only go where the `route` hook says. nats-server gossips every server's advertised cluster
 * URL and dials servers it has no route to yet ("implicit routes"), which would bypass a proxy
 * (observed with 2.9.10: with the pair of proxies between node 0 and 1 closed, a restarted node 1 is
 * told about node 0 by node 2 and dials node 0's real cluster port). Each node therefore advertises
 * {@link REFUSED_ROUTE_ADVERTISE} (nothing listens there, the attempt fails) and gives up on an
 * implicit route after the first failure (`--connect_retries 0`); its explicit routes (the hook's
 * addresses) are retried forever, once a second. `--no_advertise` keeps servers from telling clients
 * the other nodes' client URLs, so clients only use the URLs they were given.
 *
 * Only node builtins (and ./nats.js) are imported on purpose: this directory must work before the
 * repo is built (tests transpile it on the fly).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getFreePort, startNatsServer } from './nats.js';
import type { NatsServerHandle } from './nats.js';

/**
 * Cluster URL every node advertises to the others: port 1 on loopback, where nothing listens, so an
 * implicit (gossiped) route attempt is refused instead of reaching a node past its proxy.
 */
export const REFUSED_ROUTE_ADVERTISE = '127.0.0.1:1';

const HOST = '127.0.0.1';
const DEFAULT_READY_MS = 30_000;
const POLL_MS = 200;
const FETCH_TIMEOUT_MS = 2_000;
const START_ATTEMPTS = 3;

/** Options for {@link startNatsCluster}. Every field is optional. */
export interface NatsClusterOptions {
  /** Number of nodes; default 3. */
  size?: number;
  /** Cluster name (`--cluster_name`), also the prefix of the server names (`<name>-<i>`); default 'sphere'. */
  name?: string;
  /** If set (created when missing), node i appends its log to `${logDir}/nats-${i}.log`, restarts included. */
  logDir?: string;
  /**
   * Where node `from` dials its route to node `to`, given `to`'s real cluster port; default: directly
   * (returns `clusterPort`). The chaos controller returns a proxy port here (on 127.0.0.1). Called
   * once per ordered pair before any node starts; restarts reuse the answers. Called again with new
   * cluster ports if the start is retried because a picked port was taken meanwhile.
   */
  route?: (from: number, to: number, clusterPort: number) => Promise<number> | number;
  /**
   * Per-node timeout for "Server is ready", and the timeout of the JetStream wait at startup;
   * default 30 000 ms.
   */
  readyTimeoutMs?: number;
}

/** One node of a {@link NatsCluster}. Ports and store dir stay the same across restarts. */
export interface NatsClusterNode {
  readonly index: number;
  /** Server name (`-n`), `<cluster name>-<index>`. */
  readonly name: string;
  /** Client URL, `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** The node's real cluster (route) port. */
  readonly clusterPort: number;
  /** HTTP monitoring port (/varz, /routez, /jsz, /healthz). */
  readonly monitorPort: number;
  /** JetStream store dir (under the cluster's temp dir, removed by `stop()`). */
  readonly storeDir: string;
  /** Route URLs this node dials (one per other node, as the `route` hook answered). */
  readonly routes: readonly string[];
  /** True while the current process has not exited (false right after a kill until it is reaped). */
  running(): boolean;
  /** Pid of the current (or last) process; -1 before the first start. */
  pid(): number;
  /** Last lines of the current (or last) process's log. */
  logTail(): string[];
}

/** A running cluster; also a `Stoppable` (deploy/local/processes.ts). */
export interface NatsCluster {
  readonly nodes: readonly NatsClusterNode[];
  /** Client URLs of all nodes (a fresh array). */
  readonly urls: string[];
  /** Signal node i now (default SIGKILL). Its store is kept; it is not restarted. */
  kill(i: number, signal?: NodeJS.Signals): void;
  /** Signal every node now (default SIGKILL), synchronously; for exit hooks (`Stoppable.kill`). */
  kill(signal?: NodeJS.Signals): void;
  /**
   * Start node i again on the same ports, store dir and routes; resolves when it logs "Server is
   * ready" (use {@link waitForJetStream} for the meta group). A node that is still running (or still
   * shutting down) is SIGKILLed first. Retries for a while if one of its ports was taken meanwhile.
   */
  restart(i: number): Promise<void>;
  /**
   * Resolves when the JetStream meta group has a leader that every running node agrees on, the
   * leader sees every other running node as a current, online peer, and every running node's
   * /healthz is ok. Default timeout 30 000 ms; rejects with the last observed state.
   */
  waitForJetStream(timeoutMs?: number): Promise<void>;
  /** Stop all nodes (SIGTERM, SIGKILL after 5 s) and remove the temp store dirs. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Start `size` nats-server nodes with JetStream, explicit routes between all of them (through the
 * `route` hook), and wait until the JetStream meta group is formed.
 *
 * Contract: all ports are picked up front; the whole start is retried (new ports) up to 3 times
 * when a picked port was grabbed by someone else. On failure every started node is stopped, the
 * temp dirs are removed and the error (with log lines) is thrown.
 */
export async function startNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  const size = opts.size ?? 3;
  if (!Number.isInteger(size) || size < 1)
    throw new Error(`startNatsCluster: size must be >= 1, got ${size}`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(size, opts);
    } catch (err) {
      if (!isPortInUse(err) || attempt >= START_ATTEMPTS) throw err;
    }
  }
}

function isPortInUse(err: unknown): boolean {
  return err instanceof Error && /address already in use/i.test(err.message);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class ClusterNode implements NatsClusterNode {
  handle: NatsServerHandle | undefined;
  alive = false;
  /** In-flight start or restart. */
  starting: Promise<void> | undefined;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly port: number,
    readonly clusterPort: number,
    readonly monitorPort: number,
    readonly storeDir: string,
    readonly routes: readonly string[],
  ) {}

  get url(): string {
    return `nats://${HOST}:${this.port}`;
  }
  running(): boolean {
    return this.alive;
  }
  pid(): number {
    return this.handle?.pid ?? -1;
  }
  logTail(): string[] {
    return this.handle?.logTail() ?? [];
  }
  adopt(handle: NatsServerHandle): void {
    this.handle = handle;
    this.alive = true;
    void handle.exited.then(() => {
      if (this.handle === handle) this.alive = false;
    });
  }
}

async function pickPorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await getFreePort(HOST));
  return [...ports];
}

async function startOnce(size: number, opts: NatsClusterOptions): Promise<NatsCluster> {
  const clusterName = opts.name ?? 'sphere';
  const readyTimeoutMs = opts.readyTimeoutMs ?? DEFAULT_READY_MS;
  const route = opts.route ?? ((_from: number, _to: number, clusterPort: number) => clusterPort);
  const logDir = opts.logDir;
  if (logDir !== undefined) await mkdir(logDir, { recursive: true });

  const ports = await pickPorts(3 * size);
  const root = await mkdtemp(join(tmpdir(), `sphere-nats-cluster-`));
  const nodes: ClusterNode[] = [];
  try {
    for (let i = 0; i < size; i++) {
      const routes: string[] = [];
      for (let to = 0; to < size; to++) {
        if (to === i) continue;
        const via = await route(i, to, ports[3 * to + 1] ?? 0);
        if (!Number.isInteger(via) || via < 1 || via > 65_535)
          throw new Error(`startNatsCluster: route(${i}, ${to}) returned ${String(via)}, not a port`);
        routes.push(`nats://${HOST}:${via}`);
      }
      const storeDir = join(root, `node-${i}`);
      await mkdir(storeDir);
      nodes.push(
        new ClusterNode(
          i,
          `${clusterName}-${i}`,
          ports[3 * i] ?? 0,
          ports[3 * i + 1] ?? 0,
          ports[3 * i + 2] ?? 0,
          storeDir,
          routes,
        ),
      );
    }
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }

  const startNode = async (node: ClusterNode): Promise<void> => {
    const handle = await startNatsServer({
      host: HOST,
      port: node.port,
      clusterPort: node.clusterPort,
      monitorPort: node.monitorPort,
      clusterName,
      name: node.name,
      jetstream: true,
      storeDir: node.storeDir,
      routes: [...node.routes],
      extraArgs: ['--cluster_advertise', REFUSED_ROUTE_ADVERTISE, '--connect_retries', '0', '--no_advertise'],
      readyTimeoutMs,
      ...(logDir !== undefined ? { logFile: join(logDir, `nats-${node.index}.log`) } : {}),
    });
    node.adopt(handle);
  };

  let stopping: Promise<void> | undefined;

  const killAll = (signal: NodeJS.Signals = 'SIGKILL'): void => {
    for (const n of nodes) n.handle?.kill(signal);
  };

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await Promise.all(nodes.map((n) => n.starting?.catch(() => undefined) ?? Promise.resolve()));
      await Promise.all(nodes.map((n) => n.handle?.stop() ?? Promise.resolve()));
      await rm(root, { recursive: true, force: true });
    })();
    return stopping;
  };

  const restart = async (i: number): Promise<void> => {
    const node = nodeAt(nodes, i);
    if (stopping) throw new Error(`restart(${i}): the cluster has been stopped`);
    while (node.starting) await node.starting.catch(() => undefined);
    const run = (async () => {
      const old = node.handle;
      if (old) {
        old.kill('SIGKILL');
        await old.stop(); // reaps it and closes its log; the store dir is ours, so it is kept
      }
      const deadline = Date.now() + readyTimeoutMs;
      for (;;) {
        if (stopping) throw new Error(`restart(${i}): the cluster has been stopped`);
        try {
          await startNode(node);
          return;
        } catch (err) {
          // One of its ports may be used as some connection's ephemeral port meanwhile.
          if (!isPortInUse(err) || Date.now() > deadline) throw err;
          await sleep(500);
        }
      }
    })();
    node.starting = run;
    try {
      await run;
    } finally {
      if (node.starting === run) node.starting = undefined;
    }
  };

  const waitForJetStream = (timeoutMs = DEFAULT_READY_MS): Promise<void> =>
    waitForMeta(nodes, timeoutMs, () => stopping !== undefined);

  function kill(i: number, signal?: NodeJS.Signals): void;
  function kill(signal?: NodeJS.Signals): void;
  function kill(a?: number | NodeJS.Signals, signal: NodeJS.Signals = 'SIGKILL'): void {
    if (typeof a === 'number') nodeAt(nodes, a).handle?.kill(signal);
    else killAll(a ?? 'SIGKILL');
  }

  const cluster: NatsCluster = {
    nodes,
    get urls() {
      return nodes.map((n) => n.url);
    },
    kill,
    restart,
    waitForJetStream,
    stop,
  };

  const initial = nodes.map((n) => {
    const p = startNode(n);
    n.starting = p;
    return p.finally(() => {
      if (n.starting === p) n.starting = undefined;
    });
  });
  const started = await Promise.allSettled(initial);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  try {
    if (failed) throw failed.reason;
    await waitForJetStream(readyTimeoutMs);
  } catch (err) {
    const tails = nodes.map((n) => `${n.name}:\n    ${n.logTail().slice(-10).join('\n    ')}`).join('\n  ');
    await stop();
    if (err instanceof Error && failed) throw err; // already carries the failing node's log
    throw new Error(`NATS cluster did not start: ${String(err)}\n  ${tails}`, { cause: err });
  }
  return cluster;
}

function nodeAt(nodes: readonly ClusterNode[], i: number): ClusterNode {
  const node = nodes[i];
  if (node === undefined) throw new RangeError(`no cluster node ${i} (size ${nodes.length})`);
  return node;
}

interface JszReplica {
  name: string;
  current?: boolean;
  offline?: boolean;
}
interface Jsz {
  meta_cluster?: { leader?: string; replicas?: JszReplica[] };
}

async function fetchJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* keep the text */
  }
  return { status: res.status, body };
}

/** One look at the meta group; returns null when ready, else why not. */
async function metaNotReady(nodes: readonly ClusterNode[]): Promise<string | null> {
  const running = nodes.filter((n) => n.running());
  if (running.length === 0) return 'no node is running';
  const views = await Promise.all(
    running.map(async (n) => {
      try {
        const base = `http://${HOST}:${n.monitorPort}`;
        const [jsz, health] = await Promise.all([fetchJson(`${base}/jsz`), fetchJson(`${base}/healthz`)]);
        return { node: n, jsz: jsz.body as Jsz, healthy: health.status === 200, health: health.body };
      } catch (err) {
        return { node: n, error: String(err) };
      }
    }),
  );
  const problems: string[] = [];
  let leader: string | undefined;
  for (const v of views) {
    if ('error' in v) {
      problems.push(`${v.node.name}: monitoring not reachable (${v.error})`);
      continue;
    }
    const l = v.jsz.meta_cluster?.leader;
    if (!l) problems.push(`${v.node.name}: no meta leader`);
    else if (leader === undefined) leader = l;
    else if (leader !== l) problems.push(`${v.node.name}: sees leader ${l}, another node sees ${leader}`);
    if (!v.healthy) problems.push(`${v.node.name}: /healthz ${JSON.stringify(v.health)}`);
  }
  if (problems.length > 0) return problems.join('; ');
  const lv = views.find((v) => v.node.name === leader);
  if (lv === undefined || 'error' in lv) return `meta leader ${leader} is not a running node`;
  const replicas = lv.jsz.meta_cluster?.replicas ?? [];
  for (const n of running) {
    if (n.name === leader) continue;
    const r = replicas.find((x) => x.name === n.name);
    if (r === undefined) problems.push(`leader ${leader} does not list ${n.name} as a peer`);
    else if (r.current !== true || r.offline === true)
      problems.push(`leader ${leader} sees ${n.name} as ${r.offline ? 'offline' : 'not current'}`);
  }
  return problems.length > 0 ? problems.join('; ') : null;
}

async function waitForMeta(
  nodes: readonly ClusterNode[],
  timeoutMs: number,
  stopped: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let why: string | null = 'not checked yet';
  for (;;) {
    if (stopped()) throw new Error('waitForJetStream: the cluster has been stopped');
    why = await metaNotReady(nodes);
    if (why === null) return;
    if (Date.now() >= deadline) break;
    await sleep(POLL_MS);
  }
  throw new Error(`JetStream meta group not ready within ${timeoutMs} ms: ${why}`);
}
