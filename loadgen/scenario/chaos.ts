/**
 * The `chaos:` section of a scenario: the stack it needs (NATS nodes, shards) and a timeline of
 * faults. Fault times are WALL time from the moment the fleet starts (network faults act on real
 * sockets, and leases count real milliseconds), unlike the rest of a scenario.
 *
 * ```yaml
 * chaos:
 *   natsNodes: 3
 *   shards: 3
 *   faults:
 *     - { at: 20s, for: 15s, partition: { between: [shard-1, nats] } }
 *     - { at: 45s, for: 10s, kill: shard-2 }
 *     - { at: 95s, for: 10s, latency: { between: [devices, nats], ms: 150, jitter: 50 } }
 * ```
 *
 * Endpoints: `devices` (the loadgen's connections), `shards` / `shard-N`, `nats` / `nats-N`. A
 * link fault acts on every link between a member of one side and a member of the other (devices
 * and shards only have links to NATS nodes; NATS nodes to each other).
 */
import { z } from 'zod';
import { describeValue } from './duration.js';
import { durationField, field, FieldError } from './fields.js';
import { parseSize } from './size.js';

export const LINK_FAULT_KINDS = ['partition', 'latency', 'bandwidth', 'loss', 'reset'] as const;
export const PROCESS_FAULT_KINDS = ['kill', 'pause'] as const;
export type LinkFaultKind = (typeof LINK_FAULT_KINDS)[number];
export type ProcessFaultKind = (typeof PROCESS_FAULT_KINDS)[number];

/** Links between `between[0]` and `between[1]`, for a seeded share of their connections. */
export interface LinkSelector {
  readonly between: readonly [readonly string[], readonly string[]];
  /** Share of the connections affected (a cohort drawn once per connection); 1 = all. */
  readonly share: number;
}

export type ChaosAction =
  | ({ readonly kind: 'partition' } & LinkSelector)
  | ({ readonly kind: 'latency'; readonly ms: number; readonly jitterMs: number } & LinkSelector)
  | ({ readonly kind: 'bandwidth'; readonly bytesPerSecond: number } & LinkSelector)
  | ({ readonly kind: 'loss'; readonly rate: number } & LinkSelector)
  | ({ readonly kind: 'reset' } & LinkSelector)
  | { readonly kind: 'kill'; readonly target: string }
  | { readonly kind: 'pause'; readonly target: string };

export interface ChaosFault {
  /** 0-based position in the file (names the fault's seed and its timeline entries). */
  readonly index: number;
  /** Wall ms after the fleet starts. */
  readonly atMs: number;
  /**
   * Wall ms the fault lasts: a killed process restarts after it, a link heals. `null`: until the
   * end of the run (a killed process stays dead; a reset is a one-off).
   */
  readonly forMs: number | null;
  readonly action: ChaosAction;
  /** Human-readable, e.g. `partition shard-1 | nats`. */
  readonly label: string;
}

export interface ChaosConfig {
  readonly natsNodes: number;
  readonly shards: number;
  /** Lease TTL for the shards (wall ms): how long a silent shard keeps its partitions. */
  readonly leaseTtlMs: number;
  readonly faults: readonly ChaosFault[];
}

export const CHAOS_DEFAULTS = { natsNodes: 3, shards: 3, leaseTtlMs: 6000 } as const;

const ENDPOINT = /^(devices|shards|nats|shard-\d{1,2}|nats-\d{1,2})$/;

function parseSide(value: unknown): string[] {
  const list = Array.isArray(value) ? (value as unknown[]) : [value];
  if (list.length === 0) throw new FieldError('a side needs at least one endpoint');
  return list.map((v, i) => {
    if (typeof v !== 'string' || !ENDPOINT.test(v))
      throw new FieldError(
        `expected devices, shards, shard-N, nats or nats-N, got ${describeValue(v)}`,
        Array.isArray(value) ? [i] : [],
      );
    return v;
  });
}

function parseBetween(value: unknown): readonly [string[], string[]] {
  if (!Array.isArray(value) || value.length !== 2)
    throw new FieldError(`expected two sides like [shard-1, nats], got ${describeValue(value)}`);
  const side = (i: 0 | 1): string[] => {
    try {
      return parseSide(value[i]);
    } catch (e) {
      if (e instanceof FieldError) throw new FieldError(e.message, [i, ...e.path]);
      throw e;
    }
  };
  return [side(0), side(1)];
}

function parseTarget(value: unknown): string {
  if (typeof value !== 'string' || !/^(shard|nats)-\d{1,2}$/.test(value))
    throw new FieldError(`expected a process like shard-1 or nats-2, got ${describeValue(value)}`);
  return value;
}

const share = z.number().gt(0).max(1).optional();
const between = field(parseBetween, { required: true });

const faultSchema = z
  .strictObject({
    at: durationField({ required: true }),
    for: durationField({ positive: true }),
    partition: z.strictObject({ between, share }).optional(),
    latency: z
      .strictObject({
        between,
        share,
        ms: z.number().min(0).max(60_000),
        jitter: z.number().min(0).max(60_000).optional(),
      })
      .optional(),
    bandwidth: z
      .strictObject({
        between,
        share,
        bytesPerSecond: field(parseSize, { required: true }),
      })
      .optional(),
    loss: z.strictObject({ between, share, rate: z.number().gt(0).max(1) }).optional(),
    reset: z.strictObject({ between, share }).optional(),
    kill: field(parseTarget).optional(),
    pause: field(parseTarget).optional(),
  })
  .superRefine((f, ctx) => {
    const kinds = [...LINK_FAULT_KINDS, ...PROCESS_FAULT_KINDS].filter((k) => f[k] !== undefined);
    if (kinds.length !== 1)
      ctx.addIssue({
        code: 'custom',
        message: `a fault has exactly one of ${[...LINK_FAULT_KINDS, ...PROCESS_FAULT_KINDS].join(', ')}; got ${kinds.length === 0 ? 'none' : kinds.join(', ')}`,
      });
    if (f.pause !== undefined && f.for === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['for'],
        message: 'a pause needs `for` (how long the process is stopped)',
      });
  });

export const chaosSchema = z.strictObject({
  natsNodes: z.number().int().min(1).max(9).optional(),
  shards: z.number().int().min(1).max(16).optional(),
  leaseTtl: durationField({ positive: true }),
  faults: z.array(faultSchema).optional(),
});

type ChaosInput = z.output<typeof chaosSchema>;

const sideLabel = (side: readonly string[]): string => side.join('+');

/**
 * Resolves the written section; `add` records problems (path relative to the scenario). The
 * endpoint numbers are checked against the stack size here (`shard-3` with 3 shards is wrong).
 */
export function resolveChaos(
  input: ChaosInput | undefined,
  wallDurationMs: number,
  add: (path: (string | number)[], message: string) => void,
): ChaosConfig | null {
  if (input === undefined) return null;
  const natsNodes = input.natsNodes ?? CHAOS_DEFAULTS.natsNodes;
  const shards = input.shards ?? CHAOS_DEFAULTS.shards;
  const leaseTtlMs = input.leaseTtl ?? CHAOS_DEFAULTS.leaseTtlMs;
  const faults: ChaosFault[] = [];
  const exists = (name: string): boolean => {
    const m = /^(shard|nats)-(\d+)$/.exec(name);
    if (m === null) return true;
    return Number(m[2]) < (m[1] === 'shard' ? shards : natsNodes);
  };
  (input.faults ?? []).forEach((f, index) => {
    const at = (...p: (string | number)[]): (string | number)[] => ['chaos', 'faults', index, ...p];
    const atMs = f.at ?? 0;
    const forMs = f.for ?? null;
    if (atMs >= wallDurationMs)
      add(at('at'), `starts after the run ends (the run lasts ${wallDurationMs / 1000} wall seconds)`);
    let action: ChaosAction | null = null;
    let label = '';
    const link = (
      kind: (typeof LINK_FAULT_KINDS)[number],
      sel: { between?: readonly [string[], string[]] | undefined; share?: number | undefined },
    ): LinkSelector | null => {
      const b = sel.between;
      if (b === undefined) return null;
      for (const [i, side] of b.entries())
        for (const e of side)
          if (!exists(e))
            add(
              at(kind, 'between', i),
              `${e} does not exist (the stack has ${shards} shards, ${natsNodes} NATS nodes, numbered from 0)`,
            );
      const flat = [...b[0], ...b[1]];
      if (b[0].some((e) => b[1].includes(e)) || flat.every((e) => !e.startsWith('nats')))
        add(
          at(kind, 'between'),
          'the two sides must differ and one of them must include NATS (every link ends at a NATS node)',
        );
      label = `${kind} ${sideLabel(b[0])} | ${sideLabel(b[1])}${sel.share !== undefined && sel.share < 1 ? ` (${Math.round(sel.share * 100)}%)` : ''}`;
      return { between: [b[0], b[1]], share: sel.share ?? 1 };
    };
    if (f.partition !== undefined) {
      const s = link('partition', f.partition);
      if (s !== null) action = { kind: 'partition', ...s };
    } else if (f.latency !== undefined) {
      const s = link('latency', f.latency);
      if (s !== null) {
        action = { kind: 'latency', ms: f.latency.ms, jitterMs: f.latency.jitter ?? 0, ...s };
        label += ` ${f.latency.ms}±${f.latency.jitter ?? 0} ms`;
      }
    } else if (f.bandwidth !== undefined) {
      const s = link('bandwidth', f.bandwidth);
      const bps = f.bandwidth.bytesPerSecond;
      if (s !== null && bps !== undefined) {
        action = { kind: 'bandwidth', bytesPerSecond: bps, ...s };
        label += ` ${bps} B/s`;
      }
    } else if (f.loss !== undefined) {
      const s = link('loss', f.loss);
      if (s !== null) {
        action = { kind: 'loss', rate: f.loss.rate, ...s };
        label += ` ${Math.round(f.loss.rate * 1000) / 10}%`;
      }
    } else if (f.reset !== undefined) {
      const s = link('reset', f.reset);
      if (s !== null) action = { kind: 'reset', ...s };
    } else {
      const kind = f.kill !== undefined ? 'kill' : 'pause';
      const target = f.kill ?? f.pause;
      if (target !== undefined) {
        if (!exists(target))
          add(
            at(kind),
            `${target} does not exist (the stack has ${shards} shards, ${natsNodes} NATS nodes, numbered from 0)`,
          );
        action = { kind, target };
        label = `${kind} ${target}`;
      }
    }
    if (action !== null) faults.push({ index, atMs, forMs, action, label });
  });
  return { natsNodes, shards, leaseTtlMs, faults };
}

/**
 * Compiles one fault written as in a scenario's `faults` list (`at` may be left out) for a running
 * stack of `shards` shards and `natsNodes` NATS nodes; throws with every problem found.
 */
export function compileChaosFault(input: unknown, stack: { shards: number; natsNodes: number }): ChaosFault {
  const written = typeof input === 'object' && input !== null ? { at: 0, ...input } : input;
  const parsed = chaosSchema.safeParse({ ...stack, faults: [written] });
  const problems: string[] = [];
  if (!parsed.success)
    for (const i of parsed.error.issues)
      problems.push(`${i.path.slice(2).join('.') || 'fault'}: ${i.message}`);
  else {
    const config = resolveChaos(parsed.data, Infinity, (path, message) =>
      problems.push(`${path.slice(3).join('.') || 'fault'}: ${message}`),
    );
    const fault = config?.faults[0];
    if (problems.length === 0 && fault !== undefined) return { ...fault, index: -1 };
  }
  throw new Error(problems.join('; ') || 'not a fault');
}
