import type { InstalledImage, UpdateAgentMessage, UpdateOffer, UpdateOutcome } from './messages.js';
import { UPDATE_CODES } from './messages.js';

/**
 * The device update agent (Mender-style A/B on an Azure Sphere-style device), as pure logic.
 *
 * Each component (the OS, and each application) has an active image and the previous one (the
 * inactive slot: last known good). An offer is downloaded in chunks (resumable: an interrupted
 * download continues from the last chunk received), verified (TUF metadata and hashes, in the
 * shell), installed to the inactive slot, then the device reboots into it (the OS) or restarts
 * the app, and a health check decides: commit (the new image becomes active, the old one
 * previous) or roll back (the previous image stays active). A boot that fails falls back to the
 * previous slot by itself, as a bootloader does.
 *
 * Rules: OS offers before application offers; an OS offer below the device's anti-rollback
 * security version (its blown e-fuses) is refused; committing an OS raises that version; an
 * application may defer OS updates, at most 24 h after its first request; one offer at a time.
 * Every step the service should know about becomes a `report` effect with a report ID that is
 * stable per (offer, outcome, attempt), so the service can deduplicate.
 */

/** Knobs in simulated milliseconds, validated by the scenario compiler. */
export interface UpdateAgentBehaviour {
  /** Update checks: at boot, then this often (Azure Sphere: 20 h). */
  readonly checkEveryMs: number;
  /** Wait before resuming an interrupted download. */
  readonly resumeAfterMs: number;
  /** Longest OS deferral an application can obtain (Azure Sphere: 24 h). */
  readonly maxDeferralMs: number;
}

export const DEFAULT_UPDATE_BEHAVIOUR: UpdateAgentBehaviour = {
  checkEveryMs: 20 * 3_600_000,
  resumeAfterMs: 60_000,
  maxDeferralMs: 24 * 3_600_000,
};

export type UpdatePhase =
  | 'idle'
  | 'checking'
  | 'downloading'
  | 'interrupted'
  | 'verifying'
  | 'installing'
  | 'rebooting'
  | 'health-check'
  | 'deferred';

/** One component's two slots. */
export interface ComponentSlots {
  readonly active: InstalledImage;
  /** The last known good image; `null` until the first update commits. */
  readonly previous: InstalledImage | null;
  /** The offer that installed `active`; `null` for the factory image. */
  readonly installedBy: string | null;
}

export interface UpdateAgentState {
  readonly phase: UpdatePhase;
  /** By component key: `os` or `app:<name>`. */
  readonly components: Readonly<Record<string, ComponentSlots>>;
  /** Highest OS security version committed (the e-fuse count); older OS images are refused. */
  readonly antiRollbackVersion: number;
  /** Offers waiting, OS first. */
  readonly queue: readonly UpdateOffer[];
  /** The offer in progress; only valid outside `idle`, `checking` and `deferred`. */
  readonly current: {
    readonly offer: UpdateOffer;
    readonly nextChunk: number;
    readonly attempt: number;
  } | null;
  /** When the first OS deferral was asked; `null` when none is running. */
  readonly deferralStartedMs: number | null;
  readonly deferredUntilMs: number | null;
  /** Attempts per offer ID, so report IDs stay unique across retries. */
  readonly attempts: Readonly<Record<string, number>>;
  /**
   * The one check timer that counts: each scheduled check carries the number it was given, and
   * only the latest one runs, so boots and failed checks never add parallel check schedules.
   */
  readonly checkTimer: number;
}

export type UpdateAgentEffect =
  | { readonly kind: 'request-offers' }
  | {
      readonly kind: 'fetch-chunk';
      readonly offerId: string;
      readonly index: number;
      readonly offset: number;
      readonly length: number;
    }
  | { readonly kind: 'verify'; readonly offer: UpdateOffer }
  | { readonly kind: 'install'; readonly offer: UpdateOffer }
  | { readonly kind: 'reboot'; readonly offer: UpdateOffer }
  | { readonly kind: 'health-check'; readonly offer: UpdateOffer }
  | {
      readonly kind: 'report';
      readonly offerId: string;
      readonly reportId: string;
      readonly outcome: UpdateOutcome;
      /** An UpdateCode, or the verifier's code (TUF_*) for a failed verification. */
      readonly code?: string;
    }
  | { readonly kind: 'schedule'; readonly delayMs: number; readonly msg: UpdateAgentMessage };

/** The component key an image belongs to. */
export function componentKey(image: Pick<InstalledImage, 'kind' | 'name'>): string {
  return image.kind === 'os' ? 'os' : `app:${image.name}`;
}

export function initialUpdateAgentState(installed: readonly InstalledImage[]): UpdateAgentState {
  const components: Record<string, ComponentSlots> = {};
  for (const image of installed)
    components[componentKey(image)] = { active: image, previous: null, installedBy: null };
  const os = installed.find((i) => i.kind === 'os');
  return {
    phase: 'idle',
    components,
    antiRollbackVersion: os?.securityVersion ?? 0,
    queue: [],
    current: null,
    deferralStartedMs: null,
    deferredUntilMs: null,
    attempts: {},
    checkTimer: 0,
  };
}

/** Schedules the next update check in `delayMs`, replacing any check scheduled before. */
function scheduleCheck(s: UpdateAgentState, delayMs: number, effects: UpdateAgentEffect[]): UpdateAgentState {
  const timer = s.checkTimer + 1;
  effects.push({ kind: 'schedule', delayMs, msg: { type: 'update.check-due', timer } });
  return { ...s, checkTimer: timer };
}

type Step = [UpdateAgentState, UpdateAgentEffect[]];

function chunkCount(o: UpdateOffer): number {
  return Math.max(1, Math.ceil(o.length / o.chunkSize));
}

function fetchChunk(o: UpdateOffer, index: number): UpdateAgentEffect {
  const offset = index * o.chunkSize;
  return {
    kind: 'fetch-chunk',
    offerId: o.offerId,
    index,
    offset,
    length: Math.min(o.chunkSize, o.length - offset),
  };
}

function report(
  s: UpdateAgentState,
  offerId: string,
  outcome: UpdateOutcome,
  code?: string,
): UpdateAgentEffect {
  const attempt = s.attempts[offerId] ?? 1;
  return {
    kind: 'report',
    offerId,
    reportId: `${offerId}/${attempt}/${outcome}`,
    outcome,
    ...(code !== undefined ? { code } : {}),
  };
}

/** Starts the next queued offer, or goes idle and schedules the next check. */
function next(s: UpdateAgentState, now: number, b: UpdateAgentBehaviour, effects: UpdateAgentEffect[]): Step {
  const [offer, ...rest] = s.queue;
  if (offer === undefined) {
    return [
      scheduleCheck({ ...s, phase: 'idle', current: null, queue: [] }, b.checkEveryMs, effects),
      effects,
    ];
  }
  if (offer.kind === 'os' && s.deferredUntilMs !== null && now < s.deferredUntilMs) {
    effects.push({
      kind: 'schedule',
      delayMs: s.deferredUntilMs - now,
      msg: { type: 'update.defer-elapsed' },
    });
    return [{ ...s, phase: 'deferred', current: null }, effects];
  }
  const attempt = (s.attempts[offer.offerId] ?? 0) + 1;
  const started: UpdateAgentState = {
    ...s,
    phase: 'downloading',
    queue: rest,
    current: { offer, nextChunk: 0, attempt },
    attempts: { ...s.attempts, [offer.offerId]: attempt },
  };
  effects.push(report(started, offer.offerId, 'downloading'), fetchChunk(offer, 0));
  return [started, effects];
}

/** Ends the current offer with `outcome` and moves on. */
function finish(
  s: UpdateAgentState,
  now: number,
  b: UpdateAgentBehaviour,
  outcome: UpdateOutcome,
  code?: string,
  patch: Partial<UpdateAgentState> = {},
): Step {
  const offerId = s.current?.offer.offerId ?? '';
  return next({ ...s, ...patch, current: null }, now, b, [report(s, offerId, outcome, code)]);
}

/** Whether `msg` is a result for the offer in progress in the expected phase. */
function isCurrent(s: UpdateAgentState, offerId: string, phase: UpdatePhase): boolean {
  return s.phase === phase && s.current?.offer.offerId === offerId;
}

/**
 * The update agent's transition: `(state, message, now) → [state, effects]`. Results that do not
 * belong to the offer in progress (late, duplicated, stale) leave the state unchanged.
 */
export function updateTransition(
  s: UpdateAgentState,
  msg: UpdateAgentMessage,
  now: number,
  b: UpdateAgentBehaviour = DEFAULT_UPDATE_BEHAVIOUR,
): Step {
  switch (msg.type) {
    case 'update.check-due':
      if (s.phase !== 'idle') return [s, []];
      // A timer replaced by a later schedule is stale; an unscheduled check (at boot) always runs.
      if (msg.timer !== undefined && msg.timer !== s.checkTimer) return [s, []];
      return [{ ...s, phase: 'checking' }, [{ kind: 'request-offers' }]];
    case 'update.check-failed': {
      if (s.phase !== 'checking') return [s, []];
      const effects: UpdateAgentEffect[] = [];
      return [scheduleCheck({ ...s, phase: 'idle' }, msg.retryInMs, effects), effects];
    }
    case 'update.offers': {
      if (s.phase !== 'checking') return [s, []];
      const effects: UpdateAgentEffect[] = [];
      const wanted: UpdateOffer[] = [];
      for (const o of msg.offers) {
        const have = s.components[componentKey(o)]?.active;
        if (have !== undefined && have.version === o.version) {
          // Nothing to install, but the deployment must count this device (as ADU counts a
          // device already on the target version as in compliance).
          effects.push(report(s, o.offerId, 'succeeded', UPDATE_CODES.ALREADY_INSTALLED));
          continue;
        }
        if (o.kind === 'os' && o.securityVersion < s.antiRollbackVersion) {
          effects.push(report(s, o.offerId, 'failed', UPDATE_CODES.SECURITY_VERSION_ROLLBACK));
          continue;
        }
        if (wanted.some((w) => w.offerId === o.offerId)) continue;
        wanted.push(o);
      }
      // OS first (application images may need the new OS), then applications in offer order.
      wanted.sort((x, y) => (x.kind === y.kind ? 0 : x.kind === 'os' ? -1 : 1));
      return next({ ...s, queue: wanted }, now, b, effects);
    }
    case 'update.chunk-received': {
      const c = s.current;
      if (!isCurrent(s, msg.offerId, 'downloading') || c === null || msg.index !== c.nextChunk)
        return [s, []];
      const nextChunk = c.nextChunk + 1;
      if (nextChunk >= chunkCount(c.offer)) {
        return [
          { ...s, phase: 'verifying', current: { ...c, nextChunk } },
          [{ kind: 'verify', offer: c.offer }],
        ];
      }
      return [{ ...s, current: { ...c, nextChunk } }, [fetchChunk(c.offer, nextChunk)]];
    }
    case 'update.download-interrupted':
      if (!isCurrent(s, msg.offerId, 'downloading')) return [s, []];
      // Resumable: keep the chunks received, continue later from the next one.
      return [
        { ...s, phase: 'interrupted' },
        [
          {
            kind: 'schedule',
            delayMs: b.resumeAfterMs,
            msg: { type: 'update.resume-due', offerId: msg.offerId },
          },
        ],
      ];
    case 'update.resume-due': {
      const c = s.current;
      if (!isCurrent(s, msg.offerId, 'interrupted') || c === null) return [s, []];
      return [{ ...s, phase: 'downloading' }, [fetchChunk(c.offer, c.nextChunk)]];
    }
    case 'update.verified': {
      const c = s.current;
      if (!isCurrent(s, msg.offerId, 'verifying') || c === null) return [s, []];
      if (!msg.ok) return finish(s, now, b, 'failed', msg.code ?? UPDATE_CODES.VERIFY_FAILED);
      return [
        { ...s, phase: 'installing' },
        [report(s, c.offer.offerId, 'installing'), { kind: 'install', offer: c.offer }],
      ];
    }
    case 'update.installed': {
      const c = s.current;
      if (!isCurrent(s, msg.offerId, 'installing') || c === null) return [s, []];
      if (!msg.ok) return finish(s, now, b, 'failed', UPDATE_CODES.INSTALL_FAILED);
      return [{ ...s, phase: 'rebooting' }, [{ kind: 'reboot', offer: c.offer }]];
    }
    case 'update.booted': {
      const c = s.current;
      if (!isCurrent(s, msg.offerId, 'rebooting') || c === null) return [s, []];
      // A failed boot falls back to the active (last known good) slot: nothing was committed.
      if (!msg.ok) return finish(s, now, b, 'rolled-back', UPDATE_CODES.BOOT_FAILED);
      return [{ ...s, phase: 'health-check' }, [{ kind: 'health-check', offer: c.offer }]];
    }
    case 'update.health': {
      const c = s.current;
      if (!isCurrent(s, msg.offerId, 'health-check') || c === null) return [s, []];
      if (!msg.ok) return finish(s, now, b, 'rolled-back', UPDATE_CODES.HEALTH_CHECK_FAILED);
      const key = componentKey(c.offer);
      const old = s.components[key]?.active ?? null;
      const image: InstalledImage = {
        kind: c.offer.kind,
        name: c.offer.name,
        version: c.offer.version,
        securityVersion: c.offer.securityVersion,
      };
      return finish(s, now, b, 'succeeded', undefined, {
        components: {
          ...s.components,
          [key]: { active: image, previous: old, installedBy: c.offer.offerId },
        },
        antiRollbackVersion:
          c.offer.kind === 'os'
            ? Math.max(s.antiRollbackVersion, c.offer.securityVersion)
            : s.antiRollbackVersion,
      });
    }
    case 'update.defer-requested': {
      const started = s.deferralStartedMs ?? now;
      const until = Math.min(msg.untilMs, started + b.maxDeferralMs);
      if (until <= now) return [s, []];
      const deferred: UpdateAgentState = { ...s, deferralStartedMs: started, deferredUntilMs: until };
      // An OS update that has not reached installation yet waits; one already installing goes on.
      const c = s.current;
      if (c !== null && c.offer.kind === 'os' && (s.phase === 'downloading' || s.phase === 'interrupted')) {
        return [
          { ...deferred, phase: 'deferred', current: null, queue: [c.offer, ...s.queue] },
          [{ kind: 'schedule', delayMs: until - now, msg: { type: 'update.defer-elapsed' } }],
        ];
      }
      return [deferred, []];
    }
    case 'update.defer-elapsed':
      if (s.phase !== 'deferred' || (s.deferredUntilMs !== null && now < s.deferredUntilMs)) return [s, []];
      return next({ ...s, deferredUntilMs: null, deferralStartedMs: null }, now, b, []);
    case 'update.rollback-ordered': {
      // Only a device between updates rolls back; a busy one is told again by the service later.
      if (s.phase !== 'idle' && s.phase !== 'checking') return [s, []];
      const entry = Object.entries(s.components).find(
        ([, c]) => c.installedBy === msg.offerId && c.previous !== null,
      );
      if (entry === undefined) return [s, []];
      const [key, slots] = entry;
      if (slots.previous === null) return [s, []];
      if (slots.previous.kind === 'os' && slots.previous.securityVersion < s.antiRollbackVersion) {
        // The e-fuses are blown: the older OS can never boot again.
        return [s, [report(s, msg.offerId, 'failed', UPDATE_CODES.SECURITY_VERSION_ROLLBACK)]];
      }
      const reverted: ComponentSlots = { active: slots.previous, previous: slots.active, installedBy: null };
      return [
        { ...s, components: { ...s.components, [key]: reverted } },
        [report(s, msg.offerId, 'rolled-back', UPDATE_CODES.ROLLBACK_ORDERED)],
      ];
    }
    default:
      return msg satisfies never;
  }
}
