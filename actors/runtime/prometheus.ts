import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as prom from 'prom-client';
import type { Counter, Gauge, Histogram, Labels, Meter, MetricOptions } from './meter.js';
import { MetricConflictError } from './meter.js';

export interface PromMeterOptions {
  /** Prepended to every metric name (e.g. `'shard_'`). Default none. */
  readonly prefix?: string;
  /** Also collect prom-client's process/runtime default metrics. Default false. */
  readonly defaultMetrics?: boolean;
}

export interface MetricsServer {
  /** Bound port (the real one when 0 was asked for). */
  readonly port: number;
  /** `http://host:port/metrics`. */
  readonly url: string;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/** `Meter` backed by a private prom-client `Registry` (never the global one). */
export interface PromMeter extends Meter {
  readonly registry: prom.Registry;
  /** Prometheus text exposition of everything in `registry`. */
  metricsText(): Promise<string>;
  /**
   * Serves `GET /metrics` (query string ignored) with the exposition and the
   * registry's content type; any other method or path gets 404.
   * `host` defaults to 127.0.0.1; port 0 picks a free port.
   */
  serveMetrics(opts: { host?: string; port: number }): Promise<MetricsServer>;
}

type Kind = 'counter' | 'gauge' | 'histogram';
/** What a name was first registered as; later requests must match. */
interface Entry {
  readonly kind: Kind;
  readonly labelKey: string;
  readonly instrument: Counter | Gauge | Histogram;
}

/** Splits the (labels?, value?) overload forms. */
function args(
  a: Labels | number | undefined,
  b: number | undefined,
): [Labels | undefined, number | undefined] {
  return typeof a === 'number' || a === undefined ? [undefined, a] : [a, b];
}

/** Creates a prom-client backed meter with its own registry. */
export function createPromMeter(opts: PromMeterOptions = {}): PromMeter {
  const prefix = opts.prefix ?? '';
  const registry = new prom.Registry();
  if (opts.defaultMetrics === true) {
    prom.collectDefaultMetrics({ register: registry, prefix });
    // prom-client names some gauges `*_total` (nodejs_active_handles_total, ...), which
    // `promtool check metrics` rejects; a conforming exposition matters more than those three.
    for (const m of registry.getMetricsAsArray()) {
      const { name, type } = m as unknown as { name: string; type: string };
      if (name.endsWith('_total') && type !== 'counter') registry.removeSingleMetric(name);
    }
  }
  const entries = new Map<string, Entry>();

  /** Returns the existing instrument for `name` or builds one; enforces same kind and labels. */
  function getOrCreate<T extends Counter | Gauge | Histogram>(
    kind: Kind,
    o: MetricOptions,
    build: (name: string, labelNames: string[]) => T,
  ): T {
    const name = prefix + o.name;
    const labelNames = [...(o.labelNames ?? [])];
    const labelKey = [...labelNames].sort().join(',');
    const existing = entries.get(name);
    if (existing !== undefined) {
      if (existing.kind !== kind || existing.labelKey !== labelKey) {
        throw new MetricConflictError(
          `metric ${name} already registered as ${existing.kind}{${existing.labelKey}}, asked for ${kind}{${labelKey}}`,
        );
      }
      return existing.instrument as T;
    }
    let instrument: T;
    try {
      instrument = build(name, labelNames);
    } catch (cause) {
      // e.g. a name clash with a default metric, or an invalid name
      throw new MetricConflictError(`cannot register metric ${name}`, { cause });
    }
    entries.set(name, { kind, labelKey, instrument });
    return instrument;
  }

  const meter: PromMeter = {
    registry,
    counter(o) {
      return getOrCreate('counter', o, (name, labelNames) => {
        const c = new prom.Counter({ name, help: o.help, labelNames, registers: [registry] });
        return {
          inc(a?: Labels | number, b?: number) {
            const [labels, v] = args(a, b);
            if (labels === undefined) c.inc(v ?? 1);
            else c.inc(labels, v ?? 1);
          },
        };
      });
    },
    gauge(o) {
      return getOrCreate('gauge', o, (name, labelNames) => {
        const g = new prom.Gauge({ name, help: o.help, labelNames, registers: [registry] });
        return {
          set(a: Labels | number, b?: number) {
            const [labels, v] = args(a, b);
            if (labels === undefined) g.set(v ?? 0);
            else g.set(labels, v ?? 0);
          },
          inc(a?: Labels | number, b?: number) {
            const [labels, v] = args(a, b);
            if (labels === undefined) g.inc(v ?? 1);
            else g.inc(labels, v ?? 1);
          },
          dec(a?: Labels | number, b?: number) {
            const [labels, v] = args(a, b);
            if (labels === undefined) g.dec(v ?? 1);
            else g.dec(labels, v ?? 1);
          },
          remove(labels: Labels) {
            g.remove(labels);
          },
        };
      });
    },
    histogram(o) {
      return getOrCreate('histogram', o, (name, labelNames) => {
        const h = new prom.Histogram({
          name,
          help: o.help,
          labelNames,
          registers: [registry],
          ...(o.buckets !== undefined ? { buckets: [...o.buckets] } : {}),
        });
        return {
          observe(a: Labels | number, b?: number) {
            const [labels, v] = args(a, b);
            if (labels === undefined) h.observe(v ?? 0);
            else h.observe(labels, v ?? 0);
          },
        };
      });
    },
    metricsText: () => registry.metrics(),
    async serveMetrics({ host = '127.0.0.1', port }) {
      const server = createServer((req, res) => {
        const path = (req.url ?? '').split('?')[0];
        if (req.method !== 'GET' || path !== '/metrics') {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
          return;
        }
        registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(e)}\n`),
        );
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const bound = (server.address() as AddressInfo).port;
      // A wildcard bind address is not dialable; advertise loopback instead.
      const urlHost =
        host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
      return {
        port: bound,
        url: `http://${urlHost}:${bound}/metrics`,
        close: () =>
          new Promise<void>((resolve, reject) => {
            server.close((e) => (e ? reject(e) : resolve()));
            server.closeAllConnections();
          }),
      };
    },
  };
  return meter;
}
