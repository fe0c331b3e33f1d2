/**
 * Bugs the fuzzer has found and that are not fixed yet. Each has a minimal reproduction in
 * test/fuzz marked `it.fails` (it starts failing, i.e. passing, once the bug is fixed: then
 * delete the entry here and the `.fails`). Fuzzing goes on around them: inputs that hit one are
 * counted and reported instead of stopping the run.
 */
export const KNOWN_BUGS = {
  journalPoison:
    'BUG-1: one message published by any NATS client into the journal stops every shard (exit 75), and again on every restart (it stays in the stream): on <journal>.journal.* anything not JSON, or JSON null; on <journal>.part.* anything not a partition batch, e.g. `5` or `{}`. The follower parses and reads it outside the apply try/catch (services/journal/journal.ts parse(); services/shard/host.ts deliver(): e.record.t of null, e.batch.devices.length), and follower.ended → fatal()',
  rolloutNullDevice:
    'BUG-2: deserializeRollout throws a TypeError instead of answering ROLLOUT_CORRUPT when a `devices` entry is not a device: null ({"schema":1,"devices":[null],"index":{"a":0}}), or a deviceId that is an object ({"deviceId":{"toString":0}}) (services/rollouts/logic.ts, the indexOk check reads dev.deviceId and uses it as a key)',
  reportDoubleCount:
    'BUG-3: a refused update report (UNKNOWN_DEPLOYMENT; INTERNAL when storing fails) is counted twice in sphere_update_reports_total{result="rejected"}: in services/shard/updates.ts report() and again in device-gateway.ts',
  yamlAlias:
    'BUG-4: parseScenarioYaml throws a bare ReferenceError ("Unresolved alias") instead of a ScenarioError with line and column for an alias whose anchor is missing, e.g. "*a" (loadgen/scenario/load.ts: yaml reports it from toJS(), not in doc.errors)',
  sessionUnknownFields:
    "BUG-5: decodeAttestReply's value carries ts-proto's `_unknownFields: {}` in `session` (the `{ ...session }` spread copies the generated object), so a decoded SessionMsg differs from the one encoded and generated internals leak into domain values (proto/codec/device.ts decodeAttestReply; uncommitted work in progress)",
  constructorKey:
    "BUG-6: a scenario with a map holding the key `constructor` set to null, e.g. \"fleet: { osMix: { '25.10': 1, constructor: ~ } }\", makes parseScenarioYaml / compileScenario throw a TypeError (\"Cannot read properties of null (reading 'prototype')\") instead of a ScenarioError: zod 4.1's isPlainObject reads o.constructor.prototype (loadgen/scenario/schema.ts osMixSchema is a z.record)",
  reportIdHeader:
    'BUG-7: on a JetStream journal, an update report whose report_id ends in whitespace (" ", "\\t", U+00A0) is never answered, and one holding CR or LF is answered INTERNAL ("repeat it") every time: the report ID goes unescaped into the Nats-Msg-Id header (services/shard/host.ts commitRollout: `report-${id}-${deviceId}-${reportId}`), which NATS trims or refuses, so the commit waits for an ID the follower never sees (services/journal/journal.ts append/parse)',
} as const;
