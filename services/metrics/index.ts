import type { Meter } from '../../actors/runtime/index.js';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Every metric a security-service shard exports, defined in one place. Names start with
 * `sphere_`; label values are bounded sets (codes, ops, states), never device IDs.
 */
export function createServiceMetrics(meter: Meter) {
  return {
    attestations: meter.counter({
      name: 'sphere_attestations_total',
      help: 'Attestation requests answered, by result (ok|rejected) and reason code (OK on success).',
      labelNames: ['result', 'reason'],
    }),
    attestationLatency: meter.histogram({
      name: 'sphere_attestation_duration_seconds',
      help: 'Time from receiving evidence to replying, inside the shard (queueing, checks, crypto pool).',
      labelNames: ['result'],
      buckets: LATENCY_BUCKETS,
    }),
    challenges: meter.counter({
      name: 'sphere_challenges_total',
      help: 'Challenge requests answered, by result (ok|rejected) and reason code.',
      labelNames: ['result', 'reason'],
    }),
    certificatesIssued: meter.counter({
      name: 'sphere_certificates_issued_total',
      help: 'Device certificates issued, by kind (update|client).',
      labelNames: ['kind'],
    }),
    heartbeats: meter.counter({
      name: 'sphere_heartbeats_total',
      help: 'Heartbeats received, by result (ok|rejected) and reason code.',
      labelNames: ['result', 'reason'],
    }),
    devicesByState: meter.gauge({
      name: 'sphere_devices',
      help: 'Endorsed devices by state (UNCLAIMED, CLAIMED, ATTESTED, FAILED, EXPIRED).',
      labelNames: ['state'],
    }),
    devicesByOs: meter.gauge({
      name: 'sphere_devices_by_os_version',
      help: 'Devices by the OS version of their last attestation.',
      labelNames: ['os_version'],
    }),
    devicesByApp: meter.gauge({
      name: 'sphere_devices_by_app_version',
      help: 'Devices by application and version, as reported in their last update check.',
      labelNames: ['app', 'version'],
    }),
    alerts: meter.counter({
      name: 'sphere_alerts_total',
      help: "Alerts raised, by type and severity: every refusal worth an alert on the shard that refused it (type: the reject code; counted even when folded into the device's previous alert), and every threat detection once, on the shard that delivers it (type: CLONED_IDENTITY, REPLAYED_REQUEST, MEASUREMENT_DRIFT, CRASH_BURST_AFTER_UPDATE, DEVICE_FLOODING).",
      labelNames: ['type', 'severity'],
    }),
    alertsFolded: meter.counter({
      name: 'sphere_alerts_folded_total',
      help: 'Refusals not stored as alerts of their own: the same tenant, type and device had one stored less than a second before (the next stored alert carries the count).',
      labelNames: ['type'],
    }),
    alertWrites: meter.counter({
      name: 'sphere_alert_writes_total',
      help: 'Alerts this shard appended to the journal, by result (ok, error: not stored).',
      labelNames: ['result'],
    }),
    detections: meter.counter({
      name: 'sphere_detections_total',
      help: "Findings of this shard's threat detector, by type. A fleet-level finding may be made by several shards; it is stored (and counted in sphere_alerts_total) once.",
      labelNames: ['type'],
    }),
    webhookDeliveries: meter.counter({
      name: 'sphere_alert_webhook_deliveries_total',
      help: "Alert POSTs to tenants' webhooks by result: ok (2xx), retry (failed, tried again later), failed (gave up after the last try), dropped (the queue was full).",
      labelNames: ['result'],
    }),
    requestLatency: meter.histogram({
      name: 'sphere_request_duration_seconds',
      help: 'Request handling latency by transport (nats|grpc) and operation.',
      labelNames: ['transport', 'op'],
      buckets: LATENCY_BUCKETS,
    }),
    grpcRequests: meter.counter({
      name: 'sphere_grpc_requests_total',
      help: 'Operator gRPC calls by method and status code name.',
      labelNames: ['method', 'code'],
    }),
    partitionsOwned: meter.gauge({
      name: 'sphere_shard_partitions_owned',
      help: 'Partitions this shard currently owns.',
      labelNames: ['shard'],
    }),
    partitionAcquisitions: meter.counter({
      name: 'sphere_partition_acquisitions_total',
      help: 'Partitions this shard took over (lease acquired, takeover marker stored, serving).',
      labelNames: ['shard'],
    }),
    partitionLosses: meter.counter({
      name: 'sphere_partition_losses_total',
      help: 'Partitions this shard stopped serving, by reason: released (rebalanced to a joining shard, or shutdown), expired (lease not renewed in time), fenced (another owner wrote to the partition log first).',
      labelNames: ['shard', 'reason'],
    }),
    leaseBadValues: meter.counter({
      name: 'sphere_lease_bad_values_total',
      help: 'Values in the lease bucket that are not lease or membership records, by kind (lease, member): skipped (a bad lease is overwritten by its next fenced write). Above 0 means a client writes where only shards should.',
      labelNames: ['kind'],
    }),
    partitionTakeover: meter.histogram({
      name: 'sphere_partition_takeover_seconds',
      help: 'Wall time from acquiring a partition lease to serving the partition (takeover marker stored and the log applied up to it).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    }),
    partitionWrites: meter.counter({
      name: 'sphere_partition_writes_total',
      help: "Appends to partition logs by result: ok, fenced (refused: someone else wrote since this shard's last append), error (not acknowledged).",
      labelNames: ['result'],
    }),
    partitionForeignWrites: meter.counter({
      name: 'sphere_partition_foreign_writes_total',
      help: 'Appends by another shard seen in a partition log while this shard was serving it: two owners at once. Fencing keeps this at 0.',
    }),
    journalCorrupt: meter.counter({
      name: 'sphere_journal_corrupt_entries_total',
      help: "Messages in the journal's subjects that are not records (anyone allowed to publish there can put one), by log (service, partition): skipped. Above 0 means a client publishes where only shards should.",
      labelNames: ['log'],
    }),
    journalFollowerRestarts: meter.counter({
      name: 'sphere_journal_follower_restarts_total',
      help: "Times the shard's journal follower went silent while the journal held newer entries (its NATS server died) and was re-created from the next entry. Commits wait on the follower, so each one is a pause in service.",
    }),
    rolloutDevices: meter.gauge({
      name: 'sphere_rollout_devices',
      help: 'Devices of a deployment by wave (0: not yet in a wave) and state (pending, downloading, installing, succeeded, failed, rolled_back).',
      labelNames: ['deployment', 'wave', 'state'],
    }),
    rolloutState: meter.gauge({
      name: 'sphere_rollout_state',
      help: 'Rollout state of a deployment: 1 for the current state (scheduled, running, paused, waiting, halted, completed, cancelled), 0 otherwise.',
      labelNames: ['deployment', 'state'],
    }),
    rolloutCurrentWave: meter.gauge({
      name: 'sphere_rollout_current_wave',
      help: 'The wave a deployment is in (1-based; 0 before start).',
      labelNames: ['deployment'],
    }),
    rolloutWatchers: meter.gauge({
      name: 'sphere_rollout_watchers',
      help: 'Open WatchRollout streams of a deployment.',
      labelNames: ['deployment'],
    }),
    rolloutWaveTransitions: meter.counter({
      name: 'sphere_rollout_wave_transitions_total',
      help: 'Waves opened, by deployment, wave and reason.',
      labelNames: ['deployment', 'wave', 'reason'],
    }),
    updateInstalls: meter.counter({
      name: 'sphere_update_installs_total',
      help: 'Final update outcomes reported by devices and accepted, by result (succeeded, failed, rolled_back) and image kind (os, app).',
      labelNames: ['result', 'kind'],
    }),
    updateReports: meter.counter({
      name: 'sphere_update_reports_total',
      help: "Update reports received from devices, by result (ok|rejected) and reason code (the device's code for failures, OK otherwise).",
      labelNames: ['result', 'reason'],
    }),
    errorReportUploads: meter.counter({
      name: 'sphere_error_report_uploads_total',
      help: 'Error report uploads answered, by result (stored, duplicate: acknowledged without storing again, rejected) and reason code.',
      labelNames: ['result', 'reason'],
    }),
    errorEvents: meter.counter({
      name: 'sphere_error_events_total',
      help: 'Events in error reports stored by this shard, by kind (app-crash, app-exit, os-crash, update-failed, attestation-failed).',
      labelNames: ['kind'],
    }),
    updateChecks: meter.counter({
      name: 'sphere_update_checks_total',
      help: 'Update checks answered, by result (offered: at least one image offered, none, rejected) and reason code.',
      labelNames: ['result', 'reason'],
    }),
    updateChunks: meter.counter({
      name: 'sphere_update_chunks_total',
      help: 'Image chunk requests answered, by result (ok|rejected) and reason code.',
      labelNames: ['result', 'reason'],
    }),
    updateBytesServed: meter.counter({
      name: 'sphere_update_bytes_served_total',
      help: 'Image bytes served to devices in update chunks.',
    }),
    updateRefusals: meter.counter({
      name: 'sphere_update_refusals_total',
      help: "Updates devices refused after verifying them (TUF metadata or image), by the device's code (TUF_ROLLBACK, TUF_EXPIRED, TUF_MIX_AND_MATCH, TUF_BAD_SIGNATURE, TUF_HASH_MISMATCH, TUF_LENGTH_MISMATCH, TUF_SECURITY_VERSION_ROLLBACK, ...).",
      labelNames: ['code'],
    }),
    inflight: meter.gauge({
      name: 'sphere_attestations_in_flight',
      help: 'Attestations accepted by partition actors and waiting for the crypto pool.',
    }),
  };
}

export type ServiceMetrics = ReturnType<typeof createServiceMetrics>;
