/**
 * The report's view of a run's hostile traffic (the scenario's `attacks:`, sent by
 * loadgen/hostile): per attack profile, what was attempted, how the service refused it, whether
 * anything got through, and whether the refusals reached the tenant's alerts.
 */

/** How the service treated one attack profile's attempts. */
export interface HostileProfileRow {
  /** An `ATTACK_PROFILES` name. */
  readonly profile: string;
  readonly attempts: number;
  /** Codes a refusal of this profile may carry (the union over its variants). */
  readonly expectedCodes: readonly string[];
  /** Refused attempts by code, expected or not (`NO_DATA`: a read that returned nothing). */
  readonly refused: Readonly<Record<string, number>>;
  /** Of those, refused with a code the attempt's variant does not expect (fails the row). */
  readonly unexpectedRefusals: number;
  /** Flood only: requests accepted within the device's request budget (not an attack success). */
  readonly withinBudget: number;
  /** Attempts the service let through (flood: past the budget). Must be 0. */
  readonly accepted: number;
  /** Attempts that got no answer (timeout, connection lost): neither refused nor accepted. */
  readonly noAnswer: number;
  /** Attempts that could not be made (their attacker could not attest, setup failed). */
  readonly skipped: number;
  /**
   * Refusals of a proven sender (its own session's MAC verified: IDENTITY_MISMATCH, REPLAYED,
   * RATE_LIMITED, SESSION_EXPIRED), which the sender's tenant must be alerted about.
   */
  readonly tenantAlerted: number;
  /** The (sender device, code) pairs of those refusals: each must have an alert in ListAlerts. */
  readonly alertPairs: number;
  /** Of those pairs, the ones the tenant's ListAlerts shows an alert of that type naming that device for. */
  readonly alertPairsFound: number;
  /** Alerts read for those pairs. */
  readonly alertsRead: number;
  /**
   * Refusals those alerts account for: each stands for itself and the refusals folded into it
   * (`folded_since_last`), at most the pair's refusals. The service folds repeats within a
   * second into the next alert, so refusals in a device's last second show in no alert.
   */
  readonly refusalsCovered: number;
  /**
   * Refusals of an unauthenticated sender (BAD_MAC, undecodable bytes): the service alerts no
   * tenant (the admin's view), which no tenant token can read, so the run cannot check them.
   */
  readonly unattributedRefusals: number;
  /** Why the row fails, or what to know about it; empty when there is nothing to say. */
  readonly notes: readonly string[];
  /** See {@link hostileRowPasses}. */
  readonly pass: boolean;
}

/** The run's hostile traffic: one row per profile the scenario attacks with, in `ATTACK_PROFILES` order. */
export interface HostileSummary {
  readonly profiles: readonly HostileProfileRow[];
  /** Every row passes. */
  readonly pass: boolean;
}

/**
 * A profile passes when something was attempted and refused, nothing was accepted, no attempt
 * was skipped or refused with an unexpected code, and for every (sender, code) pair of a proven
 * sender's refusals the tenant's alerts show one. Attempts without an answer are reported but
 * do not fail the row.
 */
export function hostileRowPasses(
  row: Omit<HostileProfileRow, 'pass' | 'notes' | 'expectedCodes' | 'refused'> & {
    readonly refused: Readonly<Record<string, number>>;
  },
): boolean {
  const refused = Object.values(row.refused).reduce((sum, n) => sum + n, 0);
  return (
    row.attempts > 0 &&
    refused - row.unexpectedRefusals > 0 &&
    row.accepted === 0 &&
    row.unexpectedRefusals === 0 &&
    row.skipped === 0 &&
    row.alertPairsFound >= row.alertPairs
  );
}
