/**
 * WatchAlerts' flow control, transport-free: a cursor over one tenant's alert log that writes
 * every alert after its position, in order, as fast as the transport takes them. New alerts wake
 * it; the log itself is the buffer, so a slow reader holds a position, never a queue. Alerts the
 * log dropped (it is capped) before the cursor reached them are reported as `missed`.
 */
import type { Alert, AlertLog } from '../registry/index.js';
import type { TenantId } from '../../proto/codec/index.js';

/** Alerts read from the log per step (between checks of the transport's buffer). */
const READ_BATCH = 256;

export interface AlertCursorOptions {
  /** Start after this seq (`Infinity`: after the newest alert stored now). */
  readonly afterSeq: number;
  readonly type?: string;
  readonly deviceId?: string;
  /** Writes one alert with the alerts dropped before it; `false` when the transport is full. */
  readonly write: (alert: Alert, missed: number) => boolean;
  /** Calls `resume` once, when the transport can take more. */
  readonly onDrain: (resume: () => void) => void;
  /** Runs `fn` later, outside the caller's turn (default `setImmediate`). */
  readonly defer?: (fn: () => void) => void;
}

export class AlertCursor {
  readonly #log: AlertLog;
  readonly #tenantId: TenantId | null;
  readonly #o: AlertCursorOptions;
  readonly #defer: (fn: () => void) => void;
  readonly #unsubscribe: () => void;
  #next: number;
  /** Dropped alerts not yet reported (reported with the next alert that passes the filters). */
  #missed = 0;
  #scheduled = false;
  #draining = false;
  #stopped = false;

  constructor(log: AlertLog, tenantId: TenantId | null, o: AlertCursorOptions) {
    this.#log = log;
    this.#tenantId = tenantId;
    this.#o = o;
    this.#defer = o.defer ?? ((fn) => void setImmediate(fn));
    this.#next = log.ordinalAfter(tenantId, o.afterSeq);
    this.#unsubscribe = log.subscribe(tenantId, () => this.#schedule());
    this.#schedule();
  }

  /** No more writes. Idempotent. */
  stop(): void {
    this.#stopped = true;
    this.#unsubscribe();
  }

  #schedule(): void {
    if (this.#scheduled || this.#draining || this.#stopped) return;
    this.#scheduled = true;
    this.#defer(() => {
      this.#scheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    while (!this.#stopped) {
      const read = this.#log.read(this.#tenantId, this.#next, READ_BATCH);
      this.#missed += read.missed;
      if (read.alerts.length === 0) {
        this.#next = read.next;
        return;
      }
      this.#next = read.next - read.alerts.length;
      for (const a of read.alerts) {
        this.#next++;
        if (this.#o.type !== undefined && a.type !== this.#o.type) continue;
        if (this.#o.deviceId !== undefined && a.deviceId !== this.#o.deviceId) continue;
        const missed = this.#missed;
        this.#missed = 0;
        if (!this.#o.write(a, missed)) {
          this.#draining = true;
          this.#o.onDrain(() => {
            this.#draining = false;
            this.#schedule();
          });
          return;
        }
      }
    }
  }
}
