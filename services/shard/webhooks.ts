/**
 * Alert webhooks: each tenant may name a URL its alerts are POSTed to, as JSON, signed like
 * `x-sphere-signature: t=<unix ms>,v1=<hex of HMAC-SHA256(secret, "<t>.<body>")>` so the receiver
 * can check where it came from and refuse an old one replayed. One shard delivers each alert (the
 * host picks it); deliveries are retried with backoff while that shard lives.
 */
import { createHmac } from 'node:crypto';
import type { Alert } from '../registry/index.js';
import type { ServiceMetrics } from '../metrics/index.js';
import type { TenantId } from '../../proto/codec/index.js';

export const SIGNATURE_HEADER = 'x-sphere-signature';
/** Most alerts waiting per tenant; beyond, the oldest waiting is dropped (and counted). */
export const MAX_QUEUED_PER_TENANT = 10_000;
/** Longest URL accepted. */
export const MAX_WEBHOOK_URL = 2048;

/** Why a URL cannot be a webhook, or `null` if it can. */
export function webhookUrlProblem(url: string): string | null {
  if (url.length > MAX_WEBHOOK_URL) return `url is longer than ${MAX_WEBHOOK_URL} characters`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'url is not a valid URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'url must be http:// or https://';
  if (u.username !== '' || u.password !== '')
    return 'url must not carry credentials; check the signature instead';
  return null;
}

/** The signature header's value for `body` sent at `atMs` (what a receiver recomputes). */
export function signWebhook(secretHex: string, atMs: number, body: string): string {
  const mac = createHmac('sha256', Buffer.from(secretHex, 'hex')).update(`${atMs}.${body}`).digest('hex');
  return `t=${atMs},v1=${mac}`;
}

/** The JSON body of one alert. */
export function webhookBody(a: Alert): string {
  return JSON.stringify({
    id: a.id,
    seq: a.seq,
    tenant_id: a.tenantId,
    type: a.type,
    severity: a.severity,
    device_id: a.deviceId,
    at_ms: a.atMs,
    message: a.message,
    evidence: a.evidence,
  });
}

interface Target {
  readonly url: string;
  readonly secret: string;
  readonly queue: Alert[];
  sending: boolean;
}

export interface WebhookOptions {
  readonly metrics: ServiceMetrics;
  /** Tries per alert before it is given up (default 8). */
  readonly attempts?: number;
  /** First wait between tries, doubled each time up to 30 s (default 500 ms). */
  readonly backoffMs?: number;
  /** Per try (default 5 s). */
  readonly timeoutMs?: number;
  /** Wall clock in ms for the signature's `t` (injected for tests). */
  readonly now?: () => number;
}

/** Per-tenant webhook targets and their delivery queues (one POST in flight per tenant, in order). */
export class AlertWebhooks {
  readonly #targets = new Map<TenantId, Target>();
  readonly #o: Required<WebhookOptions>;
  #closed = false;

  constructor(o: WebhookOptions) {
    this.#o = {
      attempts: 8,
      backoffMs: 500,
      timeoutMs: 5000,
      now: () => Date.now(),
      ...o,
    };
  }

  /** Sets (or with `url` empty, removes) a tenant's webhook; alerts waiting for the old one are dropped. */
  configure(tenantId: TenantId, url: string, secret: string): void {
    if (url === '') this.#targets.delete(tenantId);
    else this.#targets.set(tenantId, { url, secret, queue: [], sending: false });
  }

  has(tenantId: TenantId): boolean {
    return this.#targets.has(tenantId);
  }

  /** Queues `a` for its tenant's webhook, if it has one. */
  deliver(a: Alert): void {
    if (this.#closed || a.tenantId === null) return;
    const t = this.#targets.get(a.tenantId);
    if (t === undefined) return;
    t.queue.push(a);
    if (t.queue.length > MAX_QUEUED_PER_TENANT) {
      t.queue.shift();
      this.#o.metrics.webhookDeliveries.inc({ result: 'dropped' });
    }
    if (!t.sending) void this.#drain(a.tenantId, t);
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#targets.values()) t.queue.length = 0;
  }

  async #drain(tenantId: TenantId, t: Target): Promise<void> {
    t.sending = true;
    while (!this.#closed && t.queue.length > 0 && this.#targets.get(tenantId) === t) {
      const a = t.queue[0] as Alert;
      const body = webhookBody(a);
      let delivered = false;
      for (let attempt = 1; attempt <= this.#o.attempts && !this.#closed; attempt++) {
        if (await this.#post(t, body)) {
          delivered = true;
          break;
        }
        if (attempt < this.#o.attempts) {
          this.#o.metrics.webhookDeliveries.inc({ result: 'retry' });
          const wait = Math.min(30_000, this.#o.backoffMs * 2 ** (attempt - 1));
          await new Promise((r) => setTimeout(r, wait).unref());
        }
      }
      this.#o.metrics.webhookDeliveries.inc({ result: delivered ? 'ok' : 'failed' });
      if (t.queue[0] === a) t.queue.shift();
    }
    t.sending = false;
  }

  async #post(t: Target, body: string): Promise<boolean> {
    try {
      const res = await fetch(t.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [SIGNATURE_HEADER]: signWebhook(t.secret, this.#o.now(), body),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#o.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.status >= 200 && res.status < 300;
    } catch {
      return false;
    }
  }
}
