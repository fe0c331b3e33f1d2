import { describe, expect, it } from 'vitest';
import { AlertCursor } from '../../../services/operator-api/alert-watch.js';
import { AlertLog } from '../../../services/registry/index.js';
import type { Alert } from '../../../services/registry/index.js';
import { parseTenantId } from '../../../proto/codec/index.js';
import type { TenantId } from '../../../proto/codec/index.js';

const TA = parseTenantId('t-000000000000000a') as TenantId;
const TB = parseTenantId('t-000000000000000b') as TenantId;

let seq = 0;
function alert(tenantId: TenantId | null, type = 'BAD_MAC', deviceId = 'd1'): Alert {
  seq += 2;
  return {
    seq,
    id: `a-${seq}`,
    tenantId,
    type,
    severity: 'high',
    deviceId,
    atMs: seq,
    message: '',
    evidence: {},
  };
}

/** A cursor whose deferred steps run when `flush` is called, writing into `got`. */
function cursor(log: AlertLog, o: { afterSeq: number; type?: string; deviceId?: string; room?: number }) {
  const queued: (() => void)[] = [];
  const got: { id: string; missed: number }[] = [];
  let room = o.room ?? Infinity;
  let drain: (() => void) | null = null;
  const c = new AlertCursor(log, TA, {
    afterSeq: o.afterSeq,
    ...(o.type !== undefined ? { type: o.type } : {}),
    ...(o.deviceId !== undefined ? { deviceId: o.deviceId } : {}),
    write: (a, missed) => {
      got.push({ id: a.id, missed });
      return --room > 0;
    },
    onDrain: (resume) => (drain = resume),
    defer: (fn) => queued.push(fn),
  });
  const flush = (): void => {
    while (queued.length > 0) queued.shift()?.();
  };
  const makeRoom = (n: number): void => {
    room = n;
    const d = drain;
    drain = null;
    d?.();
  };
  return { c, got, flush, makeRoom, deferred: () => queued.length };
}

describe('alert watch cursor', () => {
  it('alert watch - backlog after a seq, then live alerts of its tenant only, in order, nothing twice', () => {
    const log = new AlertLog();
    const a1 = alert(TA);
    const a2 = alert(TA);
    log.add(a1);
    log.add(a2);
    const w = cursor(log, { afterSeq: a1.seq });
    expect(w.got).toEqual([]); // nothing is written in the caller's turn
    w.flush();
    expect(w.got.map((g) => g.id)).toEqual([a2.id]);
    const b = alert(TB);
    log.add(b);
    const a3 = alert(TA);
    log.add(a3);
    w.flush();
    expect(w.got.map((g) => g.id)).toEqual([a2.id, a3.id]);
    w.c.stop();
    log.add(alert(TA));
    w.flush();
    expect(w.got).toHaveLength(2);
  });

  it('alert watch - only new (Infinity) skips what is stored; filters by type and device', () => {
    const log = new AlertLog();
    log.add(alert(TA));
    const w = cursor(log, { afterSeq: Infinity, type: 'REPLAYED', deviceId: 'd2' });
    w.flush();
    expect(w.got).toEqual([]);
    log.add(alert(TA, 'REPLAYED', 'd1'));
    const hit = alert(TA, 'REPLAYED', 'd2');
    log.add(hit);
    log.add(alert(TA, 'BAD_MAC', 'd2'));
    w.flush();
    expect(w.got.map((g) => g.id)).toEqual([hit.id]);
  });

  it('alert watch - a full transport pauses the cursor until it drains; many alerts wake it once', () => {
    const log = new AlertLog();
    const w = cursor(log, { afterSeq: 0, room: 2 });
    const all = Array.from({ length: 5 }, () => alert(TA));
    for (const a of all) log.add(a);
    expect(w.deferred()).toBe(1);
    w.flush();
    expect(w.got.map((g) => g.id)).toEqual(all.slice(0, 2).map((a) => a.id));
    log.add(alert(TA)); // while draining: no extra step is scheduled
    expect(w.deferred()).toBe(0);
    w.makeRoom(100);
    w.flush();
    expect(w.got).toHaveLength(6);
    expect(new Set(w.got.map((g) => g.id)).size).toBe(6);
  });

  it('alert watch - alerts dropped from the capped log before the cursor reached them are reported as missed', () => {
    const log = new AlertLog(3);
    const w = cursor(log, { afterSeq: 0, room: 1 });
    const first = alert(TA);
    log.add(first);
    w.flush(); // writes the first alert, then the transport is full
    for (let i = 0; i < 6; i++) log.add(alert(TA));
    w.makeRoom(100);
    w.flush();
    // 7 alerts, 3 kept: the cursor was at ordinal 2; ordinals 2..4 were dropped.
    expect(w.got[0]).toEqual({ id: first.id, missed: 0 });
    expect(w.got[1]?.missed).toBe(3);
    expect(w.got.slice(2).every((g) => g.missed === 0)).toBe(true);
    expect(w.got).toHaveLength(4);
  });
});
