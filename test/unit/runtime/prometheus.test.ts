import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createPromMeter, MetricConflictError, noopMeter } from '../../../actors/runtime/index.js';

function get(url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    })
      .on('error', reject)
      .end();
  });
}

/** Parses exposition lines into `name{labels}` -> value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe('prom meter', () => {
  it('prom meter - serveMetrics on port 0 exposes labelled counters, gauges and histograms over HTTP', async () => {
    const meter = createPromMeter({ prefix: 'test_' });
    meter.counter({ name: 'requests_total', help: 'r', labelNames: ['route'] }).inc({ route: 'attest' }, 2);
    meter.counter({ name: 'plain_total', help: 'p' }).inc();
    const g = meter.gauge({ name: 'depth', help: 'd', labelNames: ['q'] });
    g.set({ q: 'a' }, 5);
    g.inc({ q: 'a' });
    g.dec({ q: 'a' }, 2);
    meter.histogram({ name: 'latency_ms', help: 'l', buckets: [1, 10] }).observe(3);
    const server = await meter.serveMetrics({ port: 0 });
    try {
      expect(server.port).toBeGreaterThan(0);
      const res = await get(server.url);
      expect(res.status).toBe(200);
      expect(res.type).toContain('text/plain');
      const s = samples(res.body);
      expect(s.get('test_requests_total{route="attest"}')).toBe(2);
      expect(s.get('test_plain_total')).toBe(1);
      expect(s.get('test_depth{q="a"}')).toBe(4);
      expect(s.get('test_latency_ms_bucket{le="1"}')).toBe(0);
      expect(s.get('test_latency_ms_bucket{le="10"}')).toBe(1);
      expect(s.get('test_latency_ms_count')).toBe(1);
      expect((await get(server.url.replace('/metrics', '/other'))).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it('prom meter - same name returns the same instrument; incompatible redefinition throws', async () => {
    const meter = createPromMeter();
    const a = meter.counter({ name: 'shared_total', help: 'x', labelNames: ['k'] });
    const b = meter.counter({ name: 'shared_total', help: 'x', labelNames: ['k'] });
    expect(a).toBe(b);
    a.inc({ k: 'v' });
    b.inc({ k: 'v' });
    expect(samples(await meter.metricsText()).get('shared_total{k="v"}')).toBe(2);
    expect(() => meter.gauge({ name: 'shared_total', help: 'x', labelNames: ['k'] })).toThrow(
      MetricConflictError,
    );
    expect(() => meter.counter({ name: 'shared_total', help: 'x', labelNames: ['other'] })).toThrow(
      MetricConflictError,
    );
  });

  it('prom meter - meters are isolated registries; default metrics are opt-in', async () => {
    const a = createPromMeter();
    const b = createPromMeter({ defaultMetrics: true });
    a.counter({ name: 'only_a_total', help: 'x' }).inc();
    expect(await b.metricsText()).not.toContain('only_a_total');
    expect(await b.metricsText()).toContain('process_cpu_user_seconds_total');
    expect(await a.metricsText()).not.toContain('process_cpu_user_seconds_total');
  });

  it('prom meter - noopMeter accepts every call', () => {
    noopMeter.counter({ name: 'x', help: 'x' }).inc({ a: 'b' }, 3);
    noopMeter.gauge({ name: 'x', help: 'x' }).set(1);
    noopMeter.histogram({ name: 'x', help: 'x' }).observe({ a: 'b' }, 1);
  });
});
