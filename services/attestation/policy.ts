/** The attestation policy a shard enforces; every interval is simulated milliseconds. */
export interface AttestationPolicy {
  /** How long a challenge nonce can be used. Must exceed network latency × timeScale. */
  readonly nonceTtlMs: number;
  /** Validity of issued device certificates (Azure Sphere: 24 h). */
  readonly certificateLifetimeMs: number;
  /** Devices running an OS below this security version fail appraisal. */
  readonly minSecurityVersion: number;
  /** Largest accepted difference between the device's clock and the service's. */
  readonly maxClockSkewMs: number;
  /**
   * Requests a device may send after attestation: a burst, refilled at `perHour` per simulated
   * hour (a token bucket per device). An image download is a burst of chunk requests.
   */
  readonly deviceRateLimit: { readonly burst: number; readonly perHour: number };
}

export const DEFAULT_POLICY: AttestationPolicy = {
  nonceTtlMs: 5 * 60_000,
  certificateLifetimeMs: 24 * 3_600_000,
  minSecurityVersion: 3,
  maxClockSkewMs: 5 * 60_000,
  deviceRateLimit: { burst: 600, perHour: 600 },
};
