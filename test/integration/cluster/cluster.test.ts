/**
 * The local N-node NATS cluster (deploy/local/cluster.ts): a full route mesh, an R3 JetStream
 * stream that survives SIGKILL and restart of a node, and route links that go only where the
 * `route` hook says (so the chaos controller's proxies cannot be bypassed).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { connect, StorageType, StringCodec } from 'nats';
import type { NatsConnection, StreamInfo } from 'nats';
import { afterAll, describe, expect, it } from 'vitest';
import { startNatsCluster } from '../../../deploy/local/cluster.js';
import type { NatsCluster } from '../../../deploy/local/cluster.js';
import type { Stoppable } from '../../../deploy/local/processes.js';
import { pidAlive, waitDead } from '../../fixtures/processes.js';

const sc = StringCodec();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  let last: string | undefined;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : JSON.stringify(err);
    }
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}${last !== undefined ? `: ${last}` : ''}`);
    await sleep(200);
  }
}

interface Route {
  remote_id: string;
  ip: string;
  port: number;
  did_solicit: boolean;
}
interface Routez {
  server_id: string;
  num_routes: number;
  routes?: Route[];
}
async function monitor<T>(cluster: NatsCluster, i: number, path: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${cluster.nodes[i]?.monitorPort}${path}`);
  return (await res.json()) as T;
}
const routez = (c: NatsCluster, i: number): Promise<Routez> => monitor<Routez>(c, i, '/routez');
const serverIds = (c: NatsCluster): Promise<string[]> =>
  Promise.all(c.nodes.map((n) => routez(c, n.index).then((r) => r.server_id)));

/** Wait until node i has exactly routes to the given nodes (by server id). */
async function waitRoutes(c: NatsCluster, i: number, to: number[]): Promise<Routez> {
  return until(`node ${i} routed to exactly [${to.join(',')}]`, async () => {
    const ids = await serverIds(c);
    const r = await routez(c, i);
    const remote = new Set((r.routes ?? []).map((x) => x.remote_id));
    const want = new Set(to.map((t) => ids[t] ?? `node ${t}`));
    return r.num_routes === to.length && remote.size === want.size && [...want].every((id) => remote.has(id))
      ? r
      : undefined;
  });
}

/** nats-server processes whose command line mentions the cluster's temp dir. */
function serverPids(storeRoot: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', storeRoot], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

async function expectAllGone(cluster: NatsCluster): Promise<void> {
  const root = dirname(cluster.nodes[0]?.storeDir ?? '/nonexistent');
  const pids = cluster.nodes.map((n) => n.pid());
  await cluster.stop();
  await cluster.stop(); // idempotent
  expect(await waitDead(pids)).toEqual([]);
  expect(serverPids(root)).toEqual([]);
}

describe('NATS cluster: mesh and JetStream', () => {
  let cluster: NatsCluster | undefined;
  const c = (): NatsCluster => {
    if (!cluster) throw new Error('cluster not started');
    return cluster;
  };
  const conns: NatsConnection[] = [];
  afterAll(async () => {
    await Promise.all(conns.map((nc) => nc.close().catch(() => undefined)));
    if (cluster) await expectAllGone(cluster);
  });

  it('3 nodes form a full route mesh, with JetStream meta leader and no client URL gossip', async () => {
    const t0 = Date.now();
    cluster = await startNatsCluster();
    console.log(`cluster: 3 nodes started and JetStream ready in ${Date.now() - t0} ms`);
    const stoppable: Stoppable = cluster; // also usable with installShutdownHandlers
    expect(typeof stoppable.kill).toBe('function');

    expect(c().nodes).toHaveLength(3);
    expect(c().urls).toEqual(c().nodes.map((n) => `nats://127.0.0.1:${n.port}`));
    expect(new Set(c().nodes.map((n) => n.name)).size).toBe(3);
    const ports = c().nodes.flatMap((n) => [n.port, n.clusterPort, n.monitorPort]);
    expect(new Set(ports).size).toBe(9);
    for (const n of c().nodes) {
      expect(n.running()).toBe(true);
      expect(pidAlive(n.pid())).toBe(true);
      await waitRoutes(
        c(),
        n.index,
        [0, 1, 2].filter((t) => t !== n.index),
      );
      const r = await routez(c(), n.index);
      expect(r.num_routes).toBe(2);
    }

    // --no_advertise: a client is not told about the other nodes.
    const nc = await connect({ servers: c().nodes[0]?.url });
    conns.push(nc);
    expect(nc.info?.connect_urls ?? []).toEqual([]);
    await nc.close();
  });

  it('an R3 stream keeps accepting writes while a node is SIGKILLed and catches the node up after restart', async () => {
    const STREAM = 'CLUSTER_R3';
    const nc0 = await connect({ servers: c().urls });
    conns.push(nc0);
    const jsm = await nc0.jetstreamManager();
    await jsm.streams.add({ name: STREAM, subjects: ['r3.>'], num_replicas: 3, storage: StorageType.File });
    const js = nc0.jetstream();
    const publish = async (n: number): Promise<void> => {
      await until(
        `publish #${n}`,
        async () => {
          const ack = await js.publish(`r3.${n}`, sc.encode(`m${n}`), { msgID: `m-${n}`, timeout: 2_000 });
          return ack;
        },
        60_000,
      );
    };
    for (let n = 0; n < 100; n++) await publish(n);
    const before = await jsm.streams.info(STREAM);
    expect(before.state.messages).toBe(100);
    const leaderName = before.cluster?.leader;
    const victim = c().nodes.find((n) => n.name === leaderName);
    expect(victim, `stream leader ${leaderName}`).toBeDefined();
    if (!victim) return;

    // A client connected to the stream leader, knowing all three URLs: killing that node makes it
    // reconnect elsewhere and the stream elect a new leader.
    const others = c().urls.filter((u) => u !== victim.url);
    const nc = await connect({
      servers: [victim.url, ...others],
      noRandomize: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    conns.push(nc);
    expect(nc.info?.server_name).toBe(victim.name);
    const events: string[] = [];
    void (async () => {
      for await (const s of nc.status()) events.push(s.type);
    })();
    const js2 = nc.jetstream();

    const oldPid = victim.pid();
    c().kill(victim.index);
    await waitDead([oldPid], 10_000);
    const tKill = Date.now();
    for (let n = 100; n < 200; n++) {
      await until(
        `publish #${n} with ${victim.name} down`,
        () => js2.publish(`r3.${n}`, sc.encode(`m${n}`), { msgID: `m-${n}`, timeout: 2_000 }),
        60_000,
      );
    }
    console.log(
      `cluster: 100 publishes with ${victim.name} (stream leader) down took ${Date.now() - tKill} ms`,
    );
    expect(victim.running()).toBe(false);
    expect(events).toContain('disconnect');
    expect(events).toContain('reconnect');
    expect(nc.info?.server_name).not.toBe(victim.name);
    const during = await until('stream info with a node down', () => jsm.streams.info(STREAM));
    expect(during.state.messages).toBe(200);
    expect(during.cluster?.leader).not.toBe(victim.name);

    const tRestart = Date.now();
    await c().restart(victim.index);
    const tReady = Date.now();
    expect(victim.running()).toBe(true);
    expect(victim.pid()).not.toBe(oldPid);
    await c().waitForJetStream(60_000);
    const tMeta = Date.now();
    const caughtUp = await until<StreamInfo>(
      'three current replicas',
      async () => {
        const si = await jsm.streams.info(STREAM);
        const peers = [si.cluster?.leader, ...(si.cluster?.replicas ?? []).map((r) => r.name)];
        const current = (si.cluster?.replicas ?? []).every((r) => r.current && !r.offline);
        return si.cluster?.leader && peers.length === 3 && current && peers.includes(victim.name)
          ? si
          : undefined;
      },
      60_000,
    );
    expect(caughtUp.state.messages).toBe(200);

    // The restarted node itself has every message of its replica.
    interface StreamJsz {
      account_details?: { stream_detail?: { name: string; state: { messages: number } }[] }[];
    }
    await until(
      `${victim.name} holding 200 messages`,
      async () => {
        const jsz = await monitor<StreamJsz>(c(), victim.index, '/jsz?accounts=true&streams=true');
        const detail = (jsz.account_details ?? [])
          .flatMap((a) => a.stream_detail ?? [])
          .find((s) => s.name === STREAM);
        return detail?.state.messages === 200 ? true : undefined;
      },
      60_000,
    );
    console.log(
      `cluster: restart of ${victim.name}: ready ${tReady - tRestart} ms, meta group current ${tMeta - tRestart} ms, ` +
        `stream replica caught up ${Date.now() - tRestart} ms`,
    );

    // Reads through the restarted node see all messages.
    const nc3 = await connect({ servers: victim.url });
    conns.push(nc3);
    const m = await (await nc3.jetstreamManager()).streams.getMessage(STREAM, { seq: 200 });
    expect(sc.decode(m.data)).toBe('m199');
  });
});

/** A throwaway TCP forwarder `127.0.0.1:port -> 127.0.0.1:target` that can be closed and reopened on the same port. */
class Forwarder {
  port = 0;
  /** Local ports of the forwarder's outgoing connections (what the target sees as the peer). */
  readonly outPorts = new Set<number>();
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(readonly target: number) {}

  async open(): Promise<number> {
    const server = createServer((down) => {
      const up = createConnection({ host: '127.0.0.1', port: this.target });
      this.sockets.add(down);
      this.sockets.add(up);
      up.on('connect', () => {
        if (up.localPort !== undefined) this.outPorts.add(up.localPort);
      });
      down.pipe(up);
      up.pipe(down);
      const drop = (): void => {
        down.destroy();
        up.destroy();
        this.sockets.delete(down);
        this.sockets.delete(up);
      };
      for (const s of [down, up]) {
        s.on('error', drop);
        s.on('close', drop);
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: this.port }, () => resolve());
    });
    const addr = server.address();
    if (typeof addr === 'object' && addr !== null) this.port = addr.port;
    this.server = server;
    return this.port;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

describe('NATS cluster: routes only through the route hook', () => {
  const fwd = new Map<string, Forwarder>();
  const hookCalls: [number, number, number][] = [];
  let cluster: NatsCluster | undefined;
  const logDir = mkdtempSync(join(tmpdir(), 'sphere-cluster-logs-'));
  afterAll(async () => {
    if (cluster) await expectAllGone(cluster);
    await Promise.all([...fwd.values()].map((f) => f.close()));
    rmSync(logDir, { recursive: true, force: true });
  });
  const log = (i: number): string => readFileSync(join(logDir, `nats-${i}.log`), 'utf8');

  const via = (from: number, to: number): Forwarder => {
    const f = fwd.get(`${from}-${to}`);
    if (!f) throw new Error(`no forwarder ${from}->${to}`);
    return f;
  };

  /** Every route of every node has a forwarder at its remote end, never a node's real cluster port. */
  async function expectAllRoutesViaForwarders(c: NatsCluster): Promise<void> {
    const listen = new Set([...fwd.values()].map((f) => f.port));
    const out = new Set([...fwd.values()].flatMap((f) => [...f.outPorts]));
    const real = new Set(c.nodes.map((n) => n.clusterPort));
    for (const n of c.nodes) {
      for (const r of (await routez(c, n.index)).routes ?? []) {
        expect(r.ip).toBe('127.0.0.1');
        expect(real.has(r.port), `node ${n.index} route to real port ${r.port}`).toBe(false);
        // Solicited through a forwarder (remote = its listen port), or accepted from one (remote =
        // the forwarder's outgoing socket).
        expect(listen.has(r.port) || out.has(r.port), `node ${n.index} route peer port ${r.port}`).toBe(true);
      }
    }
  }

  it('dials routes where the hook says; closing a forwarder pair isolates two nodes, even across a restart', async () => {
    cluster = await startNatsCluster({
      logDir,
      route: async (from, to, clusterPort) => {
        hookCalls.push([from, to, clusterPort]);
        const f = new Forwarder(clusterPort);
        fwd.set(`${from}-${to}`, f);
        return f.open();
      },
    });
    const c = cluster;
    expect(hookCalls).toHaveLength(6);
    for (const [from, to, port] of hookCalls) {
      expect(port).toBe(c.nodes[to]?.clusterPort);
      expect(c.nodes[from]?.routes).toContain(`nats://127.0.0.1:${via(from, to).port}`);
    }
    for (const i of [0, 1, 2])
      await waitRoutes(
        c,
        i,
        [0, 1, 2].filter((t) => t !== i),
      );
    await expectAllRoutesViaForwarders(c);

    // Cut 0 <-> 1: they lose their route and do not find another way (node 2 knows both).
    await via(0, 1).close();
    await via(1, 0).close();
    await waitRoutes(c, 0, [2]);
    await waitRoutes(c, 1, [2]);
    await sleep(3_000);
    expect((await routez(c, 0)).num_routes).toBe(1);
    expect((await routez(c, 1)).num_routes).toBe(1);
    expect((await routez(c, 2)).num_routes).toBe(2);

    // A restarted node 1 is gossiped to node 0 by node 2 (an implicit route): the advertised
    // cluster address refuses, so 0 and 1 stay apart.
    await c.restart(1);
    // Node 0 learns about the new node 1 from node 2 and tries its advertised (refusing) address once.
    await until('node 0 trying the advertised route address', () =>
      Promise.resolve(/dial tcp 127\.0\.0\.1:1: /.test(log(0)) ? true : undefined),
    );
    await waitRoutes(c, 1, [2]);
    await waitRoutes(c, 2, [0, 1]);
    await sleep(3_000);
    expect((await routez(c, 0)).num_routes).toBe(1);
    expect((await routez(c, 1)).num_routes).toBe(1);
    await expectAllRoutesViaForwarders(c);

    // Heal: the same forwarder ports again; explicit routes are retried, the mesh is whole again.
    await via(0, 1).open();
    await via(1, 0).open();
    for (const i of [0, 1, 2])
      await waitRoutes(
        c,
        i,
        [0, 1, 2].filter((t) => t !== i),
      );
    await expectAllRoutesViaForwarders(c);
    await c.waitForJetStream(60_000);

    // logDir: one file per node, appended across restarts.
    for (const i of [0, 1, 2]) expect(existsSync(join(logDir, `nats-${i}.log`))).toBe(true);
    expect(log(1).match(/Server is ready/g)).toHaveLength(2);
    expect(log(0).match(/Server is ready/g)).toHaveLength(1);
  });
});
