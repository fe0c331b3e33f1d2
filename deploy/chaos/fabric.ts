/**
 * The chaos stack's network: a NATS cluster whose every link runs through a seeded TCP proxy.
 *
 *   devices ──proxy──▶ nats-j        (one proxy per NATS node; the loadgen fails over between them)
 *   shard-i ──proxy──▶ nats-j        (one per shard and node)
 *   nats-i  ──proxy──▶ nats-j        (one per ordered pair: the cluster routes)
 *
 * Clients get the proxies' URLs only (servers do not advertise other nodes to clients, nor
 * gossip routes past the proxies; see deploy/local/cluster.ts), so a fault on the proxies is the
 * whole truth of what a link does.
 */
import { createRng } from '../../actors/runtime/index.js';
import type { Rng } from '../../actors/runtime/index.js';
import { startNatsCluster } from '../local/cluster.js';
import type { NatsCluster } from '../local/cluster.js';
import type { ChaosLink, ChaosProcess } from './controller.js';
import { startLinkProxy } from './proxy.js';
import type { LinkProxy } from './proxy.js';

export interface FabricOptions {
  readonly natsNodes: number;
  /** Endpoints that connect to NATS as clients, e.g. `devices`, `shard-0`, `shard-1`. */
  readonly clients: readonly string[];
  /** Seeds every proxy's draws (cohorts, jitter, loss): `<seed>/chaos/<from>-><to>`. */
  readonly seed: string;
  readonly logDir?: string;
}

export interface Fabric {
  readonly cluster: NatsCluster;
  readonly links: ChaosLink[];
  /** Comma-separated proxy URLs through which `client` reaches every node (its `--nats`). */
  natsFor(client: string): string;
  /** The nodes' own URLs (for tools that must not go through faults, like the verdict's reader). */
  readonly directUrls: string;
  /** The NATS nodes as processes the controller can kill and restart. */
  readonly processes: ChaosProcess[];
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
}

const proxy = (rng: Rng, from: string, to: string, port: number): Promise<LinkProxy> => {
  const r = rng.fork(`${from}->${to}`);
  return startLinkProxy({
    name: `${from}->${to}`,
    upstream: { host: '127.0.0.1', port },
    random: () => r.next(),
  });
};

export async function startFabric(opts: FabricOptions): Promise<Fabric> {
  const rng = createRng(`${opts.seed}/chaos`);
  const routes = new Map<string, ChaosLink>();
  const closeAll = async (links: Iterable<ChaosLink>): Promise<void> => {
    await Promise.all([...links].map((l) => l.proxy.close()));
  };
  let cluster: NatsCluster;
  try {
    cluster = await startNatsCluster({
      size: opts.natsNodes,
      name: 'sphere',
      ...(opts.logDir !== undefined ? { logDir: opts.logDir } : {}),
      route: async (i, j, clusterPort) => {
        const key = `nats-${i}->nats-${j}`;
        const before = routes.get(key);
        if (before !== undefined) await before.proxy.close();
        const p = await proxy(rng, `nats-${i}`, `nats-${j}`, clusterPort);
        routes.set(key, { from: `nats-${i}`, to: `nats-${j}`, proxy: p });
        return p.port;
      },
    });
  } catch (e) {
    await closeAll(routes.values());
    throw e;
  }
  const clientLinks: ChaosLink[] = [];
  try {
    for (const client of opts.clients)
      for (const node of cluster.nodes)
        clientLinks.push({
          from: client,
          to: `nats-${node.index}`,
          proxy: await proxy(rng, client, `nats-${node.index}`, node.port),
        });
  } catch (e) {
    await closeAll([...routes.values(), ...clientLinks]);
    await cluster.stop();
    throw e;
  }
  const links = [...routes.values(), ...clientLinks];
  const processes: ChaosProcess[] = cluster.nodes.map((n) => ({
    name: `nats-${n.index}`,
    kill: () => cluster.kill(n.index, 'SIGKILL'),
    restart: () => cluster.restart(n.index),
    pause: () => cluster.kill(n.index, 'SIGSTOP'),
    resume: () => cluster.kill(n.index, 'SIGCONT'),
  }));
  let stopping: Promise<void> | undefined;
  return {
    cluster,
    links,
    natsFor: (client) => {
      const mine = clientLinks.filter((l) => l.from === client);
      if (mine.length === 0) throw new Error(`no links for ${client}`);
      return mine.map((l) => l.proxy.url).join(',');
    },
    directUrls: cluster.urls.join(','),
    processes,
    stop: () => {
      stopping ??= (async () => {
        await closeAll(links);
        await cluster.stop();
      })();
      return stopping;
    },
    kill: (signal) => cluster.kill(signal ?? 'SIGKILL'),
  };
}
