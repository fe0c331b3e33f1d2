/**
 * What each attack profile tries, and with which answer the service must refuse it: the
 * variants of every profile, their contracts, and the deterministic plan of a run's attempts
 * (when, which variant, which operation, which attacker and victim), all from the scenario and
 * its seed. Pure: no I/O, no clock.
 */
import { createRng } from '../../actors/runtime/index.js';
import type { DeviceOp } from '../../proto/codec/index.js';
import { ATTACK_PROFILES, attemptAtMs } from '../scenario/index.js';
import type { AttackProfile, AttacksConfig } from '../scenario/index.js';

/** The refusal a read that returns nothing stands for (a tenant listing another tenant's alerts). */
export const NO_DATA = 'NO_DATA';

/** How each profile varies its attempts; attempts take the variants in turn. */
export const ATTACK_VARIANTS = {
  impersonate: ['foreign-session', 'made-up-session', 'wrong-key'],
  replay: ['immediate', 'stale'],
  flood: ['over-budget'],
  malformed: ['garbage', 'truncated', 'wrong-type', 'unsealed', 'oversize'],
  tenantCrossing: ['read', 'claim', 'assign', 'deploy', 'alerts', 'admin-call', 'forged-token'],
} as const satisfies Record<AttackProfile, readonly string[]>;

/** One variant of one profile. */
export type AttackVariant = (typeof ATTACK_VARIANTS)[AttackProfile][number];

/** What a variant does, and the codes the service must refuse it with. */
export interface VariantContract {
  readonly expected: readonly string[];
  readonly what: string;
}

/** Every variant's contract. */
export const VARIANT_CONTRACTS: Readonly<Record<AttackVariant, VariantContract>> = {
  'foreign-session': {
    expected: ['IDENTITY_MISMATCH'],
    what: "a device's own valid session used for a request naming another device",
  },
  'made-up-session': {
    expected: ['BAD_MAC'],
    what: 'a request naming another device, sealed with a session ID and key made up',
  },
  'wrong-key': {
    expected: ['BAD_MAC'],
    what: "the attacker's real session ID on a request naming another device, MAC under a guessed key",
  },
  immediate: { expected: ['REPLAYED'], what: 'a sealed request sent again right after it was answered' },
  stale: { expected: ['REPLAYED'], what: 'the first sealed request of the session sent again' },
  'over-budget': { expected: ['RATE_LIMITED'], what: 'one device sending faster than its request budget' },
  garbage: { expected: ['MALFORMED_INPUT'], what: 'bytes that are not a protobuf message' },
  truncated: { expected: ['MALFORMED_INPUT'], what: 'a sealed request cut short' },
  'wrong-type': {
    expected: ['MALFORMED_INPUT'],
    what: 'a sealed request whose body carries device_id as a number (wrong wire type)',
  },
  unsealed: { expected: ['MALFORMED_INPUT'], what: 'a request body without its session framing' },
  oversize: { expected: ['PAYLOAD_TOO_LARGE'], what: "a message over the subject's size limit" },
  read: { expected: ['NOT_FOUND'], what: "GetDevice of another tenant's device" },
  claim: { expected: ['ALREADY_CLAIMED'], what: "ClaimDevices of another tenant's device" },
  assign: {
    expected: ['NOT_FOUND'],
    what: "AssignDevices of another tenant's device to a group of the intruder (to deploy to it)",
  },
  deploy: {
    expected: ['NOT_FOUND'],
    what: "CreateDeployment of the intruder's image to another tenant's device group",
  },
  alerts: { expected: [NO_DATA], what: "ListAlerts for another tenant's device, and unfiltered" },
  'admin-call': {
    expected: ['FORBIDDEN'],
    what: 'RegisterEndorsements (a service admin call) with a tenant token',
  },
  'forged-token': { expected: ['UNAUTHENTICATED'], what: 'GetDevice with a made-up bearer token' },
};

/** Codes a profile's refusals may carry: the union over its variants, in variant order. */
export function expectedCodesOf(profile: AttackProfile): string[] {
  const codes = ATTACK_VARIANTS[profile].flatMap((v) => VARIANT_CONTRACTS[v].expected);
  return [...new Set(codes)];
}

/** Device operations the sealed attacks use (each answers, so every attempt gets a verdict). */
const SEALED_OPS = ['update-check', 'error-report', 'update-report'] as const;

/** The device operations an attack sends on (heartbeats have no answer to judge). */
export type AttackOp = Exclude<DeviceOp, 'heartbeat'>;

/** Subjects each malformed variant is sent on, in turn. */
const MALFORMED_OPS: Readonly<Record<(typeof ATTACK_VARIANTS)['malformed'][number], readonly AttackOp[]>> = {
  garbage: ['challenge', 'attest', 'update-check', 'error-report'],
  truncated: SEALED_OPS,
  'wrong-type': SEALED_OPS,
  unsealed: SEALED_OPS,
  oversize: ['update-check', 'attest', 'challenge'],
};

/** One attempt of the plan. */
export interface PlannedAttempt {
  readonly profile: AttackProfile;
  /** 0-based position within its profile. */
  readonly seq: number;
  /** Simulated ms after the run starts. */
  readonly atMs: number;
  readonly variant: AttackVariant;
  /** The device subject it is sent on; `null` for operator API attempts (tenantCrossing). */
  readonly op: AttackOp | null;
  /** Which of the profile's attacker devices sends it (flood: each device in turn; else 0). */
  readonly attacker: number;
  /** Index into the victim list (drawn from the seed). */
  readonly victim: number;
  /** Seed of the attempt's random bytes (made-up keys, garbage). */
  readonly seed: string;
}

/**
 * The plan of every attempt, ordered by time (then profile order, then sequence). Variants are
 * taken in turn, so each appears `attempts / variants` times (±1); operations in turn per
 * variant; victims are drawn from `<seed>/hostile/<profile>`.
 * @param victims how many victim devices the run offers (at least 1)
 */
export function planAttacks(config: AttacksConfig, seed: string, victims: number): PlannedAttempt[] {
  if (!Number.isSafeInteger(victims) || victims < 1)
    throw new RangeError('planAttacks needs at least one victim');
  const out: PlannedAttempt[] = [];
  for (const spec of config.profiles) {
    const rng = createRng(seed).fork(`hostile/${spec.profile}`);
    const variants: readonly AttackVariant[] = ATTACK_VARIANTS[spec.profile];
    for (let seq = 0; seq < spec.attempts; seq++) {
      const variant = variants[seq % variants.length] as AttackVariant;
      const turn = Math.floor(seq / variants.length);
      out.push({
        profile: spec.profile,
        seq,
        atMs: attemptAtMs(spec, seq),
        variant,
        op: opOf(spec.profile, variant, turn),
        attacker: spec.profile === 'flood' ? seq % spec.devices : 0,
        victim: rng.int(victims),
        seed: `${seed}/hostile/${spec.profile}/${seq}`,
      });
    }
  }
  const order = (p: AttackProfile): number => ATTACK_PROFILES.indexOf(p);
  return out.sort((a, b) => a.atMs - b.atMs || order(a.profile) - order(b.profile) || a.seq - b.seq);
}

function opOf(profile: AttackProfile, variant: AttackVariant, turn: number): AttackOp | null {
  switch (profile) {
    case 'impersonate':
      return SEALED_OPS[turn % SEALED_OPS.length] ?? 'update-check';
    case 'replay':
    case 'flood':
      return 'update-check';
    case 'malformed': {
      const ops = MALFORMED_OPS[variant as keyof typeof MALFORMED_OPS];
      return ops[turn % ops.length] ?? 'update-check';
    }
    case 'tenantCrossing':
      return null;
    default:
      return profile satisfies never;
  }
}
